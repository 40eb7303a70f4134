/*
 * memfs deferred replies, the operations side: each operation that takes a reply becomes a
 * job (defer.c queues it), and a job runs the real operation on whichever thread the pool
 * picks. Names and write data are borrowed from the request, which stays valid until it is
 * answered; rf_file_info and struct stat arguments live on the dispatcher's stack and are
 * copied.
 */
#include "defer.h"

static struct rf_ops real_ops; /* what the jobs run: the table defer_wrap() replaced */

static const char *const dop_names[D_NOPS] = {
	"lookup",
	"getattr",
	"setattr",
	"readlink",
	"mknod",
	"mkdir",
	"unlink",
	"rmdir",
	"symlink",
	"rename",
	"link",
	"open",
	"read",
	"write",
	"flush",
	"release",
	"fsync",
	"opendir",
	"readdir",
	"releasedir",
	"fsyncdir",
	"statfs",
	"setxattr",
	"getxattr",
	"listxattr",
	"removexattr",
	"access",
	"create",
	"fallocate",
	"readdirplus",
	"copy_file_range",
	"lseek",
	"tmpfile",
	"syncfs",
};

static struct rf_file_info *job_fi(struct job *j)
{
	return j->has_fi ? &j->fi : NULL;
}

void job_run(struct job *j)
{
	rf_req *r = j->req;
	const struct rf_ops *o = &real_ops;

	switch (j->op) {
	case D_LOOKUP:
		o->lookup(r, j->ino, j->name);
		break;
	case D_GETATTR:
		o->getattr(r, j->ino, job_fi(j));
		break;
	case D_SETATTR:
		o->setattr(r, j->ino, &j->attr, j->flags, job_fi(j));
		break;
	case D_READLINK:
		o->readlink(r, j->ino);
		break;
	case D_MKNOD:
		o->mknod(r, j->ino, j->name, j->mode, j->rdev);
		break;
	case D_MKDIR:
		o->mkdir(r, j->ino, j->name, j->mode);
		break;
	case D_UNLINK:
		o->unlink(r, j->ino, j->name);
		break;
	case D_RMDIR:
		o->rmdir(r, j->ino, j->name);
		break;
	case D_SYMLINK:
		o->symlink(r, j->name2, j->ino, j->name);
		break;
	case D_RENAME:
		o->rename(r, j->ino, j->name, j->ino2, j->name2, (unsigned int)j->flags);
		break;
	case D_LINK:
		o->link(r, j->ino, j->ino2, j->name);
		break;
	case D_OPEN:
		o->open(r, j->ino, job_fi(j));
		break;
	case D_READ:
		o->read(r, j->ino, j->size, j->off, job_fi(j));
		break;
	case D_WRITE:
		o->write(r, j->ino, j->buf, j->size, j->off, job_fi(j));
		break;
	case D_FLUSH:
		o->flush(r, j->ino, job_fi(j));
		break;
	case D_RELEASE:
		o->release(r, j->ino, job_fi(j));
		break;
	case D_FSYNC:
		o->fsync(r, j->ino, j->flags, job_fi(j));
		break;
	case D_OPENDIR:
		o->opendir(r, j->ino, job_fi(j));
		break;
	case D_READDIR:
		o->readdir(r, j->ino, j->size, j->off, job_fi(j));
		break;
	case D_RELEASEDIR:
		o->releasedir(r, j->ino, job_fi(j));
		break;
	case D_FSYNCDIR:
		o->fsyncdir(r, j->ino, j->flags, job_fi(j));
		break;
	case D_STATFS:
		o->statfs(r, j->ino);
		break;
	case D_SETXATTR:
		o->setxattr(r, j->ino, j->name, j->buf, j->size, j->flags);
		break;
	case D_GETXATTR:
		o->getxattr(r, j->ino, j->name, j->size);
		break;
	case D_LISTXATTR:
		o->listxattr(r, j->ino, j->size);
		break;
	case D_REMOVEXATTR:
		o->removexattr(r, j->ino, j->name);
		break;
	case D_ACCESS:
		o->access(r, j->ino, j->mask);
		break;
	case D_CREATE:
		o->create(r, j->ino, j->name, j->mode, job_fi(j));
		break;
	case D_FALLOCATE:
		o->fallocate(r, j->ino, j->flags, j->off, j->len, job_fi(j));
		break;
	case D_READDIRPLUS:
		o->readdirplus(r, j->ino, j->size, j->off, job_fi(j));
		break;
	case D_COPY_FILE_RANGE:
		o->copy_file_range(r, j->ino, j->off, job_fi(j), j->ino2, j->off2,
				   j->has_fi2 ? &j->fi2 : NULL, j->size, j->flags);
		break;
	case D_LSEEK:
		o->lseek(r, j->ino, j->off, j->flags, job_fi(j));
		break;
	case D_TMPFILE:
		o->tmpfile(r, j->ino, j->mode, job_fi(j));
		break;
	case D_SYNCFS:
		o->syncfs(r, j->ino);
		break;
	case D_NOPS:
		rf_reply_err(r, ENOSYS);
		break;
	}
}

int dop_by_name(const char *name, size_t len)
{
	for (int i = 0; i < D_NOPS; i++)
		if (strlen(dop_names[i]) == len && !strncmp(name, dop_names[i], len))
			return i;
	return -1;
}

static void copy_fi(struct job *j, const struct rf_file_info *fi)
{
	if (fi) {
		j->fi = *fi;
		j->has_fi = true;
	}
}

static void d_lookup(rf_req *req, rf_ino parent, const char *name)
{
	struct job *j = job_new(req, D_LOOKUP);

	j->ino = parent;
	j->name = name;
	job_submit(j);
}

static void d_getattr(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	struct job *j = job_new(req, D_GETATTR);

	j->ino = ino;
	copy_fi(j, fi);
	job_submit(j);
}

static void d_setattr(rf_req *req, rf_ino ino, struct stat *attr, int to_set,
		      struct rf_file_info *fi)
{
	struct job *j = job_new(req, D_SETATTR);

	j->ino = ino;
	j->attr = *attr;
	j->flags = to_set;
	copy_fi(j, fi);
	job_submit(j);
}

static void d_readlink(rf_req *req, rf_ino ino)
{
	struct job *j = job_new(req, D_READLINK);

	j->ino = ino;
	job_submit(j);
}

static void d_mknod(rf_req *req, rf_ino parent, const char *name, mode_t mode, dev_t rdev)
{
	struct job *j = job_new(req, D_MKNOD);

	j->ino = parent;
	j->name = name;
	j->mode = mode;
	j->rdev = rdev;
	job_submit(j);
}

static void d_mkdir(rf_req *req, rf_ino parent, const char *name, mode_t mode)
{
	struct job *j = job_new(req, D_MKDIR);

	j->ino = parent;
	j->name = name;
	j->mode = mode;
	job_submit(j);
}

static void d_unlink(rf_req *req, rf_ino parent, const char *name)
{
	struct job *j = job_new(req, D_UNLINK);

	j->ino = parent;
	j->name = name;
	job_submit(j);
}

static void d_rmdir(rf_req *req, rf_ino parent, const char *name)
{
	struct job *j = job_new(req, D_RMDIR);

	j->ino = parent;
	j->name = name;
	job_submit(j);
}

static void d_symlink(rf_req *req, const char *link, rf_ino parent, const char *name)
{
	struct job *j = job_new(req, D_SYMLINK);

	j->ino = parent;
	j->name = name;
	j->name2 = link;
	job_submit(j);
}

static void d_rename(rf_req *req, rf_ino parent, const char *name, rf_ino newparent,
		     const char *newname, unsigned int flags)
{
	struct job *j = job_new(req, D_RENAME);

	j->ino = parent;
	j->name = name;
	j->ino2 = newparent;
	j->name2 = newname;
	j->flags = (int)flags;
	job_submit(j);
}

static void d_link(rf_req *req, rf_ino ino, rf_ino newparent, const char *newname)
{
	struct job *j = job_new(req, D_LINK);

	j->ino = ino;
	j->ino2 = newparent;
	j->name = newname;
	job_submit(j);
}

/* open, flush, release, opendir, releasedir: (req, ino, fi). */
static void d_fi_op(rf_req *req, enum dop op, rf_ino ino, struct rf_file_info *fi)
{
	struct job *j = job_new(req, op);

	j->ino = ino;
	copy_fi(j, fi);
	job_submit(j);
}

static void d_open(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	d_fi_op(req, D_OPEN, ino, fi);
}

static void d_flush(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	d_fi_op(req, D_FLUSH, ino, fi);
}

static void d_release(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	d_fi_op(req, D_RELEASE, ino, fi);
}

static void d_opendir(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	d_fi_op(req, D_OPENDIR, ino, fi);
}

static void d_releasedir(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	d_fi_op(req, D_RELEASEDIR, ino, fi);
}

/* read, readdir, readdirplus: (req, ino, size, off, fi). */
static void d_read_op(rf_req *req, enum dop op, rf_ino ino, size_t size, off_t off,
		      struct rf_file_info *fi)
{
	struct job *j = job_new(req, op);

	j->ino = ino;
	j->size = size;
	j->off = off;
	copy_fi(j, fi);
	job_submit(j);
}

static void d_read(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	d_read_op(req, D_READ, ino, size, off, fi);
}

static void d_readdir(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	d_read_op(req, D_READDIR, ino, size, off, fi);
}

static void d_readdirplus(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	d_read_op(req, D_READDIRPLUS, ino, size, off, fi);
}

static void d_write(rf_req *req, rf_ino ino, const char *buf, size_t size, off_t off,
		    struct rf_file_info *fi)
{
	struct job *j = job_new(req, D_WRITE);

	j->ino = ino;
	j->buf = buf;
	j->size = size;
	j->off = off;
	copy_fi(j, fi);
	job_submit(j);
}

static void d_fsync_op(rf_req *req, enum dop op, rf_ino ino, int datasync, struct rf_file_info *fi)
{
	struct job *j = job_new(req, op);

	j->ino = ino;
	j->flags = datasync;
	copy_fi(j, fi);
	job_submit(j);
}

static void d_fsync(rf_req *req, rf_ino ino, int datasync, struct rf_file_info *fi)
{
	d_fsync_op(req, D_FSYNC, ino, datasync, fi);
}

static void d_fsyncdir(rf_req *req, rf_ino ino, int datasync, struct rf_file_info *fi)
{
	d_fsync_op(req, D_FSYNCDIR, ino, datasync, fi);
}

static void d_statfs(rf_req *req, rf_ino ino)
{
	struct job *j = job_new(req, D_STATFS);

	j->ino = ino;
	job_submit(j);
}

static void d_setxattr(rf_req *req, rf_ino ino, const char *name, const char *value, size_t size,
		       int flags)
{
	struct job *j = job_new(req, D_SETXATTR);

	j->ino = ino;
	j->name = name;
	j->buf = value;
	j->size = size;
	j->flags = flags;
	job_submit(j);
}

static void d_getxattr(rf_req *req, rf_ino ino, const char *name, size_t size)
{
	struct job *j = job_new(req, D_GETXATTR);

	j->ino = ino;
	j->name = name;
	j->size = size;
	job_submit(j);
}

static void d_listxattr(rf_req *req, rf_ino ino, size_t size)
{
	struct job *j = job_new(req, D_LISTXATTR);

	j->ino = ino;
	j->size = size;
	job_submit(j);
}

static void d_removexattr(rf_req *req, rf_ino ino, const char *name)
{
	struct job *j = job_new(req, D_REMOVEXATTR);

	j->ino = ino;
	j->name = name;
	job_submit(j);
}

static void d_access(rf_req *req, rf_ino ino, int mask)
{
	struct job *j = job_new(req, D_ACCESS);

	j->ino = ino;
	j->mask = mask;
	job_submit(j);
}

static void d_create(rf_req *req, rf_ino parent, const char *name, mode_t mode,
		     struct rf_file_info *fi)
{
	struct job *j = job_new(req, D_CREATE);

	j->ino = parent;
	j->name = name;
	j->mode = mode;
	copy_fi(j, fi);
	job_submit(j);
}

static void d_fallocate(rf_req *req, rf_ino ino, int mode, off_t offset, off_t length,
			struct rf_file_info *fi)
{
	struct job *j = job_new(req, D_FALLOCATE);

	j->ino = ino;
	j->flags = mode;
	j->off = offset;
	j->len = length;
	copy_fi(j, fi);
	job_submit(j);
}

static void d_copy_file_range(rf_req *req, rf_ino ino_in, off_t off_in, struct rf_file_info *fi_in,
			      rf_ino ino_out, off_t off_out, struct rf_file_info *fi_out,
			      size_t len, int flags)
{
	struct job *j = job_new(req, D_COPY_FILE_RANGE);

	j->ino = ino_in;
	j->off = off_in;
	copy_fi(j, fi_in);
	j->ino2 = ino_out;
	j->off2 = off_out;
	if (fi_out) {
		j->fi2 = *fi_out;
		j->has_fi2 = true;
	}
	j->size = len;
	j->flags = flags;
	job_submit(j);
}

static void d_lseek(rf_req *req, rf_ino ino, off_t off, int whence, struct rf_file_info *fi)
{
	struct job *j = job_new(req, D_LSEEK);

	j->ino = ino;
	j->off = off;
	j->flags = whence;
	copy_fi(j, fi);
	job_submit(j);
}

static void d_tmpfile(rf_req *req, rf_ino parent, mode_t mode, struct rf_file_info *fi)
{
	struct job *j = job_new(req, D_TMPFILE);

	j->ino = parent;
	j->mode = mode;
	copy_fi(j, fi);
	job_submit(j);
}

static void d_syncfs(rf_req *req, rf_ino ino)
{
	struct job *j = job_new(req, D_SYNCFS);

	j->ino = ino;
	job_submit(j);
}

void defer_wrap(struct rf_ops *ops)
{
	real_ops = *ops;
#define WRAP(op)                          \
	do {                              \
		if (ops->op)              \
			ops->op = d_##op; \
	} while (0)
	WRAP(lookup);
	WRAP(getattr);
	WRAP(setattr);
	WRAP(readlink);
	WRAP(mknod);
	WRAP(mkdir);
	WRAP(unlink);
	WRAP(rmdir);
	WRAP(symlink);
	WRAP(rename);
	WRAP(link);
	WRAP(open);
	WRAP(read);
	WRAP(write);
	WRAP(flush);
	WRAP(release);
	WRAP(fsync);
	WRAP(opendir);
	WRAP(readdir);
	WRAP(releasedir);
	WRAP(fsyncdir);
	WRAP(statfs);
	WRAP(setxattr);
	WRAP(getxattr);
	WRAP(listxattr);
	WRAP(removexattr);
	WRAP(access);
	WRAP(create);
	WRAP(fallocate);
	WRAP(readdirplus);
	WRAP(copy_file_range);
	WRAP(lseek);
	WRAP(tmpfile);
	WRAP(syncfs);
#undef WRAP
	ops->interrupt = defer_interrupt;
}
