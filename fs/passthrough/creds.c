/*
 * ringfuse-passthrough, acting for the caller. The daemon normally runs as root. Every operation
 * that creates or changes something (create, mknod, mkdir, symlink, link, tmpfile, setattr, unlink,
 * rmdir, rename, setxattr, removexattr, access, and opens for writing, truncating or O_NOATIME)
 * runs with the caller's filesystem uid and gid and supplementary groups, switched on the handling
 * thread only and switched back before the reply. That takes raw system calls: the glibc
 * setgroups() wrapper changes every thread of the process. With a non-root fsuid the kernel
 * drops CAP_CHOWN, CAP_DAC_*, CAP_FOWNER, CAP_FSETID and CAP_MKNOD, so the underlying
 * filesystem applies its own rules: ownership of new objects and the setgid directory,
 * sticky directories, chown/chmod/utimensat permissions, suid/sgid clearing, hard link
 * protection. Two changes the kernel sends on behalf of callers who need not own the file are
 * retried with the server's rights when the caller's fail: a mode change that only clears
 * suid/sgid (after a write or truncate by another user), and, with writeback, explicit times
 * for a caller who may write (the kernel turns touch and write into explicit c/mtime).
 * Plain reads and lookups keep the server's rights: the kernel checked them
 * (default_permissions) before asking. So does I/O on an open descriptor (read, write, fsync,
 * fallocate): the open was checked, and io_uring workers could not take a switched fsuid
 * anyway. The daemon runs with umask 0: without FUSE_DONT_MASK the kernel applies the caller's
 * umask to create modes before sending them; with it (negotiated together with ACL support)
 * the creating thread takes the caller's umask for the call (creds_create_mode()).
 */
#include "passthrough.h"

#include <sched.h>

#define NGROUPS_ON_STACK 64

static int groups_of_caller(rf_req *req, gid_t *stack, gid_t **groups)
{
	int n = rf_req_getgroups(req, NGROUPS_ON_STACK, stack);

	*groups = stack;
	if (n > NGROUPS_ON_STACK) {
		int want = n;

		*groups = malloc((size_t)want * sizeof(gid_t));
		if (!*groups)
			return -ENOMEM;
		n = rf_req_getgroups(req, want, *groups);
		if (n > want)
			n = want;
	}
	/* No /proc entry (the caller exited, or a kernel-internal request): no extra groups,
	 * which can only deny, never grant. */
	return n < 0 ? 0 : n;
}

/* Switch this thread's filesystem identity to the caller's. */
int creds_enter(rf_req *req, struct creds *c)
{
	const struct rf_ctx *ctx = rf_req_ctx(req);
	gid_t stack[NGROUPS_ON_STACK], *groups;
	int n, err = 0;

	c->switched = false;
	if (!fs.switch_creds || (ctx->uid == fs.uid && ctx->gid == fs.gid))
		return 0;
	n = groups_of_caller(req, stack, &groups);
	if (n < 0)
		return n;
	if (syscall(SYS_setgroups, (size_t)n, groups) < 0)
		err = neg_errno();
	if (groups != stack)
		free(groups);
	if (err)
		return err;
	/* Undone in reverse order by creds_leave(). */
	c->uid = ctx->uid;
	c->gid = ctx->gid;
	syscall(SYS_setfsgid, c->gid);
	syscall(SYS_setfsuid, c->uid);
	c->switched = true;
	return 0;
}

/* Step out of the caller's identity for one call (the caller's groups stay: root ignores them). */
void creds_pause(struct creds *c)
{
	if (!c->switched)
		return;
	syscall(SYS_setfsuid, fs.uid);
	syscall(SYS_setfsgid, fs.gid);
}

void creds_resume(struct creds *c)
{
	if (!c->switched)
		return;
	syscall(SYS_setfsgid, c->gid);
	syscall(SYS_setfsuid, c->uid);
}

void creds_leave(struct creds *c)
{
	if (!c->switched)
		return;
	syscall(SYS_setfsuid, fs.uid);
	syscall(SYS_setfsgid, fs.gid);
	syscall(SYS_setgroups, (size_t)fs.ngroups, fs.groups);
	c->switched = false;
}

/*
 * The mode to create with, on the thread that creates. Without DONT_MASK the kernel applied
 * the caller's umask already. With it (negotiated with ACL support) the umask must be ignored
 * when the parent directory has a default ACL, which only the filesystem underneath knows, so
 * the caller's umask becomes this thread's for the call and the mode goes down unmasked. A
 * thread gets a umask of its own by unsharing its filesystem context (once); the umask call
 * itself is skipped while it already holds the caller's.
 */
mode_t creds_create_mode(rf_req *req, mode_t mode)
{
	static __thread int own_umask = -1; /* -1: this thread shares the process's (0) */
	mode_t want = rf_req_ctx(req)->umask & 0777;

	mode &= 07777;
	if (!fs.dont_mask)
		return mode;
	if (own_umask < 0) {
		if (unshare(CLONE_FS) < 0)
			return mode & ~want; /* no default ACL semantics, but never more access */
		own_umask = 0;
	}
	if ((mode_t)own_umask != want) {
		umask(want);
		own_umask = (int)want;
	}
	return mode;
}

/* Root can switch; anyone else serves everything with their own rights. Checked once. */
void creds_init(void)
{
	int n;

	fs.uid = geteuid();
	fs.gid = getegid();
	n = getgroups(0, NULL);
	if (n > 0) {
		fs.groups = calloc((size_t)n, sizeof(gid_t));
		if (fs.groups)
			fs.ngroups = getgroups(n, fs.groups);
		if (fs.ngroups < 0)
			fs.ngroups = 0;
	}
	if (fs.uid != 0)
		return;
	syscall(SYS_setfsuid, 65534);
	fs.switch_creds = (uid_t)syscall(SYS_setfsuid, fs.uid) == 65534;
	syscall(SYS_setfsuid, fs.uid);
}
