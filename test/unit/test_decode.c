/*
 * Decoder and reply-encoder tests on the memory transport: requests built byte by byte as the
 * kernel would send them, in both the /dev/fuse layout and the io-uring layout, fed to a tiny
 * recording filesystem. Checks that well-formed requests reach the right operation with the
 * right arguments, that malformed ones get the right error and never reach an operation, that
 * replies are laid out exactly as the kernel structs say, and that the one-reply rule holds.
 * Ends with a seeded random-message run that only has to not crash (and not strand requests).
 *
 * Exit status 0 when every check passed, 1 otherwise; each check prints one line.
 */
#include "ringfuse_i.h"
#include "transport/mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

static int checks, failures;

#define CHECK(cond, ...)                                              \
	do {                                                          \
		checks++;                                             \
		if (cond) {                                           \
			printf("ok   - ");                            \
		} else {                                              \
			failures++;                                   \
			printf("FAIL - %s:%d: ", __FILE__, __LINE__); \
		}                                                     \
		printf(__VA_ARGS__);                                  \
		printf("\n");                                         \
	} while (0)

/* ---- a recording filesystem ---- */

static struct {
	uint32_t op; /* FUSE opcode of the last operation called */
	unsigned int calls;
	rf_ino ino, ino2;
	char name[512], name2[512];
	size_t size;
	off_t off, off2;
	mode_t mode;
	dev_t rdev;
	unsigned int flags;
	int to_set, mask, whence, datasync;
	struct stat st;
	bool fi_null;
	struct rf_file_info fi, fi2;
	struct rf_ctx ctx;
	unsigned char data[4096];
	size_t datalen;
	rf_ino forget_ino[8];
	uint64_t forget_n[8];
	unsigned int nforget;
	int second_reply; /* what the second rf_reply_err() of ACCESS returned */
	rf_req *interrupted;
	bool saw_interrupted;
	unsigned int inits, destroys;
} rec;

static bool defer_mode;
static rf_req *saved;
static const char *readlink_target = "target";

static void note(rf_req *req, uint32_t op, rf_ino ino)
{
	rec.op = op;
	rec.calls++;
	rec.ino = ino;
	rec.ctx = *rf_req_ctx(req);
}

static void copy_name(char *dst, const char *src)
{
	snprintf(dst, sizeof(rec.name), "%s", src);
}

static struct stat sample_stat(rf_ino ino, mode_t mode)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_ino = ino;
	st.st_mode = mode;
	st.st_nlink = 2;
	st.st_uid = 1000;
	st.st_gid = 100;
	st.st_size = 12345;
	st.st_blocks = 24;
	st.st_blksize = 4096;
	st.st_atim.tv_sec = 1700000001;
	st.st_atim.tv_nsec = 111;
	st.st_mtim.tv_sec = 1700000002;
	st.st_mtim.tv_nsec = 222;
	st.st_ctim.tv_sec = 1700000003;
	st.st_ctim.tv_nsec = 333;
	st.st_rdev = makedev(8, 1);
	return st;
}

static struct rf_entry_param sample_entry(rf_ino ino, mode_t mode)
{
	struct rf_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.generation = 7;
	e.attr = sample_stat(ino, mode);
	e.entry_timeout = 1.5;
	e.attr_timeout = 2.25;
	return e;
}

static void fs_init(void *userdata, struct rf_conn_info *conn)
{
	(void)userdata;
	(void)conn;
	rec.inits++;
}

static unsigned int destroy_calls; /* survives reset_rec() */

static void fs_destroy(void *userdata)
{
	(void)userdata;
	rec.destroys++;
	destroy_calls++;
}

static void fs_lookup(rf_req *req, rf_ino parent, const char *name)
{
	struct rf_entry_param e = sample_entry(100, S_IFREG | 0644);

	note(req, FUSE_LOOKUP, parent);
	copy_name(rec.name, name);
	rf_reply_entry(req, &e);
}

static void fs_forget(rf_req *req, rf_ino ino, uint64_t nlookup)
{
	note(req, FUSE_FORGET, ino);
	if (rec.nforget < 8) {
		rec.forget_ino[rec.nforget] = ino;
		rec.forget_n[rec.nforget] = nlookup;
	}
	rec.nforget++;
	rf_reply_none(req);
}

static void fs_getattr(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	struct stat st = sample_stat(ino, S_IFREG | 0600);

	note(req, FUSE_GETATTR, ino);
	rec.fi_null = fi == NULL;
	if (fi)
		rec.fi = *fi;
	rf_reply_attr(req, &st, 2.25);
}

static void fs_setattr(rf_req *req, rf_ino ino, struct stat *attr, int to_set,
		       struct rf_file_info *fi)
{
	note(req, FUSE_SETATTR, ino);
	rec.st = *attr;
	rec.to_set = to_set;
	rec.fi_null = fi == NULL;
	if (fi)
		rec.fi = *fi;
	rf_reply_attr(req, attr, 1.0);
}

static void fs_readlink(rf_req *req, rf_ino ino)
{
	note(req, FUSE_READLINK, ino);
	rec.second_reply = rf_reply_readlink(req, readlink_target);
}

static void fs_mknod(rf_req *req, rf_ino parent, const char *name, mode_t mode, dev_t rdev)
{
	struct rf_entry_param e = sample_entry(101, mode);

	note(req, FUSE_MKNOD, parent);
	copy_name(rec.name, name);
	rec.mode = mode;
	rec.rdev = rdev;
	rf_reply_entry(req, &e);
}

static void fs_mkdir(rf_req *req, rf_ino parent, const char *name, mode_t mode)
{
	struct rf_entry_param e = sample_entry(102, S_IFDIR | mode);

	note(req, FUSE_MKDIR, parent);
	copy_name(rec.name, name);
	rec.mode = mode;
	rf_reply_entry(req, &e);
}

static void fs_unlink(rf_req *req, rf_ino parent, const char *name)
{
	note(req, FUSE_UNLINK, parent);
	copy_name(rec.name, name);
	rf_reply_err(req, 0);
}

static void fs_rmdir(rf_req *req, rf_ino parent, const char *name)
{
	note(req, FUSE_RMDIR, parent);
	copy_name(rec.name, name);
	rf_reply_err(req, ENOTEMPTY);
}

static void fs_symlink(rf_req *req, const char *link, rf_ino parent, const char *name)
{
	struct rf_entry_param e = sample_entry(103, S_IFLNK | 0777);

	note(req, FUSE_SYMLINK, parent);
	copy_name(rec.name, name);
	copy_name(rec.name2, link);
	rf_reply_entry(req, &e);
}

static void fs_rename(rf_req *req, rf_ino parent, const char *name, rf_ino newparent,
		      const char *newname, unsigned int flags)
{
	note(req, FUSE_RENAME, parent);
	copy_name(rec.name, name);
	copy_name(rec.name2, newname);
	rec.ino2 = newparent;
	rec.flags = flags;
	rf_reply_err(req, 0);
}

static void fs_link(rf_req *req, rf_ino ino, rf_ino newparent, const char *newname)
{
	struct rf_entry_param e = sample_entry(ino, S_IFREG | 0644);

	note(req, FUSE_LINK, ino);
	rec.ino2 = newparent;
	copy_name(rec.name, newname);
	rf_reply_entry(req, &e);
}

static void fs_open(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	note(req, FUSE_OPEN, ino);
	rec.fi = *fi;
	fi->fh = 77;
	fi->direct_io = 1;
	fi->keep_cache = 1;
	fi->passthrough = 1;
	fi->backing_id = 5;
	rf_reply_open(req, fi);
}

static void fs_read(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	size_t cap;
	unsigned char *p = rf_reply_payload(req, &cap);

	note(req, FUSE_READ, ino);
	rec.size = size;
	rec.off = off;
	rec.fi = *fi;
	if (size > cap)
		size = cap;
	for (size_t i = 0; i < size; i++)
		p[i] = (unsigned char)(i ^ 0x5a);
	rf_reply_data(req, size);
}

static void fs_write(rf_req *req, rf_ino ino, const char *buf, size_t size, off_t off,
		     struct rf_file_info *fi)
{
	note(req, FUSE_WRITE, ino);
	rec.size = size;
	rec.off = off;
	rec.fi = *fi;
	rec.datalen = size < sizeof(rec.data) ? size : sizeof(rec.data);
	memcpy(rec.data, buf, rec.datalen);
	rf_reply_write(req, size);
}

static void fs_flush(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	note(req, FUSE_FLUSH, ino);
	rec.fi = *fi;
	if (defer_mode) {
		saved = req;
		return;
	}
	rf_reply_err(req, 0);
}

static void fs_release(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	note(req, FUSE_RELEASE, ino);
	rec.fi = *fi;
	rf_reply_err(req, 0);
}

static void fs_fsync(rf_req *req, rf_ino ino, int datasync, struct rf_file_info *fi)
{
	note(req, FUSE_FSYNC, ino);
	rec.datasync = datasync;
	rec.fi = *fi;
	if (defer_mode) {
		saved = req;
		return;
	}
	rf_reply_err(req, 0);
}

static void fs_opendir(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	note(req, FUSE_OPENDIR, ino);
	fi->fh = 88;
	fi->cache_readdir = 1;
	rf_reply_open(req, fi);
}

static void fs_readdir(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	static const char *names[] = {".", "..", "file.txt"};
	size_t cap, used = 0;
	char *p = rf_reply_payload(req, &cap);

	note(req, FUSE_READDIR, ino);
	rec.size = size;
	rec.off = off;
	rec.fi = *fi;
	if (size > cap)
		size = cap;
	for (off_t i = off < 0 ? 3 : off; i < 3; i++) {
		struct stat st = sample_stat(i == 2 ? 200 : 1, i == 2 ? S_IFREG : S_IFDIR);
		size_t n = rf_add_direntry(req, p + used, size - used, names[i], &st, i + 1);

		if (n > size - used)
			break;
		used += n;
	}
	rf_reply_data(req, used);
}

static void fs_readdirplus(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	size_t cap, used = 0;
	char *p = rf_reply_payload(req, &cap);

	note(req, FUSE_READDIRPLUS, ino);
	rec.size = size;
	rec.off = off;
	rec.fi = *fi;
	if (size > cap)
		size = cap;
	if (off == 0) {
		struct rf_entry_param e = sample_entry(300, S_IFLNK | 0777);
		size_t n = rf_add_direntry_plus(req, p, size, "lnk", &e, 1);

		if (n <= size)
			used = n;
	}
	rf_reply_data(req, used);
}

static void fs_setxattr(rf_req *req, rf_ino ino, const char *name, const char *value, size_t size,
			int flags)
{
	note(req, FUSE_SETXATTR, ino);
	copy_name(rec.name, name);
	rec.size = size;
	rec.flags = (unsigned int)flags;
	rec.datalen = size < sizeof(rec.data) ? size : sizeof(rec.data);
	memcpy(rec.data, value, rec.datalen);
	rf_reply_err(req, 0);
}

static void fs_getxattr(rf_req *req, rf_ino ino, const char *name, size_t size)
{
	note(req, FUSE_GETXATTR, ino);
	copy_name(rec.name, name);
	rec.size = size;
	if (size == 0)
		rf_reply_xattr(req, 3);
	else if (size < 3)
		rf_reply_err(req, ERANGE);
	else
		rf_reply_buf(req, "abc", 3);
}

static void fs_listxattr(rf_req *req, rf_ino ino, size_t size)
{
	note(req, FUSE_LISTXATTR, ino);
	rec.size = size;
	if (size == 0)
		rf_reply_xattr(req, 7);
	else
		rf_reply_buf(req, "user.a", 7);
}

static void fs_removexattr(rf_req *req, rf_ino ino, const char *name)
{
	note(req, FUSE_REMOVEXATTR, ino);
	copy_name(rec.name, name);
	rf_reply_err(req, ENODATA);
}

/* Replies twice on purpose: the second must be refused. */
static void fs_access(rf_req *req, rf_ino ino, int mask)
{
	note(req, FUSE_ACCESS, ino);
	rec.mask = mask;
	rf_reply_err(req, 0);
	rec.second_reply = rf_reply_err(req, EACCES);
}

static void fs_create(rf_req *req, rf_ino parent, const char *name, mode_t mode,
		      struct rf_file_info *fi)
{
	struct rf_entry_param e = sample_entry(104, S_IFREG | mode);

	note(req, FUSE_CREATE, parent);
	copy_name(rec.name, name);
	rec.mode = mode;
	rec.fi = *fi;
	fi->fh = 99;
	fi->nonseekable = 1;
	rf_reply_create(req, &e, fi);
}

static void fs_fallocate(rf_req *req, rf_ino ino, int mode, off_t offset, off_t length,
			 struct rf_file_info *fi)
{
	note(req, FUSE_FALLOCATE, ino);
	rec.flags = (unsigned int)mode;
	rec.off = offset;
	rec.off2 = length;
	rec.fi = *fi;
	rf_reply_err(req, 0);
}

static void fs_copy_file_range(rf_req *req, rf_ino ino_in, off_t off_in, struct rf_file_info *fi_in,
			       rf_ino ino_out, off_t off_out, struct rf_file_info *fi_out,
			       size_t len, int flags)
{
	note(req, FUSE_COPY_FILE_RANGE, ino_in);
	rec.off = off_in;
	rec.off2 = off_out;
	rec.fi = *fi_in;
	rec.fi2 = *fi_out;
	rec.ino2 = ino_out;
	rec.size = len;
	rec.flags = (unsigned int)flags;
	rf_reply_write(req, len);
}

static void fs_lseek(rf_req *req, rf_ino ino, off_t off, int whence, struct rf_file_info *fi)
{
	note(req, FUSE_LSEEK, ino);
	rec.off = off;
	rec.whence = whence;
	rec.fi = *fi;
	rf_reply_lseek(req, off + 4096);
}

static void fs_tmpfile(rf_req *req, rf_ino parent, mode_t mode, struct rf_file_info *fi)
{
	struct rf_entry_param e = sample_entry(105, S_IFREG | mode);

	note(req, FUSE_TMPFILE, parent);
	rec.mode = mode;
	rec.fi = *fi;
	rf_reply_create(req, &e, fi);
}

static void fs_interrupt(rf_req *req, void *userdata)
{
	(void)userdata;
	rec.interrupted = req;
	rec.saw_interrupted = rf_req_interrupted(req);
}

static int syncfs_errno;

static void fs_syncfs(rf_req *req, rf_ino ino)
{
	note(req, FUSE_SYNCFS, ino);
	rf_reply_err(req, syncfs_errno);
}

static const struct rf_ops fs_ops = {
	.init = fs_init,
	.destroy = fs_destroy,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.readlink = fs_readlink,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.link = fs_link,
	.open = fs_open,
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.release = fs_release,
	.fsync = fs_fsync,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = NULL,
	.fsyncdir = NULL,
	.statfs = NULL,
	.setxattr = fs_setxattr,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.removexattr = fs_removexattr,
	.access = fs_access,
	.create = fs_create,
	.fallocate = fs_fallocate,
	.readdirplus = fs_readdirplus,
	.copy_file_range = fs_copy_file_range,
	.lseek = fs_lseek,
	.tmpfile = fs_tmpfile,
	.interrupt = fs_interrupt,
	.syncfs = fs_syncfs,
};

/* ---- building and feeding requests ---- */

enum layout { CLASSIC, SPLIT };
static const char *const layout_name[] = {"classic", "split"};

static rf_session *se;
static struct rf_mem_reply R;
static unsigned char msgbuf[RF_MEM_MSG_MAX];
static uint64_t next_unique = 2;
static uint64_t last_unique;

static void reset_rec(void)
{
	memset(&rec, 0, sizeof(rec));
}

static int feed_ext(rf_session *s, enum layout lay, uint32_t opcode, uint64_t nodeid,
		    const void *op, size_t oplen, const void *pl, size_t pllen, uint16_t extlen)
{
	struct fuse_in_header ih;

	memset(&ih, 0, sizeof(ih));
	ih.len = (uint32_t)(sizeof(ih) + oplen + pllen);
	ih.opcode = opcode;
	ih.unique = next_unique;
	ih.nodeid = nodeid;
	ih.uid = 1000;
	ih.gid = 100;
	ih.pid = (uint32_t)getpid();
	ih.total_extlen = extlen;
	last_unique = next_unique;
	next_unique += 2;
	reset_rec();
	if (lay == SPLIT)
		return rf_mem_feed_split(s, &ih, op, oplen, pl, pllen, &R);
	memcpy(msgbuf, &ih, sizeof(ih));
	/* Both tested: with one alone gcc -O3 sees a path with a NULL source (-Wnonnull). */
	if (oplen && op)
		memcpy(msgbuf + sizeof(ih), op, oplen);
	if (pllen && pl)
		memcpy(msgbuf + sizeof(ih) + oplen, pl, pllen);
	return rf_mem_feed_msg(s, msgbuf, ih.len, &R);
}

static int feed(enum layout lay, uint32_t opcode, uint64_t nodeid, const void *op, size_t oplen,
		const void *pl, size_t pllen)
{
	return feed_ext(se, lay, opcode, nodeid, op, oplen, pl, pllen, 0);
}

/* Concatenate NUL-terminated strings into buf; returns the bytes used. */
static size_t strs(char *buf, int n, ...)
{
	va_list ap;
	size_t used = 0;

	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		const char *s = va_arg(ap, const char *);
		size_t l = strlen(s) + 1;

		memcpy(buf + used, s, l);
		used += l;
	}
	va_end(ap);
	return used;
}

static uint64_t bad_count(void)
{
	return rf_session_totals(se).bad_requests;
}

static bool replied_err(int err)
{
	return R.count == 1 && R.replied && R.error == -err && R.len == 0 &&
	       R.unique == last_unique;
}

static bool replied_ok(size_t len)
{
	return R.count == 1 && R.replied && R.error == 0 && R.len == len && R.unique == last_unique;
}

static bool attr_matches(const struct fuse_attr *a, const struct stat *st)
{
	return a->ino == st->st_ino && a->size == (uint64_t)st->st_size &&
	       a->blocks == (uint64_t)st->st_blocks && a->atime == (uint64_t)st->st_atim.tv_sec &&
	       a->atimensec == (uint32_t)st->st_atim.tv_nsec &&
	       a->mtime == (uint64_t)st->st_mtim.tv_sec &&
	       a->mtimensec == (uint32_t)st->st_mtim.tv_nsec &&
	       a->ctime == (uint64_t)st->st_ctim.tv_sec &&
	       a->ctimensec == (uint32_t)st->st_ctim.tv_nsec && a->mode == st->st_mode &&
	       a->nlink == st->st_nlink && a->uid == st->st_uid && a->gid == st->st_gid &&
	       a->rdev == (uint32_t)st->st_rdev && a->blksize == (uint32_t)st->st_blksize &&
	       a->flags == 0;
}

/* ---- the tests ---- */

static void test_init(void)
{
	struct fuse_init_in in;
	struct fuse_init_out out;
	struct fuse_getattr_in ga = {0};
	uint64_t bad = bad_count();
	int ret;

	ret = feed(CLASSIC, FUSE_GETATTR, 1, &ga, sizeof(ga), NULL, 0);
	CHECK(ret == 1 && replied_err(EIO) && rec.calls == 0,
	      "request before INIT is answered EIO without reaching the filesystem");
	CHECK(bad_count() == bad + 1, "request before INIT counted as bad");

	memset(&in, 0, sizeof(in));
	in.major = FUSE_KERNEL_VERSION;
	in.minor = FUSE_KERNEL_MINOR_VERSION;
	in.max_readahead = 128 * 1024;
	in.flags = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_SETXATTR_EXT | FUSE_INIT_EXT |
		   FUSE_MAX_PAGES | FUSE_DO_READDIRPLUS | FUSE_PARALLEL_DIROPS;
	ret = feed(CLASSIC, FUSE_INIT, 0, &in, sizeof(in), NULL, 0);
	memcpy(&out, R.body, sizeof(out));
	CHECK(ret == 1 && R.replied && R.error == 0 && R.len >= 24 &&
		      out.major == FUSE_KERNEL_VERSION && out.max_write >= 4096,
	      "INIT answered (len %zu, protocol %u.%u, max_write %u)", R.len, out.major, out.minor,
	      out.max_write);
	CHECK(rec.inits == 1, "ops.init ran once");
	CHECK(atomic_load(&se->initialized), "session initialized after INIT");
	CHECK(se->tp == NULL, "memory session starts no transport");

	ret = feed(CLASSIC, FUSE_INIT, 0, &in, sizeof(in), NULL, 0);
	CHECK(ret == 1 && replied_err(EIO) && rec.inits == 0, "second INIT refused with EIO");
}

static void test_lookup(enum layout lay)
{
	const char *L = layout_name[lay];
	struct rf_entry_param e = sample_entry(100, S_IFREG | 0644);
	struct fuse_entry_out eo;
	char pl[64];
	int ret;

	ret = feed(lay, FUSE_LOOKUP, 1, NULL, 0, pl, strs(pl, 1, "hello"));
	CHECK(ret == 1 && rec.op == FUSE_LOOKUP && rec.ino == 1 && !strcmp(rec.name, "hello"),
	      "%s LOOKUP reaches lookup(1, \"hello\")", L);
	CHECK(rec.ctx.uid == 1000 && rec.ctx.gid == 100 && rec.ctx.pid == getpid() &&
		      rec.ctx.umask == 0,
	      "%s LOOKUP carries the caller's uid/gid/pid", L);
	memcpy(&eo, R.body, sizeof(eo));
	CHECK(replied_ok(sizeof(struct fuse_entry_out)) && eo.nodeid == 100 && eo.generation == 7 &&
		      eo.entry_valid == 1 && eo.entry_valid_nsec == 500000000 &&
		      eo.attr_valid == 2 && eo.attr_valid_nsec == 250000000 &&
		      attr_matches(&eo.attr, &e.attr),
	      "%s LOOKUP reply is a byte-exact fuse_entry_out", L);
}

static void test_getattr(enum layout lay)
{
	const char *L = layout_name[lay];
	struct fuse_getattr_in ga = {0};
	struct fuse_attr_out ao;
	struct stat st = sample_stat(5, S_IFREG | 0600);

	feed(lay, FUSE_GETATTR, 5, &ga, sizeof(ga), NULL, 0);
	CHECK(rec.op == FUSE_GETATTR && rec.ino == 5 && rec.fi_null,
	      "%s GETATTR without FH passes fi == NULL", L);
	memcpy(&ao, R.body, sizeof(ao));
	CHECK(replied_ok(sizeof(ao)) && ao.attr_valid == 2 && ao.attr_valid_nsec == 250000000 &&
		      attr_matches(&ao.attr, &st),
	      "%s GETATTR reply is a byte-exact fuse_attr_out", L);

	ga.getattr_flags = FUSE_GETATTR_FH;
	ga.fh = 0xfeed;
	feed(lay, FUSE_GETATTR, 5, &ga, sizeof(ga), NULL, 0);
	CHECK(!rec.fi_null && rec.fi.fh == 0xfeed && rec.fi.fh_valid,
	      "%s GETATTR with FUSE_GETATTR_FH passes the fh", L);
}

static void test_read(enum layout lay)
{
	const char *L = layout_name[lay];
	struct fuse_read_in ri = {0};
	bool pattern = true;

	ri.fh = 7;
	ri.offset = 10;
	ri.size = 100;
	ri.flags = O_RDWR;
	ri.read_flags = FUSE_READ_LOCKOWNER;
	ri.lock_owner = 0xabc;
	feed(lay, FUSE_READ, 9, &ri, sizeof(ri), NULL, 0);
	CHECK(rec.op == FUSE_READ && rec.ino == 9 && rec.size == 100 && rec.off == 10 &&
		      rec.fi.fh == 7 && rec.fi.flags == O_RDWR && rec.fi.lock_owner == 0xabc,
	      "%s READ reaches read(9, 100, 10, fh 7, lock owner)", L);
	for (size_t i = 0; i < 100; i++)
		if (R.body[i] != (unsigned char)(i ^ 0x5a))
			pattern = false;
	CHECK(replied_ok(100) && pattern, "%s READ zero-copy reply carries the data", L);

	rf_mem_set_out_cap(se, 4096);
	ri.size = 65536;
	feed(lay, FUSE_READ, 9, &ri, sizeof(ri), NULL, 0);
	CHECK(rec.size == 4096 && replied_ok(4096), "%s READ size capped to the reply area", L);
	rf_mem_set_out_cap(se, RF_MEM_BODY_MAX);

	ri.offset = (uint64_t)-5;
	ri.size = 10;
	feed(lay, FUSE_READ, 9, &ri, sizeof(ri), NULL, 0);
	CHECK(rec.calls == 0 && replied_err(EINVAL), "%s READ at a negative offset is EINVAL", L);
}

static void test_write(enum layout lay)
{
	const char *L = layout_name[lay];
	struct fuse_write_in wi = {0};
	struct fuse_write_out wo;

	wi.fh = 3;
	wi.offset = 3;
	wi.size = 5;
	wi.write_flags = FUSE_WRITE_LOCKOWNER;
	wi.lock_owner = 42;
	feed(lay, FUSE_WRITE, 9, &wi, sizeof(wi), "abcde", 5);
	CHECK(rec.op == FUSE_WRITE && rec.size == 5 && rec.off == 3 && rec.datalen == 5 &&
		      !memcmp(rec.data, "abcde", 5) && rec.fi.fh == 3 && rec.fi.lock_owner == 42 &&
		      rec.fi.write_flags == FUSE_WRITE_LOCKOWNER,
	      "%s WRITE reaches write(9, \"abcde\", 5, 3)", L);
	memcpy(&wo, R.body, sizeof(wo));
	CHECK(replied_ok(sizeof(wo)) && wo.size == 5, "%s WRITE reply is fuse_write_out{5}", L);
}

static void test_mkdir(enum layout lay)
{
	const char *L = layout_name[lay];
	struct fuse_mkdir_in mi = {.mode = 0755, .umask = 022};
	struct fuse_entry_out eo;
	char pl[64];

	feed(lay, FUSE_MKDIR, 1, &mi, sizeof(mi), pl, strs(pl, 1, "dir"));
	memcpy(&eo, R.body, sizeof(eo));
	CHECK(rec.op == FUSE_MKDIR && rec.ino == 1 && !strcmp(rec.name, "dir") &&
		      rec.mode == 0755 && rec.ctx.umask == 022,
	      "%s MKDIR reaches mkdir(1, \"dir\", 0755) with umask 022", L);
	CHECK(replied_ok(sizeof(eo)) && eo.nodeid == 102 && eo.attr.mode == (S_IFDIR | 0755),
	      "%s MKDIR answered with an entry", L);
}

static void test_rename2(enum layout lay)
{
	const char *L = layout_name[lay];
	struct fuse_rename2_in ri = {.newdir = 9, .flags = 1};
	struct fuse_rename_in r1 = {.newdir = 4};
	char pl[64];

	feed(lay, FUSE_RENAME2, 2, &ri, sizeof(ri), pl, strs(pl, 2, "old", "new"));
	CHECK(rec.op == FUSE_RENAME && rec.ino == 2 && !strcmp(rec.name, "old") && rec.ino2 == 9 &&
		      !strcmp(rec.name2, "new") && rec.flags == 1 && replied_ok(0),
	      "%s RENAME2 reaches rename(2, \"old\", 9, \"new\", NOREPLACE)", L);
	feed(lay, FUSE_RENAME, 2, &r1, sizeof(r1), pl, strs(pl, 2, "x", "y"));
	CHECK(rec.op == FUSE_RENAME && rec.ino2 == 4 && rec.flags == 0 && !strcmp(rec.name2, "y") &&
		      replied_ok(0),
	      "%s RENAME reaches rename(2, \"x\", 4, \"y\", 0)", L);
	feed(lay, FUSE_RENAME2, 2, &ri, sizeof(ri), pl, strs(pl, 1, "only"));
	CHECK(rec.calls == 0 && replied_err(EIO), "%s RENAME2 with one name refused", L);
}

static void test_setxattr(enum layout lay)
{
	const char *L = layout_name[lay];
	struct fuse_setxattr_in si = {.size = 3, .flags = XATTR_CREATE};
	char pl[64];
	size_t n;

	/* Extended layout, as negotiated at INIT. */
	se->conn.want |= RF_CAP_SETXATTR_EXT;
	n = strs(pl, 1, "user.x");
	memcpy(pl + n, "val", 3);
	feed(lay, FUSE_SETXATTR, 6, &si, sizeof(si), pl, n + 3);
	CHECK(rec.op == FUSE_SETXATTR && !strcmp(rec.name, "user.x") && rec.size == 3 &&
		      !memcmp(rec.data, "val", 3) && rec.flags == XATTR_CREATE && replied_ok(0),
	      "%s SETXATTR (extended struct) reaches setxattr(\"user.x\", \"val\")", L);

	/* Without FUSE_SETXATTR_EXT the kernel sends only the first 8 bytes. */
	se->conn.want &= ~RF_CAP_SETXATTR_EXT;
	feed(lay, FUSE_SETXATTR, 6, &si, FUSE_COMPAT_SETXATTR_IN_SIZE, pl, n + 3);
	CHECK(rec.op == FUSE_SETXATTR && !strcmp(rec.name, "user.x") && rec.size == 3 &&
		      !memcmp(rec.data, "val", 3) && replied_ok(0),
	      "%s SETXATTR (compat struct) reaches setxattr(\"user.x\", \"val\")", L);

	si.size = 4;
	feed(lay, FUSE_SETXATTR, 6, &si, FUSE_COMPAT_SETXATTR_IN_SIZE, pl, n + 3);
	CHECK(rec.calls == 0 && replied_err(EIO),
	      "%s SETXATTR whose value size does not match refused", L);
	se->conn.want |= RF_CAP_SETXATTR_EXT;
}

static void test_batch_forget(enum layout lay)
{
	const char *L = layout_name[lay];
	struct fuse_batch_forget_in bi = {.count = 3};
	struct fuse_forget_one one[3] = {{10, 1}, {11, 2}, {12, 3}};
	struct fuse_forget_in fi = {.nlookup = 9};
	int ret;

	ret = feed(lay, FUSE_BATCH_FORGET, 0, &bi, sizeof(bi), one, sizeof(one));
	CHECK(ret == 1 && rec.nforget == 3 && rec.forget_ino[0] == 10 && rec.forget_n[0] == 1 &&
		      rec.forget_ino[2] == 12 && rec.forget_n[2] == 3,
	      "%s BATCH_FORGET calls forget for each of 3 entries", L);
	CHECK(R.count == 1 && R.dropped && !R.replied, "%s BATCH_FORGET is never answered", L);

	ret = feed(lay, FUSE_FORGET, 33, &fi, sizeof(fi), NULL, 0);
	CHECK(ret == 1 && rec.nforget == 1 && rec.forget_ino[0] == 33 && rec.forget_n[0] == 9 &&
		      R.dropped && !R.replied,
	      "%s FORGET reaches forget(33, 9) and is not answered", L);
}

/* forget_multi: a BATCH_FORGET in one call, answered by the filesystem. */
static struct {
	unsigned int calls;
	size_t count;
	struct rf_forget_data first, last;
} multi;

static void fs_forget_multi(rf_req *req, size_t count, const struct rf_forget_data *forgets)
{
	multi.calls++;
	multi.count = count;
	multi.first = forgets[0];
	multi.last = forgets[count - 1];
	rf_reply_none(req);
}

static void test_forget_multi(void)
{
	struct rf_ops ops = {.forget_multi = fs_forget_multi};
	rf_session *s2 = rf_mem_session_new(&ops, sizeof(ops), NULL);
	struct fuse_init_in in = {.major = FUSE_KERNEL_VERSION, .minor = 45};
	struct fuse_batch_forget_in bi = {.count = 3};
	struct fuse_forget_one one[3] = {{10, 1}, {11, 2}, {12, 3}};
	struct fuse_forget_in fi = {.nlookup = 9};

	if (!s2) {
		CHECK(0, "forget_multi session created");
		return;
	}
	feed_ext(s2, CLASSIC, FUSE_INIT, 0, &in, sizeof(in), NULL, 0, 0);
	for (int lay = CLASSIC; lay <= SPLIT; lay++) {
		memset(&multi, 0, sizeof(multi));
		feed_ext(s2, lay, FUSE_BATCH_FORGET, 0, &bi, sizeof(bi), one, sizeof(one), 0);
		CHECK(multi.calls == 1 && multi.count == 3 && multi.first.ino == 10 &&
			      multi.first.nlookup == 1 && multi.last.ino == 12 &&
			      multi.last.nlookup == 3,
		      "%s BATCH_FORGET reaches forget_multi once with all 3 entries",
		      layout_name[lay]);
		CHECK(R.count == 1 && R.dropped && !R.replied,
		      "%s BATCH_FORGET answered none by forget_multi", layout_name[lay]);
	}
	memset(&multi, 0, sizeof(multi));
	feed_ext(s2, SPLIT, FUSE_FORGET, 33, &fi, sizeof(fi), NULL, 0, 0);
	CHECK(multi.calls == 1 && multi.count == 1 && multi.first.ino == 33 &&
		      multi.first.nlookup == 9 && R.dropped && !R.replied,
	      "FORGET without forget reaches forget_multi with one entry");
	rf_mem_session_destroy(s2);
}

static void test_more_ops(enum layout lay)
{
	const char *L = layout_name[lay];
	char pl[128];
	struct fuse_mknod_in mn = {
		.mode = S_IFCHR | 0600, .rdev = (uint32_t)makedev(1, 3), .umask = 077};
	struct fuse_create_in ci = {.flags = O_WRONLY | O_CREAT, .mode = 0640, .umask = 022};
	struct fuse_link_in li = {.oldnodeid = 50};
	struct fuse_open_in oi = {.flags = O_RDONLY};
	struct fuse_open_out oo;
	struct fuse_entry_out eo;
	struct fuse_setattr_in sa = {0};
	struct fuse_getxattr_in gi = {0};
	struct fuse_lseek_in ls = {.fh = 4, .offset = 100, .whence = SEEK_DATA};
	struct fuse_lseek_out lo;
	struct fuse_fallocate_in fa = {.fh = 2, .offset = 10, .length = 20, .mode = 1};
	struct fuse_copy_file_range_in cr = {
		.fh_in = 1, .off_in = 2, .nodeid_out = 3, .fh_out = 4, .off_out = 5, .len = 6};
	struct fuse_write_out wo;
	struct fuse_copy_file_range_out co;
	struct fuse_fsync_in fs = {.fh = 5, .fsync_flags = FUSE_FSYNC_FDATASYNC};
	struct fuse_release_in rl = {
		.fh = 6, .flags = O_RDWR, .release_flags = FUSE_RELEASE_FLUSH, .lock_owner = 8};
	struct fuse_access_in ai = {.mask = 4};
	struct fuse_syncfs_in sy = {0};
	struct fuse_statfs_out so;
	struct fuse_getxattr_out xo;

	feed(lay, FUSE_MKNOD, 1, &mn, sizeof(mn), pl, strs(pl, 1, "null"));
	CHECK(rec.op == FUSE_MKNOD && !strcmp(rec.name, "null") && rec.mode == (S_IFCHR | 0600) &&
		      rec.rdev == (dev_t)makedev(1, 3) && rec.ctx.umask == 077 &&
		      replied_ok(sizeof(eo)),
	      "%s MKNOD decodes mode, rdev and umask", L);

	feed(lay, FUSE_SYMLINK, 1, NULL, 0, pl, strs(pl, 2, "lnk", "/some/target"));
	CHECK(rec.op == FUSE_SYMLINK && !strcmp(rec.name, "lnk") &&
		      !strcmp(rec.name2, "/some/target") && replied_ok(sizeof(eo)),
	      "%s SYMLINK decodes name then target", L);

	feed(lay, FUSE_LINK, 7, &li, sizeof(li), pl, strs(pl, 1, "hard"));
	CHECK(rec.op == FUSE_LINK && rec.ino == 50 && rec.ino2 == 7 && !strcmp(rec.name, "hard"),
	      "%s LINK reaches link(50, 7, \"hard\")", L);

	feed(lay, FUSE_UNLINK, 1, NULL, 0, pl, strs(pl, 1, "gone"));
	CHECK(rec.op == FUSE_UNLINK && !strcmp(rec.name, "gone") && replied_ok(0),
	      "%s UNLINK reaches unlink(\"gone\")", L);
	feed(lay, FUSE_RMDIR, 1, NULL, 0, pl, strs(pl, 1, "full"));
	CHECK(rec.op == FUSE_RMDIR && replied_err(ENOTEMPTY), "%s RMDIR answered ENOTEMPTY", L);

	feed(lay, FUSE_CREATE, 1, &ci, sizeof(ci), pl, strs(pl, 1, "new"));
	memcpy(&eo, R.body, sizeof(eo));
	memcpy(&oo, R.body + sizeof(eo), sizeof(oo));
	CHECK(rec.op == FUSE_CREATE && !strcmp(rec.name, "new") && rec.mode == 0640 &&
		      rec.fi.flags == (O_WRONLY | O_CREAT) && rec.ctx.umask == 022,
	      "%s CREATE decodes name, mode, flags and umask", L);
	CHECK(replied_ok(sizeof(eo) + sizeof(oo)) && eo.nodeid == 104 && oo.fh == 99 &&
		      oo.open_flags == FOPEN_NONSEEKABLE,
	      "%s CREATE reply is fuse_entry_out + fuse_open_out", L);

	feed(lay, FUSE_TMPFILE, 1, &ci, sizeof(ci), pl, strs(pl, 1, "/"));
	CHECK(rec.op == FUSE_TMPFILE && rec.mode == 0640 && rec.ctx.umask == 022 &&
		      replied_ok(sizeof(eo) + sizeof(oo)),
	      "%s TMPFILE reaches tmpfile(1, 0640)", L);

	feed(lay, FUSE_OPEN, 9, &oi, sizeof(oi), NULL, 0);
	memcpy(&oo, R.body, sizeof(oo));
	CHECK(rec.op == FUSE_OPEN && rec.fi.flags == O_RDONLY && replied_ok(sizeof(oo)) &&
		      oo.fh == 77 &&
		      oo.open_flags == (FOPEN_DIRECT_IO | FOPEN_KEEP_CACHE | FOPEN_PASSTHROUGH) &&
		      oo.backing_id == 5,
	      "%s OPEN reply carries fh, FOPEN_* bits and backing_id", L);

	feed(lay, FUSE_OPENDIR, 9, &oi, sizeof(oi), NULL, 0);
	memcpy(&oo, R.body, sizeof(oo));
	CHECK(replied_ok(sizeof(oo)) && oo.fh == 88 && oo.open_flags == FOPEN_CACHE_DIR,
	      "%s OPENDIR reply carries FOPEN_CACHE_DIR", L);

	sa.valid = FATTR_MODE | FATTR_SIZE | FATTR_MTIME | FATTR_FH | FATTR_LOCKOWNER;
	sa.mode = 0600;
	sa.size = 4096;
	sa.mtime = 1234;
	sa.mtimensec = 5;
	sa.fh = 11;
	sa.lock_owner = 12;
	feed(lay, FUSE_SETATTR, 9, &sa, sizeof(sa), NULL, 0);
	CHECK(rec.op == FUSE_SETATTR &&
		      rec.to_set == (RF_SET_ATTR_MODE | RF_SET_ATTR_SIZE | RF_SET_ATTR_MTIME) &&
		      rec.st.st_mode == 0600 && rec.st.st_size == 4096 &&
		      rec.st.st_mtim.tv_sec == 1234 && rec.st.st_mtim.tv_nsec == 5 &&
		      !rec.fi_null && rec.fi.fh == 11 && rec.fi.lock_owner == 12,
	      "%s SETATTR decodes to_set, stat fields and fh", L);
	sa.valid = FATTR_SIZE;
	sa.size = (uint64_t)-1;
	feed(lay, FUSE_SETATTR, 9, &sa, sizeof(sa), NULL, 0);
	CHECK(rec.calls == 0 && replied_err(EINVAL), "%s SETATTR to a negative size is EINVAL", L);

	feed(lay, FUSE_READLINK, 9, NULL, 0, NULL, 0);
	CHECK(rec.op == FUSE_READLINK && replied_ok(6) && !memcmp(R.body, "target", 6),
	      "%s READLINK reply is the target without NUL", L);

	gi.size = 0;
	feed(lay, FUSE_GETXATTR, 9, &gi, sizeof(gi), pl, strs(pl, 1, "user.a"));
	memcpy(&xo, R.body, sizeof(xo));
	CHECK(rec.op == FUSE_GETXATTR && !strcmp(rec.name, "user.a") && replied_ok(sizeof(xo)) &&
		      xo.size == 3,
	      "%s GETXATTR size 0 answered with fuse_getxattr_out", L);
	gi.size = 100;
	feed(lay, FUSE_GETXATTR, 9, &gi, sizeof(gi), pl, strs(pl, 1, "user.a"));
	CHECK(replied_ok(3) && !memcmp(R.body, "abc", 3), "%s GETXATTR returns the value", L);
	feed(lay, FUSE_LISTXATTR, 9, &gi, sizeof(gi), NULL, 0);
	CHECK(rec.op == FUSE_LISTXATTR && rec.size == 100 && replied_ok(7),
	      "%s LISTXATTR returns the list", L);
	feed(lay, FUSE_REMOVEXATTR, 9, NULL, 0, pl, strs(pl, 1, "user.a"));
	CHECK(rec.op == FUSE_REMOVEXATTR && !strcmp(rec.name, "user.a") && replied_err(ENODATA),
	      "%s REMOVEXATTR reaches removexattr(\"user.a\")", L);

	feed(lay, FUSE_LSEEK, 9, &ls, sizeof(ls), NULL, 0);
	memcpy(&lo, R.body, sizeof(lo));
	CHECK(rec.op == FUSE_LSEEK && rec.off == 100 && rec.whence == SEEK_DATA && rec.fi.fh == 4 &&
		      replied_ok(sizeof(lo)) && lo.offset == 4196,
	      "%s LSEEK round trip", L);

	feed(lay, FUSE_FALLOCATE, 9, &fa, sizeof(fa), NULL, 0);
	CHECK(rec.op == FUSE_FALLOCATE && rec.off == 10 && rec.off2 == 20 && rec.flags == 1 &&
		      rec.fi.fh == 2 && replied_ok(0),
	      "%s FALLOCATE decodes the range", L);

	feed(lay, FUSE_COPY_FILE_RANGE, 9, &cr, sizeof(cr), NULL, 0);
	memcpy(&wo, R.body, sizeof(wo));
	CHECK(rec.op == FUSE_COPY_FILE_RANGE && rec.ino == 9 && rec.off == 2 && rec.fi.fh == 1 &&
		      rec.ino2 == 3 && rec.fi2.fh == 4 && rec.off2 == 5 && rec.size == 6 &&
		      replied_ok(sizeof(wo)) && wo.size == 6,
	      "%s COPY_FILE_RANGE answered with fuse_write_out", L);
	feed(lay, FUSE_COPY_FILE_RANGE_64, 9, &cr, sizeof(cr), NULL, 0);
	memcpy(&co, R.body, sizeof(co));
	CHECK(rec.op == FUSE_COPY_FILE_RANGE && replied_ok(sizeof(co)) && co.bytes_copied == 6,
	      "%s COPY_FILE_RANGE_64 answered with fuse_copy_file_range_out", L);
	/* Lengths past 4 GiB: whole for the 64-bit opcode, cut to what the old reply counts. */
	cr.len = 6ull << 30;
	feed(lay, FUSE_COPY_FILE_RANGE_64, 9, &cr, sizeof(cr), NULL, 0);
	memcpy(&co, R.body, sizeof(co));
	CHECK(rec.size == 6ull << 30 && replied_ok(sizeof(co)) && co.bytes_copied == 6ull << 30,
	      "%s COPY_FILE_RANGE_64 passes a 6 GiB length whole", L);
	feed(lay, FUSE_COPY_FILE_RANGE, 9, &cr, sizeof(cr), NULL, 0);
	memcpy(&wo, R.body, sizeof(wo));
	CHECK(rec.size == 0xfffff000u && replied_ok(sizeof(wo)) && wo.size == 0xfffff000u,
	      "%s COPY_FILE_RANGE cuts a 6 GiB length to what its reply can count", L);
	cr.len = 6;
	fa.offset = 5ull << 30;
	fa.length = 40ull << 30;
	feed(lay, FUSE_FALLOCATE, 9, &fa, sizeof(fa), NULL, 0);
	CHECK(rec.op == FUSE_FALLOCATE && rec.off == 5ll << 30 && rec.off2 == 40ll << 30 &&
		      replied_ok(0),
	      "%s FALLOCATE passes a 40 GiB range at 5 GiB whole", L);
	fa.offset = 10;
	fa.length = 20;

	feed(lay, FUSE_FSYNC, 9, &fs, sizeof(fs), NULL, 0);
	CHECK(rec.op == FUSE_FSYNC && rec.datasync == 1 && rec.fi.fh == 5 && replied_ok(0),
	      "%s FSYNC decodes datasync", L);
	feed(lay, FUSE_FSYNCDIR, 9, &fs, sizeof(fs), NULL, 0);
	CHECK(rec.calls == 0 && replied_err(ENOSYS), "%s FSYNCDIR without an op is ENOSYS", L);

	feed(lay, FUSE_RELEASE, 9, &rl, sizeof(rl), NULL, 0);
	CHECK(rec.op == FUSE_RELEASE && rec.fi.fh == 6 && rec.fi.flags == O_RDWR && rec.fi.flush &&
		      rec.fi.lock_owner == 8 && replied_ok(0),
	      "%s RELEASE decodes fh, flags, flush and lock owner", L);
	feed(lay, FUSE_RELEASEDIR, 9, &rl, sizeof(rl), NULL, 0);
	CHECK(rec.calls == 0 && replied_ok(0), "%s RELEASEDIR without an op succeeds", L);

	feed(lay, FUSE_STATFS, 1, NULL, 0, NULL, 0);
	memcpy(&so, R.body, sizeof(so));
	CHECK(replied_ok(sizeof(so)) && so.st.namelen == 255 && so.st.bsize == 512,
	      "%s STATFS without an op answers a default fuse_statfs_out", L);

	feed(lay, FUSE_SYNCFS, 1, &sy, sizeof(sy), NULL, 0);
	CHECK(rec.op == FUSE_SYNCFS && replied_ok(0), "%s SYNCFS reaches syncfs", L);

	feed(lay, FUSE_ACCESS, 9, &ai, sizeof(ai), NULL, 0);
	CHECK(rec.op == FUSE_ACCESS && rec.mask == 4 && replied_ok(0),
	      "%s ACCESS reaches access(9, R_OK)", L);
}

static void test_readdir(enum layout lay)
{
	const char *L = layout_name[lay];
	struct fuse_read_in ri = {.fh = 88, .offset = 0, .size = 4096};
	struct fuse_dirent d;
	struct fuse_entry_out eo;
	struct rf_entry_param e = sample_entry(300, S_IFLNK | 0777);
	size_t pos = 0;
	int n = 0;
	bool ok = true;

	feed(lay, FUSE_READDIR, 1, &ri, sizeof(ri), NULL, 0);
	CHECK(rec.op == FUSE_READDIR && rec.fi.fh == 88 && rec.size == 4096 && R.replied &&
		      R.error == 0,
	      "%s READDIR reaches readdir(1, 4096, 0, fh 88)", L);
	/* ".", "..", "file.txt": 24+1 -> 32, 24+2 -> 32, 24+8 -> 32 bytes. */
	while (pos + FUSE_NAME_OFFSET <= R.len) {
		memcpy(&d, R.body + pos, FUSE_NAME_OFFSET);
		n++;
		if (n == 3)
			ok = ok && d.ino == 200 && d.off == 3 && d.namelen == 8 &&
			     d.type == DT_REG &&
			     !memcmp(R.body + pos + FUSE_NAME_OFFSET, "file.txt", 8);
		if (n == 1)
			ok = ok && d.type == DT_DIR && d.namelen == 1 && R.body[pos + 24] == '.' &&
			     !memcmp(R.body + pos + 25, "\0\0\0\0\0\0\0", 7);
		pos += FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + d.namelen);
	}
	CHECK(ok && n == 3 && R.len == 96, "%s READDIR reply is 3 padded fuse_dirents", L);

	feed(lay, FUSE_READDIRPLUS, 1, &ri, sizeof(ri), NULL, 0);
	memcpy(&eo, R.body, sizeof(eo));
	memcpy(&d, R.body + offsetof(struct fuse_direntplus, dirent), FUSE_NAME_OFFSET);
	CHECK(replied_ok(FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + 3)) && eo.nodeid == 300 &&
		      attr_matches(&eo.attr, &e.attr) && d.ino == 300 && d.off == 1 &&
		      d.namelen == 3 && d.type == DT_LNK &&
		      !memcmp(R.body + FUSE_NAME_OFFSET_DIRENTPLUS, "lnk\0\0\0\0\0", 8),
	      "%s READDIRPLUS reply is a padded fuse_direntplus", L);
}

static void test_malformed_both(enum layout lay)
{
	const char *L = layout_name[lay];
	struct fuse_write_in wi = {.size = 10};
	struct fuse_read_in ri = {.size = 10};
	struct fuse_batch_forget_in bi = {.count = 1000};
	struct fuse_forget_one one = {1, 1};
	char pl[64];
	uint64_t bad = bad_count();
	int ret;

	feed(lay, FUSE_LOOKUP, 1, NULL, 0, "abc", 3);
	CHECK(rec.calls == 0 && replied_err(EIO), "%s LOOKUP name without NUL refused EIO", L);
	feed(lay, FUSE_LOOKUP, 1, NULL, 0, "", 1);
	CHECK(rec.calls == 0 && replied_err(EIO), "%s LOOKUP of an empty name refused EIO", L);
	feed(lay, FUSE_LOOKUP, 1, NULL, 0, NULL, 0);
	CHECK(rec.calls == 0 && replied_err(EIO), "%s LOOKUP without a name refused EIO", L);
	feed(lay, FUSE_LOOKUP, 1, NULL, 0, pl, strs(pl, 1, "../etc"));
	CHECK(rec.calls == 0 && replied_err(EIO), "%s LOOKUP of a name with '/' refused EIO", L);
	feed(lay, FUSE_LOOKUP, 1, NULL, 0, pl, strs(pl, 1, ".."));
	CHECK(rec.calls == 1 && replied_ok(sizeof(struct fuse_entry_out)),
	      "%s LOOKUP of \"..\" is allowed (NFS export)", L);
	feed(lay, FUSE_MKDIR, 1, &wi, sizeof(struct fuse_mkdir_in), pl, strs(pl, 1, ".."));
	CHECK(rec.calls == 0 && replied_err(EIO), "%s MKDIR of \"..\" refused EIO", L);
	feed(lay, FUSE_SYMLINK, 1, NULL, 0, pl, strs(pl, 1, "lnk"));
	CHECK(rec.calls == 0 && replied_err(EIO), "%s SYMLINK without a target refused EIO", L);

	feed(lay, FUSE_WRITE, 9, &wi, sizeof(wi), "abcde", 5);
	CHECK(rec.calls == 0 && replied_err(EIO), "%s WRITE size beyond the data refused EIO", L);
	wi.size = 3;
	feed(lay, FUSE_WRITE, 9, &wi, sizeof(wi), "abcde", 5);
	CHECK(rec.calls == 0 && replied_err(EIO), "%s WRITE size short of the data refused EIO", L);

	se->conn.max_write = 4096;
	{
		static char big[5000];

		wi.size = sizeof(big);
		feed(lay, FUSE_WRITE, 9, &wi, sizeof(wi), big, sizeof(big));
		CHECK(rec.calls == 0 && replied_err(EIO), "%s WRITE above max_write refused EIO",
		      L);
	}
	se->conn.max_write = RF_DEFAULT_MAX_WRITE;

	ret = feed(lay, FUSE_BATCH_FORGET, 0, &bi, sizeof(bi), &one, sizeof(one));
	CHECK(ret == 1 && rec.calls == 0 && R.dropped && !R.replied,
	      "%s BATCH_FORGET whose count overflows the message is dropped", L);

	feed(lay, FUSE_READ, 9, &ri, 20, NULL, 0);
	CHECK(rec.calls == 0 && replied_err(EIO), "%s READ with a truncated fuse_read_in refused",
	      L);
	feed(lay, FUSE_MKDIR, 1, NULL, 0, NULL, 0);
	CHECK(rec.calls == 0 && replied_err(EIO), "%s MKDIR without its struct refused", L);

	feed_ext(se, lay, FUSE_LOOKUP, 1, NULL, 0, pl, strs(pl, 1, "x"), 4);
	CHECK(rec.calls == 0 && replied_err(EIO),
	      "%s extensions longer than the payload refused EIO", L);

	feed(lay, 999, 1, NULL, 0, NULL, 0);
	CHECK(replied_err(ENOSYS), "%s unknown opcode answered ENOSYS", L);
	feed(lay, FUSE_STATX, 1, NULL, 0, NULL, 0);
	CHECK(replied_err(ENOSYS), "%s STATX answered ENOSYS", L);
	feed(lay, CUSE_INIT, 1, NULL, 0, NULL, 0);
	CHECK(replied_err(ENOSYS), "%s CUSE_INIT answered ENOSYS", L);
	feed(lay, FUSE_NOTIFY_REPLY, 1, NULL, 0, "data", 4);
	CHECK(R.dropped && !R.replied, "%s NOTIFY_REPLY dropped", L);

	CHECK(bad_count() == bad + 13, "%s malformed requests counted (%" PRIu64 ")", L,
	      bad_count() - bad);
}

static void test_malformed_classic(void)
{
	struct fuse_in_header ih;
	unsigned char buf[128];
	uint64_t bad = bad_count();
	int ret;

	memset(&ih, 0, sizeof(ih));
	ih.opcode = FUSE_GETATTR;
	ih.unique = 4242;
	ih.nodeid = 1;

	ih.len = 10;
	memcpy(buf, &ih, sizeof(ih));
	reset_rec();
	ret = rf_mem_feed_msg(se, buf, 10, &R);
	CHECK(ret == 1 && R.count == 1 && R.dropped && rec.calls == 0,
	      "classic 10-byte message (no unique) is dropped");
	ret = rf_mem_feed_msg(se, buf, 0, &R);
	CHECK(ret == 1 && R.count == 1 && R.dropped, "classic empty message is dropped");
	ih.len = 30;
	memcpy(buf, &ih, sizeof(ih));
	ret = rf_mem_feed_msg(se, buf, 30, &R);
	CHECK(ret == 1 && R.replied && R.error == -EIO && R.unique == 4242,
	      "classic message shorter than its header answered EIO");

	ih.len = sizeof(ih) + sizeof(struct fuse_getattr_in) + 8;
	memset(buf, 0, sizeof(buf));
	memcpy(buf, &ih, sizeof(ih));
	ret = rf_mem_feed_msg(se, buf, sizeof(ih) + sizeof(struct fuse_getattr_in), &R);
	CHECK(ret == 1 && R.error == -EIO && rec.calls == 0,
	      "classic header length larger than the message answered EIO");
	ih.len = sizeof(ih);
	memcpy(buf, &ih, sizeof(ih));
	ret = rf_mem_feed_msg(se, buf, sizeof(ih) + sizeof(struct fuse_getattr_in), &R);
	CHECK(ret == 1 && R.error == -EIO && rec.calls == 0,
	      "classic header length smaller than the message answered EIO");
	CHECK(bad_count() == bad + 5, "classic framing errors counted");

	/* A message at an odd address must decode the same. */
	{
		struct fuse_getattr_in ga = {0};

		ih.len = sizeof(ih) + sizeof(ga);
		ih.unique = 4244;
		buf[0] = 0;
		memcpy(buf + 1, &ih, sizeof(ih));
		memcpy(buf + 1 + sizeof(ih), &ga, sizeof(ga));
		ret = rf_mem_feed_msg(se, buf + 1, ih.len, &R);
		CHECK(ret == 1 && rec.op == FUSE_GETATTR && R.replied && R.error == 0,
		      "classic message at an unaligned address decodes");
	}
}

static void test_replies(void)
{
	struct fuse_access_in ai = {.mask = 2};
	struct rf_entry_param e = sample_entry(1, S_IFDIR | 0755);
	struct stat st = sample_stat(42, S_IFREG | 0644);
	char buf[256];
	uint64_t dup = rf_session_totals(se).dup_replies;
	char big[5001];
	size_t n;

	feed(CLASSIC, FUSE_ACCESS, 9, &ai, sizeof(ai), NULL, 0);
	CHECK(replied_ok(0) && rec.second_reply == -EALREADY,
	      "second reply refused with -EALREADY, one answer sent");
	CHECK(rf_session_totals(se).dup_replies == dup + 1, "duplicate reply counted");

	/* Direntry layout, byte by byte. */
	memset(buf, 0xee, sizeof(buf));
	n = rf_add_direntry(NULL, buf, sizeof(buf), "abc", &st, 77);
	CHECK(n == 32, "rf_add_direntry(\"abc\") needs 32 bytes");
	{
		uint64_t ino, off;
		uint32_t namelen, type;

		memcpy(&ino, buf + 0, 8);
		memcpy(&off, buf + 8, 8);
		memcpy(&namelen, buf + 16, 4);
		memcpy(&type, buf + 20, 4);
		CHECK(ino == 42 && off == 77 && namelen == 3 && type == DT_REG &&
			      !memcmp(buf + 24, "abc\0\0\0\0\0", 8) &&
			      (unsigned char)buf[32] == 0xee,
		      "rf_add_direntry writes ino/off/namelen/type/name/padding and no more");
	}
	memset(buf, 0xee, sizeof(buf));
	n = rf_add_direntry(NULL, buf, 31, "abc", &st, 77);
	CHECK(n == 32 && (unsigned char)buf[0] == 0xee,
	      "rf_add_direntry into too small a buffer writes nothing");
	n = rf_add_direntry_plus(NULL, buf, sizeof(buf), "abcdefgh", &e, 5);
	CHECK(n == FUSE_NAME_OFFSET_DIRENTPLUS + 8 && n == 160 &&
		      !memcmp(buf + FUSE_NAME_OFFSET_DIRENTPLUS, "abcdefgh", 8),
	      "rf_add_direntry_plus(\"abcdefgh\") is 160 bytes");
	CHECK(offsetof(struct fuse_entry_out, attr) == 40 &&
		      offsetof(struct fuse_direntplus, dirent) == 128 &&
		      FUSE_NAME_OFFSET_DIRENTPLUS == 152 && FUSE_NAME_OFFSET == 24,
	      "kernel.h layouts as the kernel has them");

	/* A body larger than the reply area: the kernel gets EIO, the caller -ERANGE. */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	readlink_target = big;
	rf_mem_set_out_cap(se, 4096);
	feed(CLASSIC, FUSE_READLINK, 9, NULL, 0, NULL, 0);
	CHECK(replied_err(EIO) && rec.second_reply == -ERANGE,
	      "reply larger than the reply area: EIO to the kernel, -ERANGE to the caller");
	rf_mem_set_out_cap(se, RF_MEM_BODY_MAX);
	readlink_target = "target";
}

static void *late_reply(void *arg)
{
	rf_reply_err(arg, EINTR);
	return NULL;
}

static void test_deferred_and_interrupt(void)
{
	struct fuse_flush_in fl = {.fh = 3, .lock_owner = 9};
	struct fuse_fsync_in fs = {.fh = 4};
	struct fuse_interrupt_in ii;
	struct rf_mem_reply *last = malloc(sizeof(*last));
	unsigned long before = rf_mem_replies(se);
	uint64_t deferred = rf_session_totals(se).deferred;
	uint64_t target;
	pthread_t t;
	int ret;

	defer_mode = true;
	ret = feed(SPLIT, FUSE_FLUSH, 9, &fl, sizeof(fl), NULL, 0);
	target = last_unique;
	CHECK(ret == 0 && saved && R.count == 0 && rf_mem_pending(se) == 1 &&
		      rec.fi.lock_owner == 9 && rec.fi.flush,
	      "deferred FLUSH: feed returns 0 and the request stays pending");
	CHECK(rf_session_totals(se).deferred == deferred + 1, "deferred reply counted");
	CHECK(!rf_req_interrupted(saved), "not interrupted yet");

	ii.unique = target;
	ret = feed(CLASSIC, FUSE_INTERRUPT, 0, &ii, sizeof(ii), NULL, 0);
	CHECK(ret == 1 && R.dropped && !R.replied, "INTERRUPT itself is not answered");
	CHECK(rec.interrupted == saved && rec.saw_interrupted && rf_req_interrupted(saved),
	      "INTERRUPT reaches ops.interrupt for the pending request");

	pthread_create(&t, NULL, late_reply, saved);
	pthread_join(t, NULL);
	CHECK(rf_mem_pending(se) == 0 && rf_mem_replies(se) == before + 2,
	      "deferred reply from another thread delivered");
	CHECK(last && rf_mem_last_reply(se, last) == 0 && last->unique == target &&
		      last->error == -EINTR && last->replied,
	      "deferred reply captured with the right unique and error");
	CHECK(rf_reply_err(saved, 0) == -EALREADY, "reply after a deferred reply refused");

	/* Interrupt for a request not (yet) in a handler: kept until it begins, never EAGAIN
	 * (the kernel honours that only on the fd that holds the target). */
	ii.unique = next_unique + 2; /* the request fed after the interrupt */
	ret = feed(CLASSIC, FUSE_INTERRUPT, 0, &ii, sizeof(ii), NULL, 0);
	CHECK(ret == 1 && R.dropped && !R.replied && rec.interrupted == NULL,
	      "INTERRUPT for a request not seen yet: dropped, nothing called");
	ret = feed(SPLIT, FUSE_FLUSH, 9, &fl, sizeof(fl), NULL, 0);
	CHECK(ret == 0 && last_unique == ii.unique && rec.interrupted == saved &&
		      rec.saw_interrupted && rf_req_interrupted(saved),
	      "when it arrives it is marked, and ops.interrupt runs for it");
	rf_reply_err(saved, EINTR);

	/* Slots run out while every one is held by a deferred reply. */
	{
		rf_req *held[RF_MEM_SLOTS];
		int n = 0;

		for (; n < RF_MEM_SLOTS; n++) {
			saved = NULL;
			if (feed(CLASSIC, FUSE_FSYNC, 9, &fs, sizeof(fs), NULL, 0) != 0 || !saved)
				break;
			held[n] = saved;
		}
		ret = feed(CLASSIC, FUSE_FSYNC, 9, &fs, sizeof(fs), NULL, 0);
		CHECK(n == RF_MEM_SLOTS && ret == -EBUSY, "feeding with every slot held: -EBUSY");
		for (int i = 0; i < n; i++)
			rf_reply_err(held[i], 0);
		CHECK(rf_mem_pending(se) == 0, "all held requests answered");
	}
	defer_mode = false;
	saved = NULL;
	free(last);
}

static char trace_buf[8192];

static void capture_log(enum rf_log_level level, const char *msg, void *arg)
{
	(void)arg;
	if (level == RF_LOG_DEBUG && strlen(trace_buf) + strlen(msg) + 2 < sizeof(trace_buf)) {
		strcat(trace_buf, msg);
		strcat(trace_buf, "\n");
	}
}

static void test_debug_trace(void)
{
	char pl[32];

	trace_buf[0] = '\0';
	rf_set_log(capture_log, NULL);
	se->opts.debug = true;
	feed(SPLIT, FUSE_LOOKUP, 1, NULL, 0, pl, strs(pl, 1, "traced"));
	se->opts.debug = false;
	rf_set_log(NULL, NULL);
	CHECK(strstr(trace_buf, "LOOKUP") && strstr(trace_buf, "'traced'") &&
		      strstr(trace_buf, "-> #"),
	      "-d traces the request and its reply");
}

static void test_null_ops(void)
{
	/* A table that ends after lookup, as an older filesystem binary would pass. */
	struct rf_ops small = {.lookup = fs_lookup};
	rf_session *s2 = rf_mem_session_new(
		&small, offsetof(struct rf_ops, lookup) + sizeof(small.lookup), NULL);
	struct fuse_init_in in = {.major = FUSE_KERNEL_VERSION, .minor = 45, .flags = 0};
	struct fuse_open_in oi = {0};
	struct fuse_open_out oo;
	struct fuse_flush_in fl = {0};
	struct fuse_release_in rl = {0};
	struct fuse_forget_in fg = {.nlookup = 1};
	struct fuse_getattr_in ga = {0};

	if (!s2) {
		CHECK(0, "second memory session created");
		return;
	}
	feed_ext(s2, CLASSIC, FUSE_INIT, 0, &in, 16, NULL, 0, 0);
	CHECK(R.replied && R.error == 0, "INIT of a 16-byte (old kernel) fuse_init_in accepted");
	feed_ext(s2, SPLIT, FUSE_OPEN, 2, &oi, sizeof(oi), NULL, 0, 0);
	memcpy(&oo, R.body, sizeof(oo));
	CHECK(R.replied && R.error == 0 && R.len == sizeof(oo) && oo.fh == 0,
	      "OPEN without an op succeeds with fh 0");
	feed_ext(s2, SPLIT, FUSE_OPENDIR, 2, &oi, sizeof(oi), NULL, 0, 0);
	CHECK(R.replied && R.error == 0 && R.len == sizeof(oo), "OPENDIR without an op succeeds");
	feed_ext(s2, SPLIT, FUSE_FLUSH, 2, &fl, sizeof(fl), NULL, 0, 0);
	CHECK(R.replied && R.error == -ENOSYS, "FLUSH without an op is ENOSYS");
	feed_ext(s2, SPLIT, FUSE_RELEASE, 2, &rl, sizeof(rl), NULL, 0, 0);
	CHECK(R.replied && R.error == 0, "RELEASE without an op succeeds");
	feed_ext(s2, SPLIT, FUSE_FORGET, 2, &fg, sizeof(fg), NULL, 0, 0);
	CHECK(R.dropped && !R.replied, "FORGET without an op dropped");
	feed_ext(s2, SPLIT, FUSE_GETATTR, 2, &ga, sizeof(ga), NULL, 0, 0);
	CHECK(R.replied && R.error == -ENOSYS, "GETATTR beyond a short ops table is ENOSYS");
	feed_ext(s2, SPLIT, FUSE_LOOKUP, 1, NULL, 0, "x", 2, 0);
	CHECK(R.replied && R.error == 0 && rec.op == FUSE_LOOKUP,
	      "LOOKUP inside a short ops table still works");
	rf_mem_session_destroy(s2);
}

static void test_errno_range(void)
{
	struct fuse_syncfs_in sy = {0};

	syncfs_errno = -ENOENT;
	feed(SPLIT, FUSE_SYNCFS, 1, &sy, sizeof(sy), NULL, 0);
	CHECK(replied_err(EIO), "rf_reply_err() with a negative errno sends EIO");
	syncfs_errno = 512;
	feed(SPLIT, FUSE_SYNCFS, 1, &sy, sizeof(sy), NULL, 0);
	CHECK(replied_err(EIO), "rf_reply_err() with errno 512 sends EIO");
	syncfs_errno = 511;
	feed(SPLIT, FUSE_SYNCFS, 1, &sy, sizeof(sy), NULL, 0);
	CHECK(replied_err(511), "rf_reply_err() with errno 511 passes it through");
	syncfs_errno = 0;
}

static void test_getgroups(void)
{
	RF_REQ_ALIGNED rf_req r; /* as every request object */
	gid_t mine[256], got[256];
	int n = getgroups(256, mine);
	int m;
	bool same = true;

	memset(&r, 0, sizeof(r));
	r.ctx.pid = (pid_t)syscall(SYS_gettid);
	m = rf_req_getgroups(&r, 256, got);
	for (int i = 0; i < n && i < m; i++)
		if (got[i] != mine[i])
			same = false;
	CHECK(n >= 0 && m == n && same, "rf_req_getgroups() reads the caller's groups (%d)", m);
	CHECK(rf_req_getgroups(&r, 0, got) == n, "rf_req_getgroups() with size 0 counts them");
	r.ctx.pid = -1;
	CHECK(rf_req_getgroups(&r, 256, got) < 0, "rf_req_getgroups() of no process fails");
}

/* Random messages: nothing may crash, every request must be finished. */
static void test_random(void)
{
	unsigned int seed = 12345;
	unsigned long before = rf_mem_replies(se);
	unsigned long fed = 0;
	static unsigned char rnd[8192];

	for (int iter = 0; iter < 20000; iter++) {
		struct fuse_in_header ih;
		size_t len, oplen, pllen;
		int ret;

		for (size_t i = 0; i < sizeof(rnd); i++)
			rnd[i] = (unsigned char)rand_r(&seed);
		memcpy(&ih, rnd, sizeof(ih));
		/* Mostly real opcodes, sometimes anything; never end the session. */
		if (iter % 4)
			ih.opcode = (uint32_t)(rand_r(&seed) % 56);
		if (ih.opcode == FUSE_DESTROY)
			ih.opcode = FUSE_GETATTR;
		if (iter % 3)
			ih.total_extlen = 0;
		len = (size_t)rand_r(&seed) % 400;
		if (iter % 2 == 0) {
			if (iter % 8)
				ih.len = (uint32_t)len;
			memcpy(rnd, &ih, sizeof(ih));
			ret = rf_mem_feed_msg(se, rnd, len, NULL);
		} else {
			oplen = (size_t)rand_r(&seed) % (FUSE_URING_OP_IN_OUT_SZ + 1);
			pllen = len;
			ret = rf_mem_feed_split(se, &ih, rnd + 64, oplen, pllen ? rnd + 256 : NULL,
						pllen, NULL);
		}
		if (ret == 1)
			fed++;
	}
	CHECK(fed == 20000 && rf_mem_pending(se) == 0 && rf_mem_replies(se) == before + 20000,
	      "20000 random messages: no crash, each finished exactly once");
}

static void test_destroy(void)
{
	struct fuse_getattr_in ga = {0};

	feed(CLASSIC, FUSE_DESTROY, 0, NULL, 0, NULL, 0);
	CHECK(replied_ok(0) && rec.destroys == 1, "DESTROY runs ops.destroy and is answered");
	feed(CLASSIC, FUSE_GETATTR, 1, &ga, sizeof(ga), NULL, 0);
	CHECK(replied_err(EIO) && rec.calls == 0, "requests after DESTROY answered EIO");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	unsetenv("RINGFUSE_ABORT_ON_MISUSE");
	se = rf_mem_session_new(&fs_ops, sizeof(fs_ops), NULL);
	if (!se) {
		printf("FAIL - rf_mem_session_new: %s\n", strerror(errno));
		return 1;
	}
	test_init();
	for (int lay = CLASSIC; lay <= SPLIT; lay++) {
		test_lookup(lay);
		test_getattr(lay);
		test_read(lay);
		test_write(lay);
		test_mkdir(lay);
		test_rename2(lay);
		test_setxattr(lay);
		test_batch_forget(lay);
		test_more_ops(lay);
		test_readdir(lay);
		test_malformed_both(lay);
	}
	test_malformed_classic();
	test_replies();
	test_deferred_and_interrupt();
	test_debug_trace();
	test_null_ops();
	test_forget_multi();
	test_errno_range();
	test_getgroups();
	test_random();
	test_destroy();
	rf_mem_session_destroy(se);
	CHECK(destroy_calls == 1, "ops.destroy ran exactly once, session destroy included");
	printf("%d/%d checks passed\n", checks - failures, checks);
	return failures ? 1 : 0;
}
