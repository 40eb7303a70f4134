/*
 * ringfuse-passthrough fed requests from memory (no mount), for what the kernel never sends
 * but a server must survive, and for outcomes a mount cannot show: a bogus FORGET, a setattr
 * that fails half-way, a request whose credentials /proc does not show. Each check looks at
 * the source directory underneath. The daemon's identity switching needs root: without it the
 * program skips (exit status 77).
 *
 * Exit status 0 when every check passed, 1 otherwise; each check prints one line.
 */
#include "ringfuse_i.h"
#include "transport/mem.h"

#include "passthrough.h"

#include <grp.h>
#include <sys/fsuid.h>
#include <sys/wait.h>

#define ATTACKER     60100
#define ATTACKER_GID 60100
#define CLUB	     60200

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

static rf_session *se;
static struct rf_mem_reply reply;
static uint64_t next_unique = 2;
static char src[] = "/tmp/ringfuse-pt-unit-XXXXXX";

/* Feed one request as (uid, gid, pid); returns the reply's error (0 or -errno). */
static int feed(uint32_t opcode, uint64_t nodeid, uint32_t uid, uint32_t gid, uint32_t pid,
		const void *op, size_t oplen, const void *payload, size_t plen)
{
	static unsigned char msg[64 * 1024];
	struct fuse_in_header ih = {
		.len = (uint32_t)(sizeof(ih) + oplen + plen),
		.opcode = opcode,
		.unique = next_unique,
		.nodeid = nodeid,
		.uid = uid,
		.gid = gid,
		.pid = pid,
	};

	next_unique += 2;
	memcpy(msg, &ih, sizeof(ih));
	if (oplen)
		memcpy(msg + sizeof(ih), op, oplen);
	if (plen)
		memcpy(msg + sizeof(ih) + oplen, payload, plen);
	if (rf_mem_feed_msg(se, msg, ih.len, &reply) < 0)
		return -EIO;
	return reply.error;
}

/* The daemon acts on this thread: come back to root's filesystem identity to look. */
static void as_root(void)
{
	setfsuid(0);
	setfsgid(0);
}

static uint64_t lookup(const char *name)
{
	const struct fuse_entry_out *e = (const void *)reply.body;

	if (feed(FUSE_LOOKUP, RF_ROOT_INO, 0, 0, (uint32_t)getpid(), NULL, 0, name,
		 strlen(name) + 1))
		return 0;
	return e->nodeid;
}

static char *in_src(const char *name)
{
	static char path[256];

	snprintf(path, sizeof(path), "%s/%s", src, name);
	return path;
}

static void make(const char *name, mode_t mode)
{
	int fd = open(in_src(name), O_CREAT | O_WRONLY | O_TRUNC, mode);

	if (fd >= 0)
		close(fd);
	chmod(in_src(name), mode);
}

static void test_bogus_forget(void)
{
	struct fuse_forget_in fin = {.nlookup = 1};
	struct {
		struct fuse_batch_forget_in head;
		struct fuse_forget_one one[2];
	} batch = {.head = {.count = 2}, .one = {{.nodeid = 0, .nlookup = 1}, {0, 0}}};
	uint64_t ino;

	make("kept", 0644);
	ino = lookup("kept");
	CHECK(ino != 0, "lookup hands out a node id");
	feed(FUSE_FORGET, 0, 0, 0, 0, &fin, sizeof(fin), NULL, 0);
	CHECK(reply.dropped && !reply.replied, "FORGET of node id 0 is dropped, no crash");
	batch.one[1].nodeid = ino;
	batch.one[1].nlookup = 1;
	feed(FUSE_BATCH_FORGET, 0, 0, 0, 0, &batch, sizeof(batch), NULL, 0);
	CHECK(reply.dropped, "BATCH_FORGET with a node id 0 among them is dropped, no crash");
	/* The real one was forgotten: a new lookup works. */
	CHECK(lookup("kept") != 0, "the server still serves");
}

static void test_half_failed_setattr(void)
{
	struct fuse_setattr_in in = {
		.valid = FATTR_UID | FATTR_GID | FATTR_SIZE,
		.uid = ATTACKER,
		.gid = ATTACKER_GID,
		.size = (uint64_t)1 << 62, /* no filesystem takes that */
	};
	uint64_t ino;
	struct stat st;
	int err;

	make("owned", 0644);
	ino = lookup("owned");
	err = feed(FUSE_SETATTR, ino, 0, 0, (uint32_t)getpid(), &in, sizeof(in), NULL, 0);
	as_root();
	CHECK(err == -EFBIG || err == -EINVAL, "setattr of owner and an impossible size fails (%d)",
	      err);
	CHECK(stat(in_src("owned"), &st) == 0 && st.st_uid == 0 && st.st_gid == 0,
	      "and leaves the owner alone (uid %u gid %u)", (unsigned int)st.st_uid,
	      (unsigned int)st.st_gid);
}

/*
 * A request whose uid/gid are not what /proc shows for its pid (the kernel acting with other
 * credentials than the task's own, or a reused pid): the task's groups must not be lent to it.
 * This process holds CLUB; the request says it comes from ATTACKER, with this pid.
 */
static void test_groups_belong_to_the_request(void)
{
	struct fuse_mkdir_in in = {.mode = 0755};
	gid_t club = CLUB;
	int err;

	mkdir(in_src("club"), 0770);
	chown(in_src("club"), 0, CLUB);
	chmod(in_src("club"), 0770);
	if (setgroups(1, &club) < 0) {
		CHECK(0, "setgroups: %s", strerror(errno));
		return;
	}
	uint64_t dir = lookup("club");
	err = feed(FUSE_MKDIR, dir, ATTACKER, ATTACKER_GID, (uint32_t)getpid(), &in, sizeof(in),
		   "sneaked", 8);
	as_root();
	CHECK(err == -EACCES, "a request from another identity gets no groups of the pid (%d)",
	      err);
	CHECK(access(in_src("club/sneaked"), F_OK) < 0, "nothing was created");
	setgroups(0, NULL);
}

static int run(void)
{
	struct fuse_init_in init = {.major = FUSE_KERNEL_VERSION,
				    .minor = FUSE_KERNEL_MINOR_VERSION,
				    .max_readahead = 65536,
				    .flags = FUSE_INIT_EXT | FUSE_POSIX_ACL | FUSE_DONT_MASK};

	se = rf_mem_session_new(&pt_ops, sizeof(pt_ops), &fs);
	if (!se)
		return 1;
	se->opts.default_permissions = true;
	fs.root.fd = -1;
	if (pt_setup(se, src, NULL) < 0) {
		printf("FAIL - setup\n");
		return 1;
	}
	feed(FUSE_INIT, 0, 0, 0, 0, &init, sizeof(init), NULL, 0);
	CHECK(reply.error == 0, "INIT");
	test_bogus_forget();
	test_half_failed_setattr();
	test_groups_belong_to_the_request();
	rf_mem_session_destroy(se);
	pt_teardown();
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}

int main(void)
{
	pid_t pid;
	int status;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		printf("skip: the daemon's identity switching needs root\n");
		return 77;
	}
	if (!mkdtemp(src))
		return 1;
	chmod(src, 0755);
	/* The daemon drops this process's capabilities at INIT: run it in a child, clean up here.
	 */
	pid = fork();
	if (pid == 0) {
		int rc = run();

		fflush(stdout);
		_exit(rc);
	}
	waitpid(pid, &status, 0);
	if (WIFSIGNALED(status))
		printf("FAIL - the server died of signal %d\n", WTERMSIG(status));
	if (fork() == 0) {
		execlp("rm", "rm", "-rf", src, (char *)NULL);
		_exit(127);
	}
	wait(NULL);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
