/*
 * ringfuse-passthrough file data: read, write, flush, fsync, fallocate, lseek and
 * copy_file_range on the descriptor in fh. Every request here is answered by the completion of
 * its backend I/O, which may run after the handler returned: nothing a completion uses may live
 * on the handler's stack.
 */
#include "passthrough.h"

/*
 * The backing fd for the request's backend I/O. tmpfs and ramfs cannot do I/O without blocking
 * the way io_uring asks (no RWF_NOWAIT), so the ring would pass each of their operations to a
 * worker thread; they never wait for a device, so the queue thread does them itself. fio 4K
 * O_DIRECT randread QD1 over a tmpfs source, cache=none, transport=uring: 45.0k -> 84.2k IOPS.
 */
static int io_file(rf_req *req, const struct rf_file_info *fi)
{
	if (fi->fh & FH_INLINE)
		rf_io_inline(req);
	return fh_fd(fi);
}

/* The memory alignment an O_DIRECT backing descriptor needs (1 for a buffered one). */
static size_t fh_align(const struct rf_file_info *fi)
{
	if (!(fi->fh & FH_DIRECT))
		return 1;
	return (size_t)1 << ((fi->fh >> FH_ALIGN_SHIFT) & 0xff);
}

/* Bytes from p to the next address aligned to align (a power of two). */
static size_t align_gap(const void *p, size_t align)
{
	return (align - ((uintptr_t)p & (align - 1))) & (align - 1);
}

/* Status-only completion of fallocate, counted like a write (arg: its kind). */
static void status_done(rf_req *req, int res, void *arg)
{
	creds_io_end((enum io_ident)(uintptr_t)arg);
	reply_status(req, res < 0 ? res : 0);
}

/*
 * O_DIRECT reads. When the payload is not aligned, the data is read to its first aligned
 * address and moved to its start afterwards. One call, no continuation: a short O_DIRECT read of
 * a regular file means end of file (a continuation would start misaligned and be refused), and
 * a short reply tells the kernel just that.
 */

/* arg is where the data went: inside the payload, at or past its start. */
static void shifted_read_done(rf_req *req, int res, void *arg)
{
	char *payload = rf_reply_payload(req, NULL);

	if (res < 0) {
		reply_status(req, res);
		return;
	}
	if (arg != payload)
		memmove(payload, arg, (size_t)res);
	rf_reply_data(req, (size_t)res);
}

/* arg is a bounce buffer of this request alone, allocated by read_direct(). */
static void bounced_read_done(rf_req *req, int res, void *arg)
{
	if (res >= 0)
		memcpy(rf_reply_payload(req, NULL), arg, (size_t)res);
	free(arg);
	if (res < 0)
		reply_status(req, res);
	else
		rf_reply_data(req, (size_t)res);
}

static void read_direct(rf_req *req, int fd, char *payload, size_t cap, size_t size, off_t off,
			size_t align)
{
	size_t gap = align_gap(payload, align);
	void *bounce;
	int err;

	if (size + gap <= cap) {
		err = rf_io_read(req, fd, payload + gap, size, off, shifted_read_done,
				 payload + gap);
	} else {
		/* The rare case that allocates: the aligned part of the payload is too small. */
		if (posix_memalign(&bounce, align, size)) {
			reply_status(req, -ENOMEM);
			return;
		}
		err = rf_io_read(req, fd, bounce, size, off, bounced_read_done, bounce);
		if (err)
			free(bounce);
	}
	if (err)
		reply_status(req, err);
}

void pt_read(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	size_t cap, align = fh_align(fi);
	char *payload = rf_reply_payload(req, &cap);

	atime_access(inode_of(ino), fh_fd(fi));
	if (payload && align > 1) {
		if (size > cap)
			size = cap;
		if (size)
			read_direct(req, io_file(req, fi), payload, cap, size, off, align);
		else
			rf_reply_data(req, 0);
		return;
	}
	/* Into the payload, continuing short reads up to end of file. */
	rf_io_reply_read(req, io_file(req, fi), size, off);
}

/*
 * Writes. Each runs with the identity creds_io_begin() gave the thread (the caller's, or one
 * with no more rights), counted until its completion, whose callback gets the kind in arg:
 * alone, or in the low bits of an aligned bounce buffer.
 */
#define KIND_BITS 3u

static void *tag(void *p, enum io_ident kind)
{
	return (void *)((uintptr_t)p | (uintptr_t)kind);
}

static enum io_ident tag_kind(void *arg)
{
	return (enum io_ident)((uintptr_t)arg & KIND_BITS);
}

static void *tag_ptr(void *arg)
{
	return (void *)((uintptr_t)arg & ~(uintptr_t)KIND_BITS);
}

/*
 * One call, replied as it completes: a regular file writes everything or stops at a full
 * device or a limit, which the short count (or the error) reports.
 */
static void write_done(rf_req *req, int res, void *arg)
{
	creds_io_end(tag_kind(arg));
	if (res < 0)
		reply_status(req, res);
	else
		rf_reply_write(req, (size_t)res);
}

/* The data was copied to an aligned place, in the payload or a bounce buffer of its own. */
static bool in_payload(rf_req *req, const void *p)
{
	size_t cap;
	const char *payload = rf_reply_payload(req, &cap);

	return payload && (const char *)p >= payload && (const char *)p < payload + cap;
}

static void bounced_write_done(rf_req *req, int res, void *arg)
{
	if (!in_payload(req, tag_ptr(arg)))
		free(tag_ptr(arg));
	write_done(req, res, arg);
}

/*
 * O_DIRECT writes of data that is not aligned. The reply payload is ours until the reply (it may
 * even hold the data): move the data to its first aligned address when it fits, else to an
 * aligned buffer of this request alone.
 */
static void write_direct(rf_req *req, int fd, const char *buf, size_t size, off_t off, size_t align,
			 enum io_ident kind)
{
	size_t cap;
	char *payload = rf_reply_payload(req, &cap);
	void *to;
	int err;

	if (align <= KIND_BITS)
		align = KIND_BITS + 1; /* room for the tag */
	if (payload && size + align_gap(payload, align) <= cap) {
		to = payload + align_gap(payload, align);
		memmove(to, buf, size);
	} else if (posix_memalign(&to, align, size)) {
		creds_io_end(kind);
		reply_status(req, -ENOMEM);
		return;
	} else {
		memcpy(to, buf, size);
	}
	err = rf_io_write(req, fd, to, size, off, bounced_write_done, tag(to, kind));
	if (err) {
		creds_io_end(kind);
		if (!in_payload(req, to))
			free(to);
		reply_status(req, err);
	}
}

/*
 * Clear suid, and sgid when group-executable, as the kernel asks (FUSE_WRITE_KILL_SUIDGID on a
 * direct write by a caller without CAP_FSETID) or, for allocations and copies, which it does not
 * clear itself, for an unprivileged caller. A write running as that caller would have the
 * filesystem underneath clear them too; this holds whatever identity it runs with. With the
 * daemon's rights: the writer need not own the file.
 */
static int kill_privs(int fd)
{
	struct stat st;
	mode_t mode;
	int err = 0;

	if (fstat(fd, &st) < 0)
		return neg_errno();
	mode = st.st_mode & 07777 & ~(mode_t)S_ISUID;
	if ((mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		mode &= ~(mode_t)S_ISGID;
	if (mode == (st.st_mode & 07777))
		return 0;
	creds_privileged();
	if (fchmod(fd, mode) < 0)
		err = neg_errno();
	creds_settle();
	return err;
}

void pt_write(rf_req *req, rf_ino ino, const char *buf, size_t size, off_t off,
	      struct rf_file_info *fi)
{
	size_t align = fh_align(fi);
	int fd = io_file(req, fi), err;
	enum io_ident kind;

	(void)ino;
	if ((fi->write_flags & FUSE_WRITE_KILL_SUIDGID) && (err = kill_privs(fd))) {
		reply_status(req, err);
		return;
	}
	if (!size) {
		rf_reply_write(req, 0);
		return;
	}
	kind = creds_io_begin(req, fi);
	if (align > 1 && align_gap(buf, align)) {
		write_direct(req, fd, buf, size, off, align, kind);
		return;
	}
	err = rf_io_write(req, fd, buf, size, off, write_done, tag(NULL, kind));
	if (err) {
		creds_io_end(kind);
		reply_status(req, err);
	}
}

void pt_flush(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	/* Closing a duplicate runs the backing filesystem's flush (and drops POSIX locks of
	 * ours) without giving up the descriptor. */
	int dup_fd = dup(fh_fd(fi));
	int err = 0;

	(void)ino;
	if (dup_fd < 0)
		err = (errno == EMFILE || errno == ENFILE) ? 0 : neg_errno();
	else if (close(dup_fd) < 0)
		err = neg_errno();
	rf_reply_err(req, -err);
}

void pt_fsync(rf_req *req, rf_ino ino, int datasync, struct rf_file_info *fi)
{
	(void)ino;
	rf_io_reply_fsync(req, io_file(req, fi), datasync);
}

void pt_fallocate(rf_req *req, rf_ino ino, int mode, off_t offset, off_t length,
		  struct rf_file_info *fi)
{
	int fd = io_file(req, fi), err = 0;
	enum io_ident kind;

	(void)ino;
	if (rf_req_ctx(req)->uid != 0)
		err = kill_privs(fd);
	if (err) {
		reply_status(req, err);
		return;
	}
	kind = creds_io_begin(req, fi);
	err = rf_io_fallocate(req, fd, mode, offset, length, status_done, (void *)(uintptr_t)kind);
	if (err) {
		creds_io_end(kind);
		reply_status(req, err);
	}
}

void pt_lseek(rf_req *req, rf_ino ino, off_t off, int whence, struct rf_file_info *fi)
{
	off_t r;

	(void)ino;
	/* With writeback the newest data may still sit dirty in the kernel's cache, which FUSE
	 * does not write back before asking: our SEEK_DATA could skip it (and cp would lose it).
	 * ENOSYS makes the kernel answer from its own view: all data up to its size, no holes. */
	if (fs.writeback) {
		reply_status(req, -ENOSYS);
		return;
	}
	r = lseek(fh_fd(fi), off, whence);
	if (r < 0)
		reply_status(req, neg_errno());
	else
		rf_reply_lseek(req, r);
}

void pt_copy_file_range(rf_req *req, rf_ino ino_in, off_t off_in, struct rf_file_info *fi_in,
			rf_ino ino_out, off_t off_out, struct rf_file_info *fi_out, size_t len,
			int flags)
{
	enum io_ident kind;
	ssize_t n;
	int err = 0;

	(void)ino_in;
	(void)ino_out;
	if (rf_req_ctx(req)->uid != 0)
		err = kill_privs(fh_fd(fi_out));
	if (err) {
		reply_status(req, err);
		return;
	}
	/* Done here and now, so counted only for the call. */
	kind = creds_io_begin(req, fi_out);
	n = copy_file_range(fh_fd(fi_in), &off_in, fh_fd(fi_out), &off_out, len,
			    (unsigned int)flags);
	if (n < 0)
		err = neg_errno();
	creds_io_end(kind);
	if (err)
		reply_status(req, err);
	else
		rf_reply_write(req, (size_t)n);
}
