/*
 * ringfuse-passthrough, acting for the caller: the filesystem identity (fsuid, fsgid,
 * supplementary groups) of each serving thread. The daemon normally runs as root; identities
 * are per thread, so each thread switches its own, with the 32-bit-id calls on every
 * architecture (glibc's setfsuid/setfsgid, the raw setgroups32 where it exists: glibc's
 * setgroups() would change every thread of the process).
 *
 * A thread is in one of three identities, and changes only when a request needs another (so a
 * user's requests after the first cost no switch):
 *   root       the daemon's own: for root callers, and for what the kernel already checked
 *   a caller   an unprivileged user's uid, gid and supplementary groups, exactly: with a
 *              non-zero fsuid the kernel takes CAP_CHOWN, CAP_DAC_*, CAP_FOWNER, CAP_FSETID
 *              and CAP_MKNOD away, so the filesystem underneath applies its own rules as for a
 *              local caller (ownership and the setgid directory, sticky directories, chown,
 *              chmod and utimensat permissions, suid/sgid clearing, hard link protection, and
 *              blocks reserved for root)
 *   anonymous  nobody:nogroup without groups, plus CAP_FSETID: for writes nobody can be named
 *              for (writeback of the kernel's cache) and for kernel-passthrough backing files,
 *              which the kernel shares between all opens of an inode; the kernel made the
 *              suid/sgid decisions for the real writers already, so these writes must not
 *              clear the bits again
 *
 * Operations that create or change something run as the caller (creds_enter). Those the kernel
 * already checked for the caller (lookups, read opens, listings, reading attributes) run with
 * whatever identity the thread has and are retried as root if that is refused
 * (creds_retry_privileged). Backend writes run with the identity the thread has when they are
 * submitted, which with the io-uring transports is after the handler returned, together with
 * the writes of other requests: so while writes of unprivileged callers are in flight on a
 * thread, no request leaves it as root, and while anonymous ones are, none leaves it other than
 * anonymous (creds_io_begin/end count them; creds_leave settles). A root caller's write may
 * then run without root's privileges, never the other way round.
 *
 * Supplementary groups come from /proc, and only when the ids shown there are the request's
 * (fs/common/caller.c).
 *
 * The daemon runs with umask 0: without FUSE_DONT_MASK the kernel applies the caller's umask to
 * create modes before sending them; with it (negotiated together with ACL support) the creating
 * thread takes the caller's umask for the call (creds_create_mode()).
 */
#include "passthrough.h"
#include "../common/caller.h"

#include <sched.h>
#include <sys/fsuid.h>

#ifdef SYS_setgroups32
#define SYS_SETGROUPS SYS_setgroups32 /* the 16-bit call would truncate ids */
#elif defined(__i386__) || defined(__arm__)
#error "setgroups32 missing: SYS_setgroups takes 16-bit group ids here"
#else
#define SYS_SETGROUPS SYS_setgroups
#endif

#define ANON_UID    65534 /* nobody */
#define ANON_GID    65534 /* nogroup */
#define GROUPS_KEPT 32	  /* supplementary groups a thread remembers without allocating */

/* This thread's identity as set on it, and the backend writes it has in flight. */
struct ident {
	bool ready;
	bool anonymous; /* the anonymous identity, CAP_FSETID raised */
	uid_t uid;
	gid_t gid;
	int ngroups; /* -1: not known (more than GROUPS_KEPT were set) */
	gid_t groups[GROUPS_KEPT];
	unsigned int unpriv_io; /* writes in flight that must not run as root */
	unsigned int anon_io;	/* writes in flight that must run anonymous */
};

static __thread struct ident me;

static void ident_ready(void)
{
	if (me.ready)
		return;
	me.ready = true;
	me.uid = fs.uid;
	me.gid = fs.gid;
	me.ngroups = -1; /* the daemon's own: set once before a caller's replace them */
}

static bool same_groups(const gid_t *groups, int n)
{
	return me.ngroups == n && (!n || !memcmp(me.groups, groups, (size_t)n * sizeof(gid_t)));
}

static int set_groups(const gid_t *groups, int n)
{
	if (me.ngroups >= 0 && same_groups(groups, n))
		return 0;
	if (syscall(SYS_SETGROUPS, (size_t)n, groups) < 0)
		return neg_errno();
	me.ngroups = n <= GROUPS_KEPT ? n : -1;
	if (me.ngroups > 0)
		memcpy(me.groups, groups, (size_t)n * sizeof(gid_t));
	return 0;
}

/* Filesystem ids of this thread; groups are set first, by the caller of this. */
static void set_ids(uid_t uid, gid_t gid, bool anonymous)
{
	if (me.anonymous && !anonymous && uid != 0)
		caps_lower(CAP_FSETID); /* a uid change between two non-zero ids keeps it */
	if (me.gid != gid) {
		setfsgid(gid);
		me.gid = gid;
	}
	if (me.uid != uid) {
		setfsuid(uid);
		me.uid = uid;
	}
	if (anonymous && !me.anonymous)
		caps_raise(CAP_FSETID);
	me.anonymous = anonymous;
}

static void become_root(gid_t gid)
{
	set_ids(0, gid, false);
}

static void become_anonymous(void)
{
	if (me.anonymous)
		return;
	set_groups(NULL, 0);
	set_ids(ANON_UID, ANON_GID, true);
}

/* ---- acting for the caller ---- */

/* Become the caller of req, for an operation done in its name. */
int creds_enter(rf_req *req, struct creds *c)
{
	const struct rf_ctx *ctx = rf_req_ctx(req);
	gid_t stack[GROUPS_KEPT], *groups;
	int n, err;

	c->switched = false;
	if (!fs.switch_creds)
		return 0;
	ident_ready();
	c->uid = ctx->uid;
	c->gid = ctx->gid;
	if (ctx->uid == (uid_t)-1 || ctx->gid == (gid_t)-1) {
		/* The kernel could not name the caller in the daemon's user namespace. */
		become_anonymous();
		c->uid = ANON_UID;
		c->gid = ANON_GID;
		c->switched = true;
		return 0;
	}
	if (ctx->uid == 0) {
		/* Root's rights do not depend on its groups. */
		become_root(ctx->gid);
		return 0;
	}
	n = caller_groups(ctx, stack, GROUPS_KEPT, &groups);
	err = set_groups(groups, n);
	if (groups != stack)
		free(groups);
	if (err)
		return err;
	set_ids(ctx->uid, ctx->gid, false);
	c->switched = true;
	return 0;
}

/* Step out of the caller's identity for one call (the caller's groups stay: root ignores them). */
void creds_pause(struct creds *c)
{
	if (c->switched)
		become_root(me.gid);
}

void creds_resume(struct creds *c)
{
	if (c->switched)
		set_ids(c->uid, c->gid, false);
}

/* What the writes in flight need of this thread, whoever it acts for next. */
void creds_settle(void)
{
	if (!fs.switch_creds)
		return;
	if (me.anon_io || (me.unpriv_io && me.uid == 0))
		become_anonymous();
}

void creds_leave(struct creds *c)
{
	(void)c;
	creds_settle();
}

/*
 * For an operation the kernel checked for the caller already: if err says that this thread's
 * identity (another caller's, perhaps) may not do it, take the daemon's rights and return true:
 * the caller tries again, then calls creds_settle().
 */
bool creds_retry_privileged(int err)
{
	if ((err != -EACCES && err != -EPERM) || !fs.switch_creds)
		return false;
	ident_ready();
	if (me.uid == 0)
		return false;
	become_root(me.gid);
	return true;
}

/* The daemon's own rights, for one call on behalf of the kernel; creds_settle() after it. */
void creds_privileged(void)
{
	if (!fs.switch_creds)
		return;
	ident_ready();
	become_root(me.gid);
}

/* ---- backend writes ---- */

/*
 * Before a write (or an allocation) of req's data is started: give the thread the identity it
 * must run with and count it until creds_io_end(). Writes of the kernel's cache have no caller
 * (anonymous); an unprivileged caller's run as that caller, or as another unprivileged identity
 * the thread already has; root's run as root unless unprivileged writes are in flight.
 */
enum io_ident creds_io_begin(rf_req *req, const struct rf_file_info *fi)
{
	const struct rf_ctx *ctx = rf_req_ctx(req);
	struct creds c;

	if (!fs.switch_creds)
		return IO_AS_ROOT;
	ident_ready();
	if (fi && (fi->write_flags & FUSE_WRITE_CACHE)) {
		become_anonymous();
		me.anon_io++;
		me.unpriv_io++;
		return IO_ANON;
	}
	if (ctx->uid != 0) {
		/* Anonymous while anonymous writes are in flight; otherwise the caller exactly,
		 * unless the thread already acts for another unprivileged user. */
		if (!me.anon_io && (me.uid == 0 || me.anonymous) && creds_enter(req, &c) < 0)
			become_anonymous();
		me.unpriv_io++;
		return IO_UNPRIV;
	}
	if (me.uid != 0 && !me.unpriv_io)
		become_root(ctx->gid);
	return IO_AS_ROOT; /* or unprivileged, while others' writes are in flight */
}

/* The write counted by creds_io_begin() is over (on the thread that started it). */
void creds_io_end(enum io_ident kind)
{
	if (kind == IO_AS_ROOT)
		return;
	if (me.unpriv_io)
		me.unpriv_io--;
	if (kind == IO_ANON && me.anon_io)
		me.anon_io--;
}

/*
 * The kernel's backing files are shared by every open of an inode and do their I/O with the
 * credentials of this call: register them anonymously, with CAP_SYS_ADMIN for the call only.
 */
int creds_backing_begin(void)
{
	if (!fs.switch_creds)
		return 0;
	ident_ready();
	become_anonymous();
	return caps_raise(CAP_SYS_ADMIN);
}

void creds_backing_end(void)
{
	if (fs.switch_creds)
		caps_lower(CAP_SYS_ADMIN);
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
	fs.uid = geteuid();
	fs.gid = getegid();
	if (fs.uid != 0)
		return;
	setfsuid(ANON_UID);
	fs.switch_creds = (uid_t)setfsuid(fs.uid) == ANON_UID;
	setfsuid(fs.uid);
}
