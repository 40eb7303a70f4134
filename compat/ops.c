/*
 * The trampolines: an rf_ops table whose members call the filesystem's fuse_lowlevel_ops.
 *
 * The request pointer is passed through as the fuse_req_t. What differs is translated on the
 * stack: fuse_file_info from rf_file_info, a one-buffer fuse_bufvec for write_buf(), a
 * one-entry forget_multi() for a filesystem without forget(). Nothing is allocated.
 *
 * Two things keep libfuse's guarantee that a request's arguments stay valid until its handler
 * returns, although with io-uring the reply is encoded into the very buffer that holds them:
 * names that a reply body would overwrite (lookup, mknod, mkdir, symlink, link, create,
 * getxattr) are handed over as copies on the stack, and a write's reply given on the handler's
 * thread is held back until the handler returns (see compat_write_reply).
 *
 * -o allow_root is enforced here: requests from users other than the mounter and root are
 * refused with EACCES, except those on already open files (as libfuse does).
 */
#include "compat.h"
#include "ringfuse/kernel.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

/* Longest name the kernel sends (FUSE_NAME_MAX) and longest symlink target, with the NUL. */
#define NAME_COPY 1025
#define LINK_COPY 4097

#define SE(req) compat_session_of(req)
#define FQ(req) compat_fq(req)

/* A stack copy of s if it fits (it always does for what the kernel sends). */
static const char *stash(char *dst, size_t cap, const char *s)
{
	size_t n = strnlen(s, cap);

	if (n == cap)
		return s;
	memcpy(dst, s, n + 1);
	return dst;
}

static void file_info(struct fuse_file_info *f, const struct rf_file_info *r)
{
	memset(f, 0, sizeof(*f));
	if (!r)
		return;
	f->flags = r->flags;
	f->fh = r->fh;
	f->lock_owner = r->lock_owner;
	f->writepage = (r->write_flags & FUSE_WRITE_CACHE) != 0;
	f->flush = r->flush;
}

/* -o allow_root: true if req was refused. */
static bool refused(rf_req *req, struct fuse_session *se)
{
	const struct rf_ctx *ctx;

	if (!se->deny_others)
		return false;
	ctx = rf_req_ctx(req);
	if (ctx->uid == se->owner || ctx->uid == 0)
		return false;
	fuse_reply_err(FQ(req), EACCES);
	return true;
}

static void t_init(void *userdata, struct rf_conn_info *conn)
{
	compat_conn_init(userdata, conn);
}

static void t_destroy(void *userdata)
{
	struct fuse_session *se = userdata;

	se->got_destroy = true;
	if (se->op.destroy)
		se->op.destroy(se->userdata);
}

static void t_lookup(rf_req *req, rf_ino parent, const char *name)
{
	struct fuse_session *se = SE(req);
	char copy[NAME_COPY];

	if (!refused(req, se))
		se->op.lookup(FQ(req), parent, stash(copy, sizeof(copy), name));
}

static void t_forget(rf_req *req, rf_ino ino, uint64_t nlookup)
{
	struct fuse_session *se = SE(req);

	if (se->op.forget) {
		se->op.forget(FQ(req), ino, nlookup);
	} else {
		struct fuse_forget_data one = {.ino = ino, .nlookup = nlookup};

		se->op.forget_multi(FQ(req), 1, &one);
	}
}

_Static_assert(sizeof(struct fuse_forget_data) == sizeof(struct rf_forget_data) &&
		       offsetof(struct fuse_forget_data, nlookup) ==
			       offsetof(struct rf_forget_data, nlookup),
	       "fuse_forget_data is rf_forget_data");

/* A whole BATCH_FORGET in one call, as libfuse makes it (pyfuse3, for one, counts on it). */
static void t_forget_multi(rf_req *req, size_t count, const struct rf_forget_data *forgets)
{
	struct fuse_session *se = SE(req);

	se->op.forget_multi(FQ(req), count, (struct fuse_forget_data *)forgets);
}

static void t_getattr(rf_req *req, rf_ino ino, struct rf_file_info *rfi)
{
	struct fuse_session *se = SE(req);
	struct fuse_file_info fi;

	if (refused(req, se))
		return;
	file_info(&fi, rfi);
	se->op.getattr(FQ(req), ino, rfi ? &fi : NULL);
}

static void t_setattr(rf_req *req, rf_ino ino, struct stat *attr, int to_set,
		      struct rf_file_info *rfi)
{
	struct fuse_session *se = SE(req);
	struct fuse_file_info fi;

	if (refused(req, se))
		return;
	file_info(&fi, rfi);
	/* ringfuse's to_set bits are the kernel's FATTR_* bits, as libfuse's FUSE_SET_ATTR_*. */
	se->op.setattr(FQ(req), ino, attr, to_set, rfi ? &fi : NULL);
}

static void t_readlink(rf_req *req, rf_ino ino)
{
	struct fuse_session *se = SE(req);

	if (!refused(req, se))
		se->op.readlink(FQ(req), ino);
}

static void t_mknod(rf_req *req, rf_ino parent, const char *name, mode_t mode, dev_t rdev)
{
	struct fuse_session *se = SE(req);
	char copy[NAME_COPY];

	if (!refused(req, se))
		se->op.mknod(FQ(req), parent, stash(copy, sizeof(copy), name), mode, rdev);
}

static void t_mkdir(rf_req *req, rf_ino parent, const char *name, mode_t mode)
{
	struct fuse_session *se = SE(req);
	char copy[NAME_COPY];

	if (!refused(req, se))
		se->op.mkdir(FQ(req), parent, stash(copy, sizeof(copy), name), mode);
}

static void t_unlink(rf_req *req, rf_ino parent, const char *name)
{
	struct fuse_session *se = SE(req);

	if (!refused(req, se))
		se->op.unlink(FQ(req), parent, name);
}

static void t_rmdir(rf_req *req, rf_ino parent, const char *name)
{
	struct fuse_session *se = SE(req);

	if (!refused(req, se))
		se->op.rmdir(FQ(req), parent, name);
}

static void t_symlink(rf_req *req, const char *link, rf_ino parent, const char *name)
{
	struct fuse_session *se = SE(req);
	char link_copy[LINK_COPY], name_copy[NAME_COPY];

	if (!refused(req, se))
		se->op.symlink(FQ(req), stash(link_copy, sizeof(link_copy), link), parent,
			       stash(name_copy, sizeof(name_copy), name));
}

static void t_rename(rf_req *req, rf_ino parent, const char *name, rf_ino newparent,
		     const char *newname, unsigned int flags)
{
	struct fuse_session *se = SE(req);

	if (!refused(req, se))
		se->op.rename(FQ(req), parent, name, newparent, newname, flags);
}

static void t_link(rf_req *req, rf_ino ino, rf_ino newparent, const char *newname)
{
	struct fuse_session *se = SE(req);
	char copy[NAME_COPY];

	if (!refused(req, se))
		se->op.link(FQ(req), ino, newparent, stash(copy, sizeof(copy), newname));
}

/* OPEN and OPENDIR are always trampolined, so that allow_root applies to them; without an op
 * they succeed with fh 0, as in libfuse. */
static void t_open(rf_req *req, rf_ino ino, struct rf_file_info *rfi)
{
	struct fuse_session *se = SE(req);
	struct fuse_file_info fi;

	if (refused(req, se))
		return;
	file_info(&fi, rfi);
	if (se->op.open)
		se->op.open(FQ(req), ino, &fi);
	else
		fuse_reply_open(FQ(req), &fi);
}

static void t_opendir(rf_req *req, rf_ino ino, struct rf_file_info *rfi)
{
	struct fuse_session *se = SE(req);
	struct fuse_file_info fi;

	if (refused(req, se))
		return;
	file_info(&fi, rfi);
	if (se->op.opendir)
		se->op.opendir(FQ(req), ino, &fi);
	else
		fuse_reply_open(FQ(req), &fi);
}

static void t_read(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *rfi)
{
	struct fuse_session *se = SE(req);
	struct fuse_file_info fi;

	file_info(&fi, rfi);
	se->op.read(FQ(req), ino, size, off, &fi);
}

static void t_write(rf_req *req, rf_ino ino, const char *buf, size_t size, off_t off,
		    struct rf_file_info *rfi)
{
	struct fuse_session *se = SE(req);
	struct compat_write_reply *wr = &compat_write_reply;
	struct compat_write_reply outer = *wr;
	struct fuse_file_info fi;

	file_info(&fi, rfi);
	wr->req = req;
	wr->pending = false;
	if (se->op.write_buf) {
		struct fuse_bufvec bufv = FUSE_BUFVEC_INIT(size);

		bufv.buf[0].mem = (void *)buf;
		se->op.write_buf(FQ(req), ino, &bufv, off, &fi);
	} else {
		se->op.write(FQ(req), ino, buf, size, off, &fi);
	}
	if (wr->pending) {
		size_t count = wr->count;

		*wr = outer;
		rf_reply_write(req, count);
	} else {
		*wr = outer;
	}
}

static void t_flush(rf_req *req, rf_ino ino, struct rf_file_info *rfi)
{
	struct fuse_session *se = SE(req);
	struct fuse_file_info fi;

	if (refused(req, se))
		return;
	file_info(&fi, rfi);
	se->op.flush(FQ(req), ino, &fi);
}

static void t_release(rf_req *req, rf_ino ino, struct rf_file_info *rfi)
{
	struct fuse_session *se = SE(req);
	struct fuse_file_info fi;

	file_info(&fi, rfi);
	se->op.release(FQ(req), ino, &fi);
}

static void t_fsync(rf_req *req, rf_ino ino, int datasync, struct rf_file_info *rfi)
{
	struct fuse_session *se = SE(req);
	struct fuse_file_info fi;

	file_info(&fi, rfi);
	se->op.fsync(FQ(req), ino, datasync, &fi);
}

static void t_readdir(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *rfi)
{
	struct fuse_session *se = SE(req);
	struct fuse_file_info fi;

	file_info(&fi, rfi);
	se->op.readdir(FQ(req), ino, size, off, &fi);
}

static void t_readdirplus(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *rfi)
{
	struct fuse_session *se = SE(req);
	struct fuse_file_info fi;

	file_info(&fi, rfi);
	se->op.readdirplus(FQ(req), ino, size, off, &fi);
}

static void t_releasedir(rf_req *req, rf_ino ino, struct rf_file_info *rfi)
{
	struct fuse_session *se = SE(req);
	struct fuse_file_info fi;

	file_info(&fi, rfi);
	se->op.releasedir(FQ(req), ino, &fi);
}

static void t_fsyncdir(rf_req *req, rf_ino ino, int datasync, struct rf_file_info *rfi)
{
	struct fuse_session *se = SE(req);
	struct fuse_file_info fi;

	file_info(&fi, rfi);
	se->op.fsyncdir(FQ(req), ino, datasync, &fi);
}

/* Always trampolined, for allow_root; libfuse's default answer without an op. */
static void t_statfs(rf_req *req, rf_ino ino)
{
	struct fuse_session *se = SE(req);

	if (refused(req, se))
		return;
	if (se->op.statfs) {
		se->op.statfs(FQ(req), ino);
	} else {
		struct statvfs st = {.f_namemax = 255, .f_bsize = 512};

		fuse_reply_statfs(FQ(req), &st);
	}
}

static void t_setxattr(rf_req *req, rf_ino ino, const char *name, const char *value, size_t size,
		       int flags)
{
	struct fuse_session *se = SE(req);

	if (!refused(req, se))
		se->op.setxattr(FQ(req), ino, name, value, size, flags);
}

static void t_getxattr(rf_req *req, rf_ino ino, const char *name, size_t size)
{
	struct fuse_session *se = SE(req);
	char copy[NAME_COPY];

	if (!refused(req, se))
		se->op.getxattr(FQ(req), ino, stash(copy, sizeof(copy), name), size);
}

static void t_listxattr(rf_req *req, rf_ino ino, size_t size)
{
	struct fuse_session *se = SE(req);

	if (!refused(req, se))
		se->op.listxattr(FQ(req), ino, size);
}

static void t_removexattr(rf_req *req, rf_ino ino, const char *name)
{
	struct fuse_session *se = SE(req);

	if (!refused(req, se))
		se->op.removexattr(FQ(req), ino, name);
}

static void t_access(rf_req *req, rf_ino ino, int mask)
{
	struct fuse_session *se = SE(req);

	if (!refused(req, se))
		se->op.access(FQ(req), ino, mask);
}

static void t_create(rf_req *req, rf_ino parent, const char *name, mode_t mode,
		     struct rf_file_info *rfi)
{
	struct fuse_session *se = SE(req);
	struct fuse_file_info fi;
	char copy[NAME_COPY];

	if (refused(req, se))
		return;
	file_info(&fi, rfi);
	se->op.create(FQ(req), parent, stash(copy, sizeof(copy), name), mode, &fi);
}

static void t_fallocate(rf_req *req, rf_ino ino, int mode, off_t offset, off_t length,
			struct rf_file_info *rfi)
{
	struct fuse_session *se = SE(req);
	struct fuse_file_info fi;

	if (refused(req, se))
		return;
	file_info(&fi, rfi);
	se->op.fallocate(FQ(req), ino, mode, offset, length, &fi);
}

static void t_copy_file_range(rf_req *req, rf_ino ino_in, off_t off_in, struct rf_file_info *in,
			      rf_ino ino_out, off_t off_out, struct rf_file_info *out, size_t len,
			      int flags)
{
	struct fuse_session *se = SE(req);
	struct fuse_file_info fi_in, fi_out;

	if (refused(req, se))
		return;
	file_info(&fi_in, in);
	file_info(&fi_out, out);
	se->op.copy_file_range(FQ(req), ino_in, off_in, &fi_in, ino_out, off_out, &fi_out, len,
			       flags);
}

static void t_lseek(rf_req *req, rf_ino ino, off_t off, int whence, struct rf_file_info *rfi)
{
	struct fuse_session *se = SE(req);
	struct fuse_file_info fi;

	if (refused(req, se))
		return;
	file_info(&fi, rfi);
	se->op.lseek(FQ(req), ino, off, whence, &fi);
}

static void t_interrupt(rf_req *req, void *userdata)
{
	(void)userdata;
	compat_interrupt_deliver(req);
}

/* Operations of the 3.14 table that ringfuse's dispatcher does not deliver yet: the kernel
 * gets ENOSYS for them (and, for locks, keeps locking locally). */
static void announce_undelivered(const struct fuse_lowlevel_ops *op)
{
	static const char consequence[] = "the kernel gets ENOSYS for it";

	if (op->getlk || op->setlk)
		compat_unsupported("the filesystem's getlk/setlk (POSIX locks)",
				   "the kernel keeps POSIX locks locally");
	if (op->flock)
		compat_unsupported("the filesystem's flock",
				   "the kernel keeps flock locks locally");
	if (op->bmap)
		compat_unsupported("the filesystem's bmap", consequence);
	if (op->ioctl)
		compat_unsupported("the filesystem's ioctl", consequence);
	if (op->poll)
		compat_unsupported("the filesystem's poll", consequence);
	if (op->retrieve_reply)
		compat_unsupported("the filesystem's retrieve_reply",
				   "fuse_lowlevel_notify_retrieve() fails with ENOSYS");
}

#define ROUTE(member, fn)                 \
	do {                              \
		if (op->member)           \
			out->member = fn; \
	} while (0)

void compat_build_ops(const struct fuse_lowlevel_ops *op, struct rf_ops *out)
{
	memset(out, 0, sizeof(*out));
	out->init = t_init;
	out->destroy = t_destroy;
	out->open = t_open;
	out->opendir = t_opendir;
	out->statfs = t_statfs;
	out->interrupt = t_interrupt;
	ROUTE(lookup, t_lookup);
	if (op->forget || op->forget_multi)
		out->forget = t_forget;
	ROUTE(forget_multi, t_forget_multi);
	ROUTE(getattr, t_getattr);
	ROUTE(setattr, t_setattr);
	ROUTE(readlink, t_readlink);
	ROUTE(mknod, t_mknod);
	ROUTE(mkdir, t_mkdir);
	ROUTE(unlink, t_unlink);
	ROUTE(rmdir, t_rmdir);
	ROUTE(symlink, t_symlink);
	ROUTE(rename, t_rename);
	ROUTE(link, t_link);
	ROUTE(read, t_read);
	if (op->write || op->write_buf)
		out->write = t_write;
	ROUTE(flush, t_flush);
	ROUTE(release, t_release);
	ROUTE(fsync, t_fsync);
	ROUTE(readdir, t_readdir);
	ROUTE(readdirplus, t_readdirplus);
	ROUTE(releasedir, t_releasedir);
	ROUTE(fsyncdir, t_fsyncdir);
	ROUTE(setxattr, t_setxattr);
	ROUTE(getxattr, t_getxattr);
	ROUTE(listxattr, t_listxattr);
	ROUTE(removexattr, t_removexattr);
	ROUTE(access, t_access);
	ROUTE(create, t_create);
	ROUTE(fallocate, t_fallocate);
	ROUTE(copy_file_range, t_copy_file_range);
	ROUTE(lseek, t_lseek);
	announce_undelivered(op);
}
