/*
 * ringfuse's own description of the Linux FUSE wire protocol: the messages that travel over
 * /dev/fuse and over the FUSE-over-io-uring command ring.
 *
 * This header mirrors the kernel's protocol definition (include/uapi/linux/fuse.h and the
 * io-uring transport in fs/fuse/dev_uring.c) as shipped in Linux 6.14 to 6.18: protocol 7.42
 * (the first with io-uring) up to 7.45. Names, values and layouts follow the kernel exactly so that
 * code reads the same as other FUSE implementations; the comments are ours. Where this file and the
 * running kernel disagree, the kernel is authoritative: fix this file.
 *
 * Every structure is a fixed-layout wire format padded to a multiple of 8 bytes, so a 32-bit
 * server sees the same layout as a 64-bit kernel. The sizes are checked at the bottom.
 *
 * Do not include this header together with <linux/fuse.h>; both define the same names.
 */
#ifndef RINGFUSE_KERNEL_H
#define RINGFUSE_KERNEL_H

#include <stddef.h>
#include <stdint.h>
#include <linux/ioctl.h>

/*
 * Protocol version. The kernel sends its version in FUSE_INIT and the server answers with its
 * own; when the majors match both sides speak the smaller of the two minors. Recent minors:
 *
 *   7.40  passthrough (backing files), FUSE_NOTIFY_RESEND, FUSE_NO_EXPORT_SUPPORT
 *   7.41  idmapped mounts (FUSE_ALLOW_IDMAP)
 *   7.42  FUSE-over-io-uring (FUSE_OVER_IO_URING and the fuse_uring_* structures)
 *   7.43  per-request timeouts (FUSE_REQUEST_TIMEOUT, fuse_init_out.request_timeout)
 *   7.44  FUSE_NOTIFY_INC_EPOCH
 *   7.45  FUSE_COPY_FILE_RANGE_64, struct fuse_copy_file_range_out, FUSE_NOTIFY_PRUNE
 */
#define FUSE_KERNEL_VERSION	  7
#define FUSE_KERNEL_MINOR_VERSION 45

/* Node ID of the mount's root directory. */
#define FUSE_ROOT_ID 1

/* ---- Attributes ---------------------------------------------------------------------- */

/* Inode attributes as returned by LOOKUP, GETATTR, CREATE, ... */
struct fuse_attr {
	uint64_t ino;
	uint64_t size;
	uint64_t blocks;
	uint64_t atime;
	uint64_t mtime;
	uint64_t ctime;
	uint32_t atimensec;
	uint32_t mtimensec;
	uint32_t ctimensec;
	uint32_t mode;
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint32_t rdev;
	uint32_t blksize;
	uint32_t flags; /* FUSE_ATTR_* */
};

/* A timestamp in the statx(2) layout. */
struct fuse_sx_time {
	int64_t tv_sec;
	uint32_t tv_nsec;
	int32_t __reserved;
};

/* Extended attributes for FUSE_STATX; same layout as the kernel's struct statx. */
struct fuse_statx {
	uint32_t mask;
	uint32_t blksize;
	uint64_t attributes;
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint16_t mode;
	uint16_t __spare0[1];
	uint64_t ino;
	uint64_t size;
	uint64_t blocks;
	uint64_t attributes_mask;
	struct fuse_sx_time atime;
	struct fuse_sx_time btime;
	struct fuse_sx_time ctime;
	struct fuse_sx_time mtime;
	uint32_t rdev_major;
	uint32_t rdev_minor;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint64_t __spare2[14];
};

/* Filesystem statistics for FUSE_STATFS. */
struct fuse_kstatfs {
	uint64_t blocks;
	uint64_t bfree;
	uint64_t bavail;
	uint64_t files;
	uint64_t ffree;
	uint32_t bsize;
	uint32_t namelen;
	uint32_t frsize;
	uint32_t padding;
	uint32_t spare[6];
};

/* A byte-range lock for GETLK/SETLK/SETLKW. */
struct fuse_file_lock {
	uint64_t start;
	uint64_t end;
	uint32_t type;
	uint32_t pid; /* thread group id of the owner */
};

/* ---- Flag bits ----------------------------------------------------------------------- */

/* fuse_setattr_in.valid: which fields of the request carry a new value. */
#define FATTR_MODE	   (1 << 0)
#define FATTR_UID	   (1 << 1)
#define FATTR_GID	   (1 << 2)
#define FATTR_SIZE	   (1 << 3)
#define FATTR_ATIME	   (1 << 4)
#define FATTR_MTIME	   (1 << 5)
#define FATTR_FH	   (1 << 6) /* fh is valid */
#define FATTR_ATIME_NOW	   (1 << 7) /* set atime to the current time */
#define FATTR_MTIME_NOW	   (1 << 8) /* set mtime to the current time */
#define FATTR_LOCKOWNER	   (1 << 9) /* lock_owner is valid */
#define FATTR_CTIME	   (1 << 10)
#define FATTR_KILL_SUIDGID (1 << 11) /* clear suid/sgid as part of this change */

/* fuse_open_out.open_flags: set by the server in the OPEN/CREATE/OPENDIR reply. */
#define FOPEN_DIRECT_IO		     (1 << 0) /* bypass the page cache */
#define FOPEN_KEEP_CACHE	     (1 << 1) /* keep cached data from earlier opens */
#define FOPEN_NONSEEKABLE	     (1 << 2) /* lseek is not supported */
#define FOPEN_CACHE_DIR		     (1 << 3) /* directory contents may be cached */
#define FOPEN_STREAM		     (1 << 4) /* no file position at all */
#define FOPEN_NOFLUSH		     (1 << 5) /* skip FLUSH on close */
#define FOPEN_PARALLEL_DIRECT_WRITES (1 << 6) /* allow concurrent direct writes to one inode */
#define FOPEN_PASSTHROUGH	     (1 << 7) /* I/O goes straight to fuse_open_out.backing_id */

/*
 * INIT capability flags. Bits 0..31 travel in fuse_init_in/out.flags, bits 32..63 in flags2
 * (shifted down by 32); flags2 is only valid when FUSE_INIT_EXT is set.
 */
#define FUSE_ASYNC_READ		  (1 << 0)     /* reads may be issued in parallel */
#define FUSE_POSIX_LOCKS	  (1 << 1)     /* server implements POSIX locks */
#define FUSE_FILE_OPS		  (1 << 2)     /* never used */
#define FUSE_ATOMIC_O_TRUNC	  (1 << 3)     /* server handles O_TRUNC in OPEN */
#define FUSE_EXPORT_SUPPORT	  (1 << 4)     /* server handles lookups of "." and ".." */
#define FUSE_BIG_WRITES		  (1 << 5)     /* writes may exceed 4 KiB */
#define FUSE_DONT_MASK		  (1 << 6)     /* kernel does not apply the umask */
#define FUSE_SPLICE_WRITE	  (1 << 7)     /* splice into the device is supported */
#define FUSE_SPLICE_MOVE	  (1 << 8)     /* pages may be moved when splicing */
#define FUSE_SPLICE_READ	  (1 << 9)     /* splice out of the device is supported */
#define FUSE_FLOCK_LOCKS	  (1 << 10)    /* server implements BSD flock() */
#define FUSE_HAS_IOCTL_DIR	  (1 << 11)    /* ioctl on directories is supported */
#define FUSE_AUTO_INVAL_DATA	  (1 << 12)    /* drop cached pages when mtime changes */
#define FUSE_DO_READDIRPLUS	  (1 << 13)    /* use READDIRPLUS */
#define FUSE_READDIRPLUS_AUTO	  (1 << 14)    /* choose READDIR or READDIRPLUS adaptively */
#define FUSE_ASYNC_DIO		  (1 << 15)    /* async direct I/O submission */
#define FUSE_WRITEBACK_CACHE	  (1 << 16)    /* buffered writes use the writeback cache */
#define FUSE_NO_OPEN_SUPPORT	  (1 << 17)    /* ENOSYS from OPEN: no open needed */
#define FUSE_PARALLEL_DIROPS	  (1 << 18)    /* lookups and readdir may run in parallel */
#define FUSE_HANDLE_KILLPRIV	  (1 << 19)    /* server clears suid/sgid/caps itself */
#define FUSE_POSIX_ACL		  (1 << 20)    /* server supports POSIX ACLs */
#define FUSE_ABORT_ERROR	  (1 << 21)    /* reads after abort give ECONNABORTED */
#define FUSE_MAX_PAGES		  (1 << 22)    /* fuse_init_out.max_pages is valid */
#define FUSE_CACHE_SYMLINKS	  (1 << 23)    /* READLINK results may be cached */
#define FUSE_NO_OPENDIR_SUPPORT	  (1 << 24)    /* ENOSYS from OPENDIR: no opendir needed */
#define FUSE_EXPLICIT_INVAL_DATA  (1 << 25)    /* drop cached pages only when told to */
#define FUSE_MAP_ALIGNMENT	  (1 << 26)    /* fuse_init_out.map_alignment is valid (DAX) */
#define FUSE_SUBMOUNTS		  (1 << 27)    /* FUSE_ATTR_SUBMOUNT is honoured */
#define FUSE_HANDLE_KILLPRIV_V2	  (1 << 28)    /* like HANDLE_KILLPRIV, with VFS semantics */
#define FUSE_SETXATTR_EXT	  (1 << 29)    /* use the extended struct fuse_setxattr_in */
#define FUSE_INIT_EXT		  (1 << 30)    /* the flags2 fields are valid */
#define FUSE_INIT_RESERVED	  (1 << 31)    /* must not be used */
#define FUSE_SECURITY_CTX	  (1ULL << 32) /* security context on node creation */
#define FUSE_HAS_INODE_DAX	  (1ULL << 33) /* per-inode DAX (FUSE_ATTR_DAX) */
#define FUSE_CREATE_SUPP_GROUP	  (1ULL << 34) /* supplementary group extension on creation */
#define FUSE_HAS_EXPIRE_ONLY	  (1ULL << 35) /* FUSE_EXPIRE_ONLY is supported */
#define FUSE_DIRECT_IO_ALLOW_MMAP (1ULL << 36) /* shared mmap allowed with FOPEN_DIRECT_IO */
#define FUSE_PASSTHROUGH	  (1ULL << 37) /* FOPEN_PASSTHROUGH and backing files */
#define FUSE_NO_EXPORT_SUPPORT	  (1ULL << 38) /* the filesystem cannot be NFS-exported */
#define FUSE_HAS_RESEND		  (1ULL << 39) /* requests may be resent */
#define FUSE_ALLOW_IDMAP	  (1ULL << 40) /* idmapped mounts are allowed */
#define FUSE_OVER_IO_URING	  (1ULL << 41) /* requests may be served over io-uring */
#define FUSE_REQUEST_TIMEOUT	  (1ULL << 42) /* fuse_init_out.request_timeout is valid */

/* Older name for FUSE_DIRECT_IO_ALLOW_MMAP. */
#define FUSE_DIRECT_IO_RELAX FUSE_DIRECT_IO_ALLOW_MMAP

/* CUSE INIT flags. */
#define CUSE_UNRESTRICTED_IOCTL (1 << 0)

/* fuse_release_in.release_flags */
#define FUSE_RELEASE_FLUSH	  (1 << 0) /* flush before releasing */
#define FUSE_RELEASE_FLOCK_UNLOCK (1 << 1) /* drop the flock() held by lock_owner */

/* fuse_getattr_in.getattr_flags */
#define FUSE_GETATTR_FH (1 << 0) /* fh is valid */

/* fuse_lk_in.lk_flags */
#define FUSE_LK_FLOCK (1 << 0) /* a BSD flock(), not a POSIX lock */

/* fuse_write_in.write_flags */
#define FUSE_WRITE_CACHE	(1 << 0) /* writeback from the page cache; fh is a guess */
#define FUSE_WRITE_LOCKOWNER	(1 << 1) /* lock_owner is valid */
#define FUSE_WRITE_KILL_SUIDGID (1 << 2) /* clear suid/sgid */

/* Older name for FUSE_WRITE_KILL_SUIDGID. */
#define FUSE_WRITE_KILL_PRIV FUSE_WRITE_KILL_SUIDGID

/* fuse_read_in.read_flags */
#define FUSE_READ_LOCKOWNER (1 << 1) /* lock_owner is valid */

/* fuse_ioctl_in.flags and fuse_ioctl_out.flags */
#define FUSE_IOCTL_COMPAT	(1 << 0) /* 32-bit compat ioctl on a 64-bit kernel */
#define FUSE_IOCTL_UNRESTRICTED (1 << 1) /* arbitrary ioctl; the server may ask for a retry */
#define FUSE_IOCTL_RETRY	(1 << 2) /* reply: retry with the returned iovecs */
#define FUSE_IOCTL_32BIT	(1 << 3) /* caller is a 32-bit process */
#define FUSE_IOCTL_DIR		(1 << 4) /* target is a directory */
#define FUSE_IOCTL_COMPAT_X32	(1 << 5) /* x32 compat ioctl (64-bit time_t) */

/* Most in + out iovecs an unrestricted ioctl may ask for. */
#define FUSE_IOCTL_MAX_IOV 256

/* fuse_poll_in.flags */
#define FUSE_POLL_SCHEDULE_NOTIFY (1 << 0) /* send FUSE_NOTIFY_POLL when ready */

/* fuse_fsync_in.fsync_flags */
#define FUSE_FSYNC_FDATASYNC (1 << 0) /* data only, not metadata */

/* fuse_attr.flags */
#define FUSE_ATTR_SUBMOUNT (1 << 0) /* the directory is the root of a submount */
#define FUSE_ATTR_DAX	   (1 << 1) /* use DAX for this file (per-inode DAX mode) */

/* fuse_open_in.open_flags and fuse_create_in.open_flags */
#define FUSE_OPEN_KILL_SUIDGID (1 << 0) /* clear suid/sgid on a truncating open */

/* fuse_setxattr_in.setxattr_flags */
#define FUSE_SETXATTR_ACL_KILL_SGID (1 << 0) /* clear sgid when setting an access ACL */

/* fuse_notify_inval_entry_out.flags */
#define FUSE_EXPIRE_ONLY (1 << 0) /* only expire the dentry, do not drop it */

/* fuse_setupmapping_in.flags (virtiofs DAX) */
#define FUSE_SETUPMAPPING_FLAG_WRITE (1ULL << 0)
#define FUSE_SETUPMAPPING_FLAG_READ  (1ULL << 1)

/*
 * fuse_in_header.unique: the top bit marks a request the kernel has resent after
 * FUSE_NOTIFY_RESEND (only with FUSE_HAS_RESEND).
 */
#define FUSE_UNIQUE_RESEND (1ULL << 63)

/*
 * fuse_in_header.uid/gid carry this when FUSE_ALLOW_IDMAP is on and the caller's ids cannot
 * be mapped. Node-creating requests always carry mapped ids.
 */
#define FUSE_INVALID_UIDGID ((uint32_t)(-1))

/*
 * Request extension types (struct fuse_ext_header.type). Values 0..31 are taken by the
 * security context block, whose header has nr_secctx where other extensions have a type.
 */
enum fuse_ext_type {
	FUSE_MAX_NR_SECCTX = 31, /* largest fuse_secctx_header.nr_secctx */
	FUSE_EXT_GROUPS = 32,	 /* struct fuse_supp_groups */
};

/* ---- Opcodes and notification codes -------------------------------------------------- */

enum fuse_opcode {
	FUSE_LOOKUP = 1,
	FUSE_FORGET = 2, /* never answered */
	FUSE_GETATTR = 3,
	FUSE_SETATTR = 4,
	FUSE_READLINK = 5,
	FUSE_SYMLINK = 6,
	FUSE_MKNOD = 8,
	FUSE_MKDIR = 9,
	FUSE_UNLINK = 10,
	FUSE_RMDIR = 11,
	FUSE_RENAME = 12,
	FUSE_LINK = 13,
	FUSE_OPEN = 14,
	FUSE_READ = 15,
	FUSE_WRITE = 16,
	FUSE_STATFS = 17,
	FUSE_RELEASE = 18,
	FUSE_FSYNC = 20,
	FUSE_SETXATTR = 21,
	FUSE_GETXATTR = 22,
	FUSE_LISTXATTR = 23,
	FUSE_REMOVEXATTR = 24,
	FUSE_FLUSH = 25,
	FUSE_INIT = 26,
	FUSE_OPENDIR = 27,
	FUSE_READDIR = 28,
	FUSE_RELEASEDIR = 29,
	FUSE_FSYNCDIR = 30,
	FUSE_GETLK = 31,
	FUSE_SETLK = 32,
	FUSE_SETLKW = 33,
	FUSE_ACCESS = 34,
	FUSE_CREATE = 35,
	FUSE_INTERRUPT = 36,
	FUSE_BMAP = 37,
	FUSE_DESTROY = 38,
	FUSE_IOCTL = 39,
	FUSE_POLL = 40,
	FUSE_NOTIFY_REPLY = 41, /* carries the data asked for by FUSE_NOTIFY_RETRIEVE */
	FUSE_BATCH_FORGET = 42, /* never answered */
	FUSE_FALLOCATE = 43,
	FUSE_READDIRPLUS = 44,
	FUSE_RENAME2 = 45,
	FUSE_LSEEK = 46,
	FUSE_COPY_FILE_RANGE = 47,
	FUSE_SETUPMAPPING = 48,
	FUSE_REMOVEMAPPING = 49,
	FUSE_SYNCFS = 50,
	FUSE_TMPFILE = 51, /* takes struct fuse_create_in */
	FUSE_STATX = 52,
	FUSE_COPY_FILE_RANGE_64 = 53, /* replies with struct fuse_copy_file_range_out */

	/* CUSE only */
	CUSE_INIT = 4096,

	/* Byte-swapped INIT opcodes, reserved so an endianness mismatch can be detected. */
	CUSE_INIT_BSWAP_RESERVED = 1048576,   /* CUSE_INIT << 8 */
	FUSE_INIT_BSWAP_RESERVED = 436207616, /* FUSE_INIT << 24 */
};

/* Unsolicited messages from the server: fuse_out_header.unique == 0, .error == code. */
enum fuse_notify_code {
	FUSE_NOTIFY_POLL = 1,
	FUSE_NOTIFY_INVAL_INODE = 2,
	FUSE_NOTIFY_INVAL_ENTRY = 3,
	FUSE_NOTIFY_STORE = 4,
	FUSE_NOTIFY_RETRIEVE = 5,
	FUSE_NOTIFY_DELETE = 6,
	FUSE_NOTIFY_RESEND = 7,	   /* no payload: resend requests sent but not answered */
	FUSE_NOTIFY_INC_EPOCH = 8, /* no payload: invalidate all cached dentries lazily */
	FUSE_NOTIFY_PRUNE = 9,	   /* struct fuse_notify_prune_out + count node IDs */
};

/* A buffer handed to read(2) on /dev/fuse must be at least this large. */
#define FUSE_MIN_READ_BUFFER 8192

/* ---- Per-opcode arguments ------------------------------------------------------------ */

/* Sizes of messages as they were before later minors extended them. */
#define FUSE_COMPAT_ENTRY_OUT_SIZE   120
#define FUSE_COMPAT_ATTR_OUT_SIZE    96
#define FUSE_COMPAT_MKNOD_IN_SIZE    8
#define FUSE_COMPAT_WRITE_IN_SIZE    24
#define FUSE_COMPAT_STATFS_SIZE	     48
#define FUSE_COMPAT_SETXATTR_IN_SIZE 8
#define FUSE_COMPAT_INIT_OUT_SIZE    8
#define FUSE_COMPAT_22_INIT_OUT_SIZE 24

/* Reply to LOOKUP, MKNOD, MKDIR, SYMLINK, LINK and (with an open reply) CREATE. */
struct fuse_entry_out {
	uint64_t nodeid;      /* 0 means a cacheable negative entry */
	uint64_t generation;  /* nodeid + generation must never repeat */
	uint64_t entry_valid; /* name cache timeout, seconds */
	uint64_t attr_valid;  /* attribute cache timeout, seconds */
	uint32_t entry_valid_nsec;
	uint32_t attr_valid_nsec;
	struct fuse_attr attr;
};

struct fuse_forget_in {
	uint64_t nlookup;
};

/* One entry of a BATCH_FORGET; count of them follow struct fuse_batch_forget_in. */
struct fuse_forget_one {
	uint64_t nodeid;
	uint64_t nlookup;
};

struct fuse_batch_forget_in {
	uint32_t count;
	uint32_t dummy;
};

struct fuse_getattr_in {
	uint32_t getattr_flags; /* FUSE_GETATTR_* */
	uint32_t dummy;
	uint64_t fh;
};

struct fuse_attr_out {
	uint64_t attr_valid; /* attribute cache timeout, seconds */
	uint32_t attr_valid_nsec;
	uint32_t dummy;
	struct fuse_attr attr;
};

struct fuse_statx_in {
	uint32_t getattr_flags; /* FUSE_GETATTR_* */
	uint32_t reserved;
	uint64_t fh;
	uint32_t sx_flags; /* AT_STATX_* sync flags */
	uint32_t sx_mask;  /* STATX_* fields wanted */
};

struct fuse_statx_out {
	uint64_t attr_valid; /* attribute cache timeout, seconds */
	uint32_t attr_valid_nsec;
	uint32_t flags;
	uint64_t spare[2];
	struct fuse_statx stat;
};

/* MKNOD; the name follows. */
struct fuse_mknod_in {
	uint32_t mode;
	uint32_t rdev;
	uint32_t umask;
	uint32_t padding;
};

/* MKDIR; the name follows. */
struct fuse_mkdir_in {
	uint32_t mode;
	uint32_t umask;
};

/* RENAME; old name and new name follow, each NUL-terminated. */
struct fuse_rename_in {
	uint64_t newdir;
};

/* RENAME2; like RENAME plus RENAME_* flags. */
struct fuse_rename2_in {
	uint64_t newdir;
	uint32_t flags;
	uint32_t padding;
};

/* LINK; the new name follows. */
struct fuse_link_in {
	uint64_t oldnodeid;
};

struct fuse_setattr_in {
	uint32_t valid; /* FATTR_* */
	uint32_t padding;
	uint64_t fh;
	uint64_t size;
	uint64_t lock_owner;
	uint64_t atime;
	uint64_t mtime;
	uint64_t ctime;
	uint32_t atimensec;
	uint32_t mtimensec;
	uint32_t ctimensec;
	uint32_t mode;
	uint32_t unused4;
	uint32_t uid;
	uint32_t gid;
	uint32_t unused5;
};

/* OPEN and OPENDIR. */
struct fuse_open_in {
	uint32_t flags;	     /* open(2) flags */
	uint32_t open_flags; /* FUSE_OPEN_* */
};

/* CREATE and TMPFILE; for CREATE the name follows. */
struct fuse_create_in {
	uint32_t flags; /* open(2) flags */
	uint32_t mode;
	uint32_t umask;
	uint32_t open_flags; /* FUSE_OPEN_* */
};

struct fuse_open_out {
	uint64_t fh;
	uint32_t open_flags; /* FOPEN_* */
	int32_t backing_id;  /* with FOPEN_PASSTHROUGH: id from FUSE_DEV_IOC_BACKING_OPEN */
};

/* RELEASE and RELEASEDIR. */
struct fuse_release_in {
	uint64_t fh;
	uint32_t flags;		/* open(2) flags */
	uint32_t release_flags; /* FUSE_RELEASE_* */
	uint64_t lock_owner;
};

struct fuse_flush_in {
	uint64_t fh;
	uint32_t unused;
	uint32_t padding;
	uint64_t lock_owner;
};

struct fuse_read_in {
	uint64_t fh;
	uint64_t offset;
	uint32_t size;
	uint32_t read_flags; /* FUSE_READ_* */
	uint64_t lock_owner;
	uint32_t flags; /* open(2) flags */
	uint32_t padding;
};

/* WRITE; size bytes of data follow. */
struct fuse_write_in {
	uint64_t fh;
	uint64_t offset;
	uint32_t size;
	uint32_t write_flags; /* FUSE_WRITE_* */
	uint64_t lock_owner;
	uint32_t flags; /* open(2) flags */
	uint32_t padding;
};

/* Reply to WRITE and to the 32-bit COPY_FILE_RANGE. */
struct fuse_write_out {
	uint32_t size;
	uint32_t padding;
};

struct fuse_statfs_out {
	struct fuse_kstatfs st;
};

/* FSYNC and FSYNCDIR. */
struct fuse_fsync_in {
	uint64_t fh;
	uint32_t fsync_flags; /* FUSE_FSYNC_* */
	uint32_t padding;
};

/*
 * SETXATTR; the name and the value follow. Without FUSE_SETXATTR_EXT the kernel sends only
 * the first FUSE_COMPAT_SETXATTR_IN_SIZE bytes.
 */
struct fuse_setxattr_in {
	uint32_t size;		 /* length of the value */
	uint32_t flags;		 /* XATTR_CREATE / XATTR_REPLACE */
	uint32_t setxattr_flags; /* FUSE_SETXATTR_* */
	uint32_t padding;
};

/* GETXATTR (name follows) and LISTXATTR. size == 0 asks for the needed length. */
struct fuse_getxattr_in {
	uint32_t size;
	uint32_t padding;
};

/* Reply to a GETXATTR/LISTXATTR size query. */
struct fuse_getxattr_out {
	uint32_t size;
	uint32_t padding;
};

/* GETLK, SETLK and SETLKW. */
struct fuse_lk_in {
	uint64_t fh;
	uint64_t owner;
	struct fuse_file_lock lk;
	uint32_t lk_flags; /* FUSE_LK_* */
	uint32_t padding;
};

struct fuse_lk_out {
	struct fuse_file_lock lk;
};

struct fuse_access_in {
	uint32_t mask;
	uint32_t padding;
};

struct fuse_init_in {
	uint32_t major;
	uint32_t minor;
	uint32_t max_readahead;
	uint32_t flags;	 /* capability bits 0..31 */
	uint32_t flags2; /* capability bits 32..63, with FUSE_INIT_EXT */
	uint32_t unused[11];
};

struct fuse_init_out {
	uint32_t major;
	uint32_t minor;
	uint32_t max_readahead;
	uint32_t flags; /* capability bits 0..31 */
	uint16_t max_background;
	uint16_t congestion_threshold;
	uint32_t max_write;
	uint32_t time_gran;	  /* timestamp granularity, ns */
	uint16_t max_pages;	  /* with FUSE_MAX_PAGES */
	uint16_t map_alignment;	  /* log2 of DAX alignment, with FUSE_MAP_ALIGNMENT */
	uint32_t flags2;	  /* capability bits 32..63, with FUSE_INIT_EXT */
	uint32_t max_stack_depth; /* backing file stacking limit, with FUSE_PASSTHROUGH */
	uint16_t request_timeout; /* seconds, with FUSE_REQUEST_TIMEOUT */
	uint16_t unused[11];
};

#define CUSE_INIT_INFO_MAX 4096

struct cuse_init_in {
	uint32_t major;
	uint32_t minor;
	uint32_t unused;
	uint32_t flags;
};

/* CUSE INIT reply; the device info strings follow (at most CUSE_INIT_INFO_MAX bytes). */
struct cuse_init_out {
	uint32_t major;
	uint32_t minor;
	uint32_t unused;
	uint32_t flags;
	uint32_t max_read;
	uint32_t max_write;
	uint32_t dev_major; /* character device major */
	uint32_t dev_minor; /* character device minor */
	uint32_t spare[10];
};

/* INTERRUPT; names the unique of the request to interrupt. */
struct fuse_interrupt_in {
	uint64_t unique;
};

struct fuse_bmap_in {
	uint64_t block;
	uint32_t blocksize;
	uint32_t padding;
};

struct fuse_bmap_out {
	uint64_t block;
};

/* IOCTL; in_size bytes of input follow. */
struct fuse_ioctl_in {
	uint64_t fh;
	uint32_t flags; /* FUSE_IOCTL_* */
	uint32_t cmd;
	uint64_t arg;
	uint32_t in_size;
	uint32_t out_size;
};

/* An iovec in the caller's address space, used in an ioctl retry reply. */
struct fuse_ioctl_iovec {
	uint64_t base;
	uint64_t len;
};

/* IOCTL reply; output data, or in_iovs + out_iovs struct fuse_ioctl_iovec on retry, follow. */
struct fuse_ioctl_out {
	int32_t result;
	uint32_t flags; /* FUSE_IOCTL_* */
	uint32_t in_iovs;
	uint32_t out_iovs;
};

struct fuse_poll_in {
	uint64_t fh;
	uint64_t kh;	/* handle to name in FUSE_NOTIFY_POLL */
	uint32_t flags; /* FUSE_POLL_* */
	uint32_t events;
};

struct fuse_poll_out {
	uint32_t revents;
	uint32_t padding;
};

struct fuse_fallocate_in {
	uint64_t fh;
	uint64_t offset;
	uint64_t length;
	uint32_t mode; /* FALLOC_FL_* */
	uint32_t padding;
};

struct fuse_lseek_in {
	uint64_t fh;
	uint64_t offset;
	uint32_t whence;
	uint32_t padding;
};

struct fuse_lseek_out {
	uint64_t offset;
};

/* COPY_FILE_RANGE and COPY_FILE_RANGE_64; the source is fuse_in_header.nodeid. */
struct fuse_copy_file_range_in {
	uint64_t fh_in;
	uint64_t off_in;
	uint64_t nodeid_out;
	uint64_t fh_out;
	uint64_t off_out;
	uint64_t len;
	uint64_t flags;
};

/* Reply to COPY_FILE_RANGE_64. */
struct fuse_copy_file_range_out {
	uint64_t bytes_copied;
};

/* SETUPMAPPING (virtiofs DAX): map part of a file into the DAX window. */
struct fuse_setupmapping_in {
	uint64_t fh;	  /* an open file handle */
	uint64_t foffset; /* file offset of the mapping */
	uint64_t len;
	uint64_t flags;	  /* FUSE_SETUPMAPPING_FLAG_* */
	uint64_t moffset; /* offset in the DAX window */
};

/* REMOVEMAPPING; count struct fuse_removemapping_one follow. */
struct fuse_removemapping_in {
	uint32_t count;
};

struct fuse_removemapping_one {
	uint64_t moffset; /* offset in the DAX window */
	uint64_t len;
};

/* Most entries one REMOVEMAPPING may carry: as many as fit in a page. */
#ifdef PAGE_SIZE
#define FUSE_REMOVEMAPPING_MAX_ENTRY (PAGE_SIZE / sizeof(struct fuse_removemapping_one))
#endif

struct fuse_syncfs_in {
	uint64_t padding;
};

/* ---- Message headers and request extensions ------------------------------------------ */

/* Starts every request from the kernel. */
struct fuse_in_header {
	uint32_t len; /* whole request, header included */
	uint32_t opcode;
	uint64_t unique;
	uint64_t nodeid;
	uint32_t uid;
	uint32_t gid;
	uint32_t pid;
	uint16_t total_extlen; /* size of the trailing extensions, in 8-byte units */
	uint16_t padding;
};

/* Starts every reply and every notification from the server. */
struct fuse_out_header {
	uint32_t len;  /* whole message, header included */
	int32_t error; /* 0 or a negative errno; the notify code when unique == 0 */
	uint64_t unique;
};

/*
 * Security context block appended to node-creating requests with FUSE_SECURITY_CTX: a
 * fuse_secctx_header, then per context a struct fuse_secctx, the NUL-terminated xattr name
 * and the context value.
 */
struct fuse_secctx {
	uint32_t size; /* length of the context value */
	uint32_t padding;
};

struct fuse_secctx_header {
	uint32_t size; /* whole block, this header included */
	uint32_t nr_secctx;
};

/* Generic extension header; type > FUSE_MAX_NR_SECCTX tells it from a secctx header. */
struct fuse_ext_header {
	uint32_t size; /* whole extension, this header included */
	uint32_t type; /* enum fuse_ext_type */
};

/* FUSE_EXT_GROUPS payload: the caller's supplementary groups. */
struct fuse_supp_groups {
	uint32_t nr_groups;
	uint32_t groups[];
};

/* ---- Directory entries --------------------------------------------------------------- */

/* One READDIR entry; namelen bytes of name follow, padded to 8 bytes. */
struct fuse_dirent {
	uint64_t ino;
	uint64_t off; /* offset of the next entry */
	uint32_t namelen;
	uint32_t type; /* DT_* */
	char name[];
};

/* Round a variable-length record up to a multiple of 8 bytes. */
#define FUSE_REC_ALIGN(x) (((x) + sizeof(uint64_t) - 1) & ~(sizeof(uint64_t) - 1))

#define FUSE_NAME_OFFSET     offsetof(struct fuse_dirent, name)
#define FUSE_DIRENT_ALIGN(x) FUSE_REC_ALIGN(x)
#define FUSE_DIRENT_SIZE(d)  FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + (d)->namelen)

/*
 * One READDIRPLUS entry: a lookup result followed by the directory entry. Nesting a struct that
 * ends in a flexible array is a GNU extension (the kernel header does the same); the pragmas
 * keep -pedantic builds quiet about it.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
struct fuse_direntplus {
	struct fuse_entry_out entry_out;
	struct fuse_dirent dirent;
};
#pragma GCC diagnostic pop

#define FUSE_NAME_OFFSET_DIRENTPLUS offsetof(struct fuse_direntplus, dirent.name)

/* Bytes taken by one READDIRPLUS entry, padding included. */
#define FUSE_DIRENTPLUS_SIZE(d) FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + (d)->dirent.namelen)

/* ---- Notifications (server to kernel) ------------------------------------------------ */

struct fuse_notify_poll_wakeup_out {
	uint64_t kh; /* from fuse_poll_in.kh */
};

/* Drop cached attributes; off >= 0 also drops cached pages from off (len <= 0: to EOF). */
struct fuse_notify_inval_inode_out {
	uint64_t ino;
	int64_t off;
	int64_t len;
};

/* Drop a cached name; namelen bytes of name plus a NUL follow. */
struct fuse_notify_inval_entry_out {
	uint64_t parent;
	uint32_t namelen;
	uint32_t flags; /* FUSE_EXPIRE_ONLY */
};

/* Like INVAL_ENTRY, but only if the entry still points at child; the name follows. */
struct fuse_notify_delete_out {
	uint64_t parent;
	uint64_t child;
	uint32_t namelen;
	uint32_t padding;
};

/* Push size bytes (which follow) into the page cache of nodeid. */
struct fuse_notify_store_out {
	uint64_t nodeid;
	uint64_t offset;
	uint32_t size;
	uint32_t padding;
};

/* Ask for cached data back; the kernel answers with a FUSE_NOTIFY_REPLY request. */
struct fuse_notify_retrieve_out {
	uint64_t notify_unique; /* echoed as the NOTIFY_REPLY's unique */
	uint64_t nodeid;
	uint64_t offset;
	uint32_t size;
	uint32_t padding;
};

/* Argument of the FUSE_NOTIFY_REPLY request; laid out to match fuse_write_in. */
struct fuse_notify_retrieve_in {
	uint64_t dummy1;
	uint64_t offset;
	uint32_t size;
	uint32_t dummy2;
	uint64_t dummy3;
	uint64_t dummy4;
};

/* Try to evict unused inodes; count uint64_t node IDs follow. */
struct fuse_notify_prune_out {
	uint32_t count;
	uint32_t padding;
	uint64_t spare;
};

/* ---- /dev/fuse ioctls ---------------------------------------------------------------- */

/* Argument of FUSE_DEV_IOC_BACKING_OPEN: a file to pass I/O through to. */
struct fuse_backing_map {
	int32_t fd;
	uint32_t flags; /* must be 0 */
	uint64_t padding;
};

#define FUSE_DEV_IOC_MAGIC 229
/* Attach this fd to the connection of the /dev/fuse fd passed as argument. */
#define FUSE_DEV_IOC_CLONE _IOR(FUSE_DEV_IOC_MAGIC, 0, uint32_t)
/* Register a backing file; returns its backing_id. */
#define FUSE_DEV_IOC_BACKING_OPEN _IOW(FUSE_DEV_IOC_MAGIC, 1, struct fuse_backing_map)
/* Drop a backing_id. */
#define FUSE_DEV_IOC_BACKING_CLOSE _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t)
/* Before mounting: have the kernel run FUSE_INIT during mount(2) (ENOTTY if unsupported). */
#define FUSE_DEV_IOC_SYNC_INIT _IO(FUSE_DEV_IOC_MAGIC, 3)

/* ---- FUSE-over-io-uring -------------------------------------------------------------- */

/*
 * Each ring entry is an IORING_OP_URING_CMD on the /dev/fuse fd, on a ring set up with
 * IORING_SETUP_SQE128. sqe->addr points at FUSE_URING_IOV_SEGS iovecs (the header buffer, a
 * struct fuse_uring_req_header, then the payload buffer), sqe->len is FUSE_URING_IOV_SEGS,
 * sqe->cmd_op is an enum fuse_uring_cmd and the SQE's command area holds a struct
 * fuse_uring_cmd_req. The payload buffer must be at least
 * max(FUSE_MIN_READ_BUFFER, max_write, max_pages * page size) bytes. Entries can only be
 * registered after the FUSE_INIT reply (EAGAIN before). Notifications still go through
 * write(2) on /dev/fuse.
 */

/* Room for the fuse_in_header / fuse_out_header and for the per-opcode argument. */
#define FUSE_URING_IN_OUT_HEADER_SZ 128
#define FUSE_URING_OP_IN_OUT_SZ	    128

/* Per-entry bookkeeping, part of the header buffer. */
struct fuse_uring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;  /* kernel sets it; pass it back in fuse_uring_cmd_req.commit_id */
	uint32_t payload_sz; /* bytes used in the payload buffer, either direction */
	uint32_t padding;
	uint64_t reserved;
};

/* The header buffer of a ring entry (iovec 0). */
struct fuse_uring_req_header {
	/* struct fuse_in_header from the kernel, struct fuse_out_header back */
	char in_out[FUSE_URING_IN_OUT_HEADER_SZ];
	/* the opcode's first argument (e.g. struct fuse_write_in), if any */
	char op_in[FUSE_URING_OP_IN_OUT_SZ];
	struct fuse_uring_ent_in_out ring_ent_in_out;
};

/* sqe->cmd_op values. */
enum fuse_uring_cmd {
	FUSE_IO_URING_CMD_INVALID = 0,
	/* hand a ring entry to the kernel; completes when a request is in it */
	FUSE_IO_URING_CMD_REGISTER = 1,
	/* send the reply held in the entry and wait for the next request */
	FUSE_IO_URING_CMD_COMMIT_AND_FETCH = 2,
};

/* Lives in the 80-byte command area of a 128-byte SQE. */
struct fuse_uring_cmd_req {
	uint64_t flags;
	uint64_t commit_id; /* for COMMIT_AND_FETCH: the entry's commit_id */
	uint16_t qid;	    /* queue index; the kernel keeps one queue per possible CPU */
	uint8_t padding[6];
};

/* ---- Kernel-internal values a server needs to know ------------------------------------- */

/*
 * Not part of the uapi header (fs/fuse/fuse_dev_i.h): ordinary requests get even unique IDs,
 * stepping by FUSE_REQ_ID_STEP; an INTERRUPT request carries the interrupted request's ID with
 * this bit set. A server answers an INTERRUPT (EAGAIN: retry later, ENOSYS: never send more)
 * with that odd ID.
 */
#define FUSE_INT_REQ_BIT (1ULL << 0)
#define FUSE_REQ_ID_STEP (1ULL << 1)

/* Not part of the uapi header (fs/fuse/dev_uring.c): iovecs per ring entry registration. */
#define FUSE_URING_IOV_SEGS 2

/* ---- Layout checks ------------------------------------------------------------------- */

_Static_assert(sizeof(struct fuse_attr) == 88, "struct fuse_attr is 88 bytes");
_Static_assert(sizeof(struct fuse_sx_time) == 16, "struct fuse_sx_time is 16 bytes");
_Static_assert(sizeof(struct fuse_statx) == 256, "struct fuse_statx is 256 bytes");
_Static_assert(sizeof(struct fuse_kstatfs) == 80, "struct fuse_kstatfs is 80 bytes");
_Static_assert(sizeof(struct fuse_file_lock) == 24, "struct fuse_file_lock is 24 bytes");
_Static_assert(sizeof(struct fuse_entry_out) == 128, "struct fuse_entry_out is 128 bytes");
_Static_assert(sizeof(struct fuse_forget_in) == 8, "struct fuse_forget_in is 8 bytes");
_Static_assert(sizeof(struct fuse_forget_one) == 16, "struct fuse_forget_one is 16 bytes");
_Static_assert(sizeof(struct fuse_batch_forget_in) == 8, "struct fuse_batch_forget_in is 8 bytes");
_Static_assert(sizeof(struct fuse_getattr_in) == 16, "struct fuse_getattr_in is 16 bytes");
_Static_assert(sizeof(struct fuse_attr_out) == 104, "struct fuse_attr_out is 104 bytes");
_Static_assert(sizeof(struct fuse_statx_in) == 24, "struct fuse_statx_in is 24 bytes");
_Static_assert(sizeof(struct fuse_statx_out) == 288, "struct fuse_statx_out is 288 bytes");
_Static_assert(sizeof(struct fuse_mknod_in) == 16, "struct fuse_mknod_in is 16 bytes");
_Static_assert(sizeof(struct fuse_mkdir_in) == 8, "struct fuse_mkdir_in is 8 bytes");
_Static_assert(sizeof(struct fuse_rename_in) == 8, "struct fuse_rename_in is 8 bytes");
_Static_assert(sizeof(struct fuse_rename2_in) == 16, "struct fuse_rename2_in is 16 bytes");
_Static_assert(sizeof(struct fuse_link_in) == 8, "struct fuse_link_in is 8 bytes");
_Static_assert(sizeof(struct fuse_setattr_in) == 88, "struct fuse_setattr_in is 88 bytes");
_Static_assert(sizeof(struct fuse_open_in) == 8, "struct fuse_open_in is 8 bytes");
_Static_assert(sizeof(struct fuse_create_in) == 16, "struct fuse_create_in is 16 bytes");
_Static_assert(sizeof(struct fuse_open_out) == 16, "struct fuse_open_out is 16 bytes");
_Static_assert(sizeof(struct fuse_release_in) == 24, "struct fuse_release_in is 24 bytes");
_Static_assert(sizeof(struct fuse_flush_in) == 24, "struct fuse_flush_in is 24 bytes");
_Static_assert(sizeof(struct fuse_read_in) == 40, "struct fuse_read_in is 40 bytes");
_Static_assert(sizeof(struct fuse_write_in) == 40, "struct fuse_write_in is 40 bytes");
_Static_assert(sizeof(struct fuse_write_out) == 8, "struct fuse_write_out is 8 bytes");
_Static_assert(sizeof(struct fuse_statfs_out) == 80, "struct fuse_statfs_out is 80 bytes");
_Static_assert(sizeof(struct fuse_fsync_in) == 16, "struct fuse_fsync_in is 16 bytes");
_Static_assert(sizeof(struct fuse_setxattr_in) == 16, "struct fuse_setxattr_in is 16 bytes");
_Static_assert(sizeof(struct fuse_getxattr_in) == 8, "struct fuse_getxattr_in is 8 bytes");
_Static_assert(sizeof(struct fuse_getxattr_out) == 8, "struct fuse_getxattr_out is 8 bytes");
_Static_assert(sizeof(struct fuse_lk_in) == 48, "struct fuse_lk_in is 48 bytes");
_Static_assert(sizeof(struct fuse_lk_out) == 24, "struct fuse_lk_out is 24 bytes");
_Static_assert(sizeof(struct fuse_access_in) == 8, "struct fuse_access_in is 8 bytes");
_Static_assert(sizeof(struct fuse_init_in) == 64, "struct fuse_init_in is 64 bytes");
_Static_assert(sizeof(struct fuse_init_out) == 64, "struct fuse_init_out is 64 bytes");
_Static_assert(sizeof(struct cuse_init_in) == 16, "struct cuse_init_in is 16 bytes");
_Static_assert(sizeof(struct cuse_init_out) == 72, "struct cuse_init_out is 72 bytes");
_Static_assert(sizeof(struct fuse_interrupt_in) == 8, "struct fuse_interrupt_in is 8 bytes");
_Static_assert(sizeof(struct fuse_bmap_in) == 16, "struct fuse_bmap_in is 16 bytes");
_Static_assert(sizeof(struct fuse_bmap_out) == 8, "struct fuse_bmap_out is 8 bytes");
_Static_assert(sizeof(struct fuse_ioctl_in) == 32, "struct fuse_ioctl_in is 32 bytes");
_Static_assert(sizeof(struct fuse_ioctl_iovec) == 16, "struct fuse_ioctl_iovec is 16 bytes");
_Static_assert(sizeof(struct fuse_ioctl_out) == 16, "struct fuse_ioctl_out is 16 bytes");
_Static_assert(sizeof(struct fuse_poll_in) == 24, "struct fuse_poll_in is 24 bytes");
_Static_assert(sizeof(struct fuse_poll_out) == 8, "struct fuse_poll_out is 8 bytes");
_Static_assert(sizeof(struct fuse_fallocate_in) == 32, "struct fuse_fallocate_in is 32 bytes");
_Static_assert(sizeof(struct fuse_lseek_in) == 24, "struct fuse_lseek_in is 24 bytes");
_Static_assert(sizeof(struct fuse_lseek_out) == 8, "struct fuse_lseek_out is 8 bytes");
_Static_assert(sizeof(struct fuse_copy_file_range_in) == 56,
	       "struct fuse_copy_file_range_in is 56 bytes");
_Static_assert(sizeof(struct fuse_copy_file_range_out) == 8,
	       "struct fuse_copy_file_range_out is 8 bytes");
_Static_assert(sizeof(struct fuse_setupmapping_in) == 40,
	       "struct fuse_setupmapping_in is 40 bytes");
_Static_assert(sizeof(struct fuse_removemapping_in) == 4,
	       "struct fuse_removemapping_in is 4 bytes");
_Static_assert(sizeof(struct fuse_removemapping_one) == 16,
	       "struct fuse_removemapping_one is 16 bytes");
_Static_assert(sizeof(struct fuse_syncfs_in) == 8, "struct fuse_syncfs_in is 8 bytes");
_Static_assert(sizeof(struct fuse_in_header) == 40, "struct fuse_in_header is 40 bytes");
_Static_assert(sizeof(struct fuse_out_header) == 16, "struct fuse_out_header is 16 bytes");
_Static_assert(sizeof(struct fuse_secctx) == 8, "struct fuse_secctx is 8 bytes");
_Static_assert(sizeof(struct fuse_secctx_header) == 8, "struct fuse_secctx_header is 8 bytes");
_Static_assert(sizeof(struct fuse_ext_header) == 8, "struct fuse_ext_header is 8 bytes");
_Static_assert(sizeof(struct fuse_supp_groups) == 4, "struct fuse_supp_groups is 4 bytes");
_Static_assert(sizeof(struct fuse_dirent) == 24, "struct fuse_dirent is 24 bytes");
_Static_assert(sizeof(struct fuse_direntplus) == 152, "struct fuse_direntplus is 152 bytes");
_Static_assert(sizeof(struct fuse_notify_poll_wakeup_out) == 8,
	       "struct fuse_notify_poll_wakeup_out is 8 bytes");
_Static_assert(sizeof(struct fuse_notify_inval_inode_out) == 24,
	       "struct fuse_notify_inval_inode_out is 24 bytes");
_Static_assert(sizeof(struct fuse_notify_inval_entry_out) == 16,
	       "struct fuse_notify_inval_entry_out is 16 bytes");
_Static_assert(sizeof(struct fuse_notify_delete_out) == 24,
	       "struct fuse_notify_delete_out is 24 bytes");
_Static_assert(sizeof(struct fuse_notify_store_out) == 24,
	       "struct fuse_notify_store_out is 24 bytes");
_Static_assert(sizeof(struct fuse_notify_retrieve_out) == 32,
	       "struct fuse_notify_retrieve_out is 32 bytes");
_Static_assert(sizeof(struct fuse_notify_retrieve_in) == 40,
	       "struct fuse_notify_retrieve_in is 40 bytes");
_Static_assert(sizeof(struct fuse_notify_prune_out) == 16,
	       "struct fuse_notify_prune_out is 16 bytes");
_Static_assert(sizeof(struct fuse_backing_map) == 16, "struct fuse_backing_map is 16 bytes");
_Static_assert(sizeof(struct fuse_uring_ent_in_out) == 32,
	       "struct fuse_uring_ent_in_out is 32 bytes");
_Static_assert(sizeof(struct fuse_uring_req_header) == 288,
	       "struct fuse_uring_req_header is 288 bytes");
_Static_assert(sizeof(struct fuse_uring_cmd_req) == 24, "struct fuse_uring_cmd_req is 24 bytes");

_Static_assert(FUSE_NAME_OFFSET == 24, "fuse_dirent name offset");
_Static_assert(FUSE_NAME_OFFSET_DIRENTPLUS == 152, "fuse_direntplus name offset");
_Static_assert(offsetof(struct fuse_uring_req_header, op_in) == FUSE_URING_IN_OUT_HEADER_SZ,
	       "fuse_uring_req_header.op_in offset");
_Static_assert(offsetof(struct fuse_uring_req_header, ring_ent_in_out) ==
		       FUSE_URING_IN_OUT_HEADER_SZ + FUSE_URING_OP_IN_OUT_SZ,
	       "fuse_uring_req_header.ring_ent_in_out offset");
_Static_assert(sizeof(struct fuse_in_header) <= FUSE_URING_IN_OUT_HEADER_SZ,
	       "fuse_in_header fits the ring header area");
_Static_assert(sizeof(struct fuse_uring_cmd_req) <= 80, "fuse_uring_cmd_req fits an SQE128 cmd");
_Static_assert(offsetof(struct fuse_init_out, request_timeout) == 40,
	       "fuse_init_out.request_timeout offset");
_Static_assert(offsetof(struct fuse_in_header, total_extlen) == 36,
	       "fuse_in_header.total_extlen offset");
_Static_assert(offsetof(struct fuse_statx, atime) == 64, "fuse_statx.atime offset");
_Static_assert(offsetof(struct fuse_statx_out, stat) == 32, "fuse_statx_out.stat offset");

#endif /* RINGFUSE_KERNEL_H */
