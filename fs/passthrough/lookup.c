/*
 * ringfuse-passthrough lookups: a name beneath a directory becomes a counted inode and the
 * entry the kernel caches, without ever leaving SOURCE (see Containment in passthrough.h);
 * forget gives the lookups back.
 */
#include "passthrough.h"

/* O_PATH descriptor of one component under dirfd, never following a symlink or a magic link. */
static int open_child(int dirfd, const char *name)
{
	static atomic_bool no_openat2;
	struct open_how how = {
		.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd;

	if (!atomic_load_explicit(&no_openat2, memory_order_relaxed)) {
		fd = (int)syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
		if (fd >= 0)
			return fd;
		if (errno != ENOSYS)
			return neg_errno();
		atomic_store(&no_openat2, true);
	}
	fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? neg_errno() : fd;
}

static bool same_object(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

bool is_root_object(const struct stat *st)
{
	return st->st_dev == fs.root.dev && st->st_ino == fs.root.ino;
}

/* Is the directory dirfd SOURCE or below it? Walks ".." to the top: only for rare paths. */
bool within_source(int dirfd)
{
	struct stat st, up_st;
	int cur = dirfd;
	bool found = false;

	for (int depth = 0; depth < 4096; depth++) {
		int up;

		if (stat_fd(cur, &st) < 0)
			break;
		if (is_root_object(&st)) {
			found = true;
			break;
		}
		up = openat(cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (up < 0)
			break;
		if (stat_fd(up, &up_st) < 0 || same_object(&st, &up_st)) {
			close(up);
			break;
		}
		if (cur != dirfd)
			close(cur);
		cur = up;
	}
	if (cur != dirfd)
		close(cur);
	return found;
}

static void fill_entry(struct rf_entry_param *e, rf_ino ino, const struct stat *st)
{
	memset(e, 0, sizeof(*e));
	e->ino = ino;
	e->attr = *st;
	e->attr.st_ino = ino_out(st->st_dev, st->st_ino);
	e->attr_timeout = fs.timeout;
	e->entry_timeout = fs.timeout;
}

/* Turn a fresh O_PATH descriptor into a counted inode and its entry. Consumes fd. */
int entry_from_fd(int fd, struct rf_entry_param *e)
{
	struct pt_inode *in;
	struct stat st;
	int err = stat_fd(fd, &st);

	if (err) {
		close(fd);
		return err;
	}
	if (is_root_object(&st)) {
		close(fd);
		fill_entry(e, RF_ROOT_INO, &st);
		return 0;
	}
	in = inode_get(&st, &fd);
	if (fd >= 0)
		close(fd);
	if (!in)
		return -ENOMEM;
	fill_entry(e, ino_of(in), &st);
	return 0;
}

/* An entry for an inode the kernel already holds, with one more lookup on it. */
int entry_of_inode(struct pt_inode *in, struct rf_entry_param *e)
{
	struct stat st;
	int err = stat_fd(in->fd, &st);

	if (err)
		return err;
	inode_ref(in);
	fill_entry(e, ino_of(in), &st);
	return 0;
}

/* The kernel only asks for ".." when exporting; answer it without leaving SOURCE. */
static int lookup_dotdot(struct pt_inode *dir, struct rf_entry_param *e)
{
	int fd;

	if (dir == &fs.root)
		return entry_of_inode(&fs.root, e);
	fd = openat(dir->fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	if (!within_source(fd)) {
		close(fd);
		return -ENOENT;
	}
	return entry_from_fd(fd, e);
}

static int lookup_once(struct pt_inode *dir, const char *name, struct rf_entry_param *e)
{
	int fd;

	if (!strcmp(name, "."))
		return entry_of_inode(dir, e);
	if (!strcmp(name, ".."))
		return lookup_dotdot(dir, e);
	fd = open_child(dir->fd, name);
	if (fd < 0)
		return fd;
	return entry_from_fd(fd, e);
}

/* The kernel checked the caller's right to search dir; this thread may act for someone else. */
int lookup_name(struct pt_inode *dir, const char *name, struct rf_entry_param *e)
{
	int err = check_name(name);

	if (err)
		return err;
	if (!S_ISDIR(dir->type))
		return -ENOTDIR;
	err = lookup_once(dir, name, e);
	if (creds_retry_privileged(err)) {
		err = lookup_once(dir, name, e);
		creds_settle();
	}
	return err;
}

/* If the kernel did not take the entry (the request was interrupted), take its lookup back. */
void reply_entry(rf_req *req, const struct rf_entry_param *e)
{
	if (rf_reply_entry(req, e) < 0 && e->ino)
		inode_put(inode_of(e->ino), 1);
}

void pt_lookup(rf_req *req, rf_ino parent, const char *name)
{
	struct rf_entry_param e;
	int err = lookup_name(inode_of(parent), name, &e);

	if (err == -ENOENT && fs.cache != CACHE_NONE) {
		/* A negative entry: the kernel caches the absence for the entry timeout. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs.timeout;
		rf_reply_entry(req, &e);
		return;
	}
	if (err) {
		reply_status(req, err);
		return;
	}
	reply_entry(req, &e);
}

/*
 * Node ids are addresses the kernel got from us, and the kernel is trusted to send only those;
 * still, a forget of node id 0 (which no reply ever carries) or of an inode not live any more
 * is refused rather than followed.
 */
void pt_forget(rf_req *req, rf_ino ino, uint64_t nlookup)
{
	static atomic_bool said;
	struct pt_inode *in = ino ? inode_of(ino) : NULL;

	if (in && (in == &fs.root || in->magic == PT_INODE_MAGIC))
		inode_put(in, nlookup);
	else if (!atomic_exchange(&said, true))
		fprintf(stderr, "ringfuse-passthrough: forget of unknown node id %#llx refused\n",
			(unsigned long long)ino);
	rf_reply_none(req);
}
