/*
 * memfs deferred replies, shared by the pool (defer.c) and the operations that feed it
 * (defer_ops.c): one job per request, carrying the operation and copies of its arguments.
 */
#ifndef MEMFS_DEFER_H
#define MEMFS_DEFER_H

#include "memfs.h"

/* The operations that are deferred: every one that takes a reply. */
enum dop {
	D_LOOKUP,
	D_GETATTR,
	D_SETATTR,
	D_READLINK,
	D_MKNOD,
	D_MKDIR,
	D_UNLINK,
	D_RMDIR,
	D_SYMLINK,
	D_RENAME,
	D_LINK,
	D_OPEN,
	D_READ,
	D_WRITE,
	D_FLUSH,
	D_RELEASE,
	D_FSYNC,
	D_OPENDIR,
	D_READDIR,
	D_RELEASEDIR,
	D_FSYNCDIR,
	D_STATFS,
	D_SETXATTR,
	D_GETXATTR,
	D_LISTXATTR,
	D_REMOVEXATTR,
	D_ACCESS,
	D_CREATE,
	D_FALLOCATE,
	D_READDIRPLUS,
	D_COPY_FILE_RANGE,
	D_LSEEK,
	D_TMPFILE,
	D_SYNCFS,
	D_NOPS
};

/* Never held nor cancelled: they drop the reference an open handle holds, and the kernel may
 * still send them while unmounting. */
#define NEVER_HELD ((1ull << D_RELEASE) | (1ull << D_RELEASEDIR))

struct job {
	struct job *next;
	rf_req *req;
	enum dop op;
	bool spare;	 /* the thread's fallback job: run at once, not freed */
	uint64_t due_ns; /* held until then (CLOCK_MONOTONIC) */
	rf_ino ino, ino2;
	const char *name, *name2, *buf; /* borrowed from the request */
	size_t size;
	off_t off, off2, len;
	int flags, mask;
	mode_t mode;
	dev_t rdev;
	struct stat attr;
	bool has_fi, has_fi2;
	struct rf_file_info fi, fi2;
};

/* defer_ops.c */
void job_run(struct job *j);
/* The operation called name, or -1. */
int dop_by_name(const char *name, size_t len);

/* defer.c */
struct job *job_new(rf_req *req, enum dop op);
void job_submit(struct job *j);
void defer_interrupt(rf_req *req, void *userdata);

#endif /* MEMFS_DEFER_H */
