/*
 * A session: options, mount, the main thread's /dev/fuse loop, the transport started after
 * INIT, signals, and every way the session ends.
 *
 * The main thread always reads /dev/fuse. INIT arrives there; once it is answered the chosen
 * transport starts its own threads (io-uring queues, or more /dev/fuse workers) and the main
 * thread keeps serving what still comes over /dev/fuse. The session ends when the kernel says
 * the connection is gone (unmount, abort), when rf_session_exit() is called (signals), or
 * when something it needs fails (rf_session_fail: a queue died). How it ends is the same for
 * every transport (lib/transport/README.md): the mount is detached, a clean stop drains what
 * is owed, the transport is stopped and joined, the connection is aborted, then ops.destroy
 * runs.
 */
#include "ringfuse_i.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static rf_session *signal_session;
static volatile sig_atomic_t stats_requested;

void rf_session_init_core(rf_session *se)
{
	se->fd = -1;
	se->serve_wake = -1;
	pthread_mutex_init(&se->lock, NULL);
	pthread_mutex_init(&se->intr.lock, NULL);
	rf_intr_setup(se);
}

void rf_session_free_core(rf_session *se)
{
	free(se->retired);
	free(se->tables);
	pthread_mutex_destroy(&se->intr.lock);
	pthread_mutex_destroy(&se->lock);
}

rf_session *rf_session_new(int argc, char *argv[], const struct rf_ops *ops, size_t ops_size,
			   void *userdata)
{
	rf_session *se = calloc(1, sizeof(*se));
	int ret;

	if (!se) {
		errno = ENOMEM;
		return NULL;
	}
	rf_session_init_core(se);
	rf_faults_init();
	if (ops_size > sizeof(se->ops)) {
		rf_log(RF_LOG_WARN, "ringfuse: the filesystem's ops table is newer than this "
				    "library; unknown operations are ignored");
		ops_size = sizeof(se->ops);
	}
	memcpy(&se->ops, ops, ops_size);
	se->userdata = userdata;
	ret = rf_opts_parse(se, argc, argv);
	if (ret) {
		rf_session_destroy(se);
		errno = ret > 0 ? 0 : -ret;
		return NULL;
	}
	return se;
}

const char *rf_session_source(const rf_session *se)
{
	return se->source;
}

const char *rf_session_mountpoint(const rf_session *se)
{
	return se->mountpoint;
}

int rf_session_default_permissions(const rf_session *se)
{
	return se->opts.default_permissions;
}

int rf_session_allow_other(const rf_session *se)
{
	return se->opts.allow_other;
}

const char *rf_session_transport(const rf_session *se)
{
	return se->tp ? se->tp->name : "none";
}

void rf_session_wake_serve(rf_session *se)
{
	int efd = atomic_load_explicit(&se->serve_wake, memory_order_acquire);
	uint64_t one = 1;

	if (efd >= 0 && write(efd, &one, sizeof(one)) < 0)
		return; /* only full if a wake-up is already pending */
}

/* The session's serving thread may be blocked in read() of /dev/fuse or in the ring of a
 * transport serving on it: wake it. On that thread itself (a signal handler), the blocking
 * call returns EINTR anyway. */
static void wake_main(rf_session *se)
{
	rf_session_wake_serve(se);
	if (se->mounted && !pthread_equal(pthread_self(), se->main_thread))
		pthread_kill(se->main_thread, SIGUSR2);
}

void rf_session_exit(rf_session *se)
{
	atomic_store(&se->exiting, true);
	wake_main(se);
}

void rf_session_register_queue(rf_session *se, unsigned int idx, struct rf_qstats *st)
{
	if (idx >= RF_MAX_QUEUES)
		return;
	pthread_mutex_lock(&se->lock);
	se->qstats[idx] = st;
	if (idx + 1 > se->nqueues)
		se->nqueues = idx + 1;
	pthread_mutex_unlock(&se->lock);
}

void rf_session_retire_queue(rf_session *se, unsigned int idx)
{
	if (idx >= RF_MAX_QUEUES)
		return;
	pthread_mutex_lock(&se->lock);
	if (se->qstats[idx]) {
		if (!se->retired)
			se->retired = calloc(RF_MAX_QUEUES, sizeof(*se->retired));
		if (se->retired) {
			se->retired[idx] = *se->qstats[idx];
			se->qstats[idx] = &se->retired[idx];
		} else {
			se->qstats[idx] = NULL;
		}
	}
	pthread_mutex_unlock(&se->lock);
}

size_t rf_page_size(void)
{
	static _Atomic size_t cached;
	size_t sz = atomic_load_explicit(&cached, memory_order_relaxed);

	if (!sz) {
		long v = sysconf(_SC_PAGESIZE);

		sz = v > 0 ? (size_t)v : 4096;
		atomic_store_explicit(&cached, sz, memory_order_relaxed);
	}
	return sz;
}

void rf_session_fail(rf_session *se, int err, const char *fmt, ...)
{
	int none = 0;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rf_log(RF_LOG_ERR, "%s", msg);
	atomic_compare_exchange_strong(&se->exit_status, &none, err < 0 ? err : -EIO);
	atomic_store(&se->failed, true);
	atomic_store(&se->exiting, true);
	wake_main(se);
}

uint64_t rf_session_drain_deadline(rf_session *se)
{
	uint64_t d = atomic_load(&se->drain_deadline_ns), none = 0;

	if (d)
		return d;
	/* Nothing to wait for once the kernel ended the connection or the session failed. */
	d = rf_now_ns();
	if (!atomic_load(&se->conn_gone) && !atomic_load(&se->failed))
		d += (uint64_t)se->opts.drain_ms * 1000000ull;
	return atomic_compare_exchange_strong(&se->drain_deadline_ns, &none, d) ? d : none;
}

void rf_retire_fd(int fd)
{
	int null;

	if (fd < 0)
		return;
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0 || dup3(null, fd, O_CLOEXEC) < 0) {
		/* No /dev/null to stand in: closing is the next best thing. */
		rf_log(RF_LOG_WARN, "ringfuse: cannot retire fd %d: %s", fd, strerror(errno));
		close(fd);
	}
	if (null >= 0)
		close(null);
}

void rf_session_conn_lost(rf_session *se)
{
	if (!atomic_exchange(&se->conn_gone, true))
		atomic_store(&se->exiting, true);
	wake_main(se);
}

void rf_session_init_done(rf_session *se)
{
	int ret;

	atomic_store(&se->initialized, true);
	/* Started after init, like the transport's threads: it inherits what init set up for the
	 * process's threads (e.g. capabilities a filesystem dropped). */
	if (se->watch_wanted)
		rf_mount_watch_start(se);
	if (!se->tp || se->tp->start == NULL)
		return;
	rf_log(RF_LOG_INFO, "ringfuse: transport %s", se->tp->name);
	ret = se->tp->start(se);
	if (ret == 0)
		return;
	if (se->tp == &rf_transport_dev) {
		rf_log(RF_LOG_WARN,
		       "ringfuse: could not start more /dev/fuse workers (%s); "
		       "serving single-threaded",
		       strerror(-ret));
		return;
	}
	if (se->opts.transport != RF_TP_AUTO) {
		rf_log(RF_LOG_ERR, "ringfuse: the %s transport failed to start: %s", se->tp->name,
		       strerror(-ret));
		se->tp = NULL;
		se->exit_status = ret;
		rf_session_exit(se);
		return;
	}
	rf_log(RF_LOG_WARN, "ringfuse: the %s transport failed to start (%s); falling back to dev",
	       se->tp->name, strerror(-ret));
	se->tp = &rf_transport_dev;
	rf_log(RF_LOG_INFO, "ringfuse: transport %s", se->tp->name);
	if (se->tp->start(se))
		rf_log(RF_LOG_WARN, "ringfuse: serving single-threaded");
}

static void on_exit_signal(int sig)
{
	(void)sig;
	if (signal_session) {
		atomic_store(&signal_session->exiting, true);
		rf_session_wake_serve(signal_session);
	}
}

static void on_stats_signal(int sig)
{
	(void)sig;
	stats_requested = 1;
	if (signal_session)
		rf_session_wake_serve(signal_session);
}

static void on_wake_signal(int sig)
{
	(void)sig;
}

static void set_handler(int sig, void (*fn)(int))
{
	struct sigaction sa = {0};

	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a blocking read() of /dev/fuse must return EINTR. */
	sa.sa_flags = 0;
	sigaction(sig, &sa, NULL);
}

static void install_signals(rf_session *se)
{
	signal_session = se;
	set_handler(SIGINT, on_exit_signal);
	set_handler(SIGTERM, on_exit_signal);
	set_handler(SIGHUP, on_exit_signal);
	set_handler(SIGUSR1, on_stats_signal);
	set_handler(SIGUSR2, on_wake_signal);
	signal(SIGPIPE, SIG_IGN);
}

static void restore_signals(void)
{
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGUSR1, SIG_DFL);
	signal_session = NULL;
}

static void print_stats(rf_session *se)
{
	struct rf_stats *st = malloc(sizeof(*st));

	if (!st)
		return;
	if (rf_session_stats(se, st) == 0)
		rf_stats_print(st, STDERR_FILENO);
	free(st);
}

static int check_mountpoint(rf_session *se)
{
	struct stat st;
	char *abs;

	if (stat(se->mountpoint, &st) < 0) {
		int err = errno;

		rf_log(RF_LOG_ERR, "ringfuse: bad mountpoint '%s': %s", se->mountpoint,
		       strerror(err));
		return -err;
	}
	if (!S_ISDIR(st.st_mode)) {
		rf_log(RF_LOG_ERR, "ringfuse: bad mountpoint '%s': not a directory",
		       se->mountpoint);
		return -ENOTDIR;
	}
	abs = realpath(se->mountpoint, NULL);
	if (!abs)
		return -errno;
	free(se->mountpoint);
	se->mountpoint = abs;
	return 0;
}

/* Decide before mounting whether io-uring can be asked for, so "-o transport=uring" fails
 * with a reason instead of mounting something it cannot serve. */
static int check_transport(rf_session *se)
{
	struct rf_probe p;
	char why[256];

	if (se->opts.transport == RF_TP_DEV || se->opts.transport == RF_TP_URING_RW)
		return 0;
	rf_probe_run(&p);
	if (rf_probe_uring_usable(&p, why, sizeof(why)) == 0) {
		se->uring_possible = true;
		return 0;
	}
	if (se->opts.transport == RF_TP_URING) {
		rf_log(RF_LOG_ERR, "ringfuse: transport=uring is not available: %s", why);
		return -EOPNOTSUPP;
	}
	rf_log(RF_LOG_INFO, "ringfuse: io-uring not available (%s); using /dev/fuse", why);
	return 0;
}

void rf_session_poll_signals(rf_session *se)
{
	if (stats_requested) {
		stats_requested = 0;
		print_stats(se);
	}
}

static void daemonize(rf_session *se)
{
	pid_t pid = fork();
	int nullfd;

	if (pid < 0) {
		rf_log(RF_LOG_WARN, "ringfuse: fork failed (%s); staying in the foreground",
		       strerror(errno));
		return;
	}
	if (pid > 0)
		_exit(0);
	setsid();
	if (chdir("/") < 0)
		rf_log(RF_LOG_WARN, "ringfuse: chdir / failed");
	nullfd = open("/dev/null", O_RDWR);
	if (nullfd >= 0) {
		dup2(nullfd, STDIN_FILENO);
		dup2(nullfd, STDOUT_FILENO);
		dup2(nullfd, STDERR_FILENO);
		if (nullfd > STDERR_FILENO)
			close(nullfd);
	}
	rf_log_to_syslog();
	(void)se;
}

static void compute_buffers(rf_session *se)
{
	uint32_t mw = se->opts.max_write ? se->opts.max_write : RF_DEFAULT_MAX_WRITE;

	se->conn.max_write = mw;
	/* The kernel refuses reads into buffers smaller than header + write_in + max_write. */
	se->dev_bufsize = mw + RF_PAGE_SIZE;
	if (se->dev_bufsize < FUSE_MIN_READ_BUFFER)
		se->dev_bufsize = FUSE_MIN_READ_BUFFER;
}

/* Every way a session ends goes through here, in this order (lib/transport/README.md). */
static void session_end(rf_session *se)
{
	bool clean = !atomic_load(&se->conn_gone) && !atomic_load(&se->failed);

	/* Asked to stop while mounted, or the connection was aborted under a mount that is still
	 * there: either way take the mount away, so nobody is left with a dead directory. The
	 * mount is detached: open files still reach us through the connection. */
	if (!atomic_load(&se->conn_gone) || rf_mount_still_there(se))
		rf_unmount(se);
	/* A clean stop first delivers what is owed: replies made, deferred, or waiting for
	 * backend I/O, until the drain deadline. */
	if (clean && se->tp && se->tp->drain)
		se->tp->drain(se, rf_session_drain_deadline(se));
	if (se->tp && se->tp->stop)
		se->tp->stop(se);
	if (se->tp && se->tp->destroy)
		se->tp->destroy(se);
	/* The connection ends here whatever the transport: se->fd holds the last reference to
	 * the /dev/fuse file, so retiring it aborts the connection, and the kernel fails at
	 * once whatever is still unanswered. The number stays (on /dev/null) until
	 * rf_session_destroy(): notifications and late replies may still write to it. */
	atomic_store(&se->conn_gone, true);
	rf_retire_fd(se->fd);
	if (!se->destroyed && se->ops.destroy && atomic_load(&se->initialized)) {
		se->destroyed = true;
		se->ops.destroy(se->userdata);
	}
	if (se->opts.stats)
		print_stats(se);
	restore_signals();
}

int rf_session_run(rf_session *se)
{
	bool leaked;
	int ret;

	ret = rf_opts_check_unused(se);
	if (ret)
		return ret;
	ret = check_mountpoint(se);
	if (ret)
		return ret;
	ret = check_transport(se);
	if (ret)
		return ret;
	compute_buffers(se);
	ret = rf_mount(se);
	if (ret)
		return ret;
	if (!se->opts.foreground) {
		daemonize(se);
		rf_intr_setup(se); /* the membarrier registration belongs to the parent's image */
	}
	se->main_thread = pthread_self();
	install_signals(se);
	se->watch_wanted = true;

	ret = rf_dev_serve(se, se->fd, 0, &se->dev_stats, &leaked);
	if (ret == 0 && se->serve_here && se->tp && se->tp->serve)
		ret = se->tp->serve(se);
	rf_mount_watch_stop(se);
	if (ret < 0) {
		int none = 0;

		atomic_compare_exchange_strong(&se->exit_status, &none, ret);
	}
	session_end(se);
	return se->exit_status;
}

void rf_session_destroy(rf_session *se)
{
	if (!se)
		return;
	if (se->fd >= 0)
		close(se->fd);
	rf_opts_free(&se->opts);
	free(se->mountpoint);
	free(se->source);
	free(se->progname);
	rf_session_free_core(se);
	free(se);
}

int rf_main(int argc, char *argv[], const struct rf_ops *ops, size_t ops_size, void *userdata)
{
	rf_session *se = rf_session_new(argc, argv, ops, ops_size, userdata);
	int ret;

	if (!se)
		return errno ? 1 : 0;
	ret = rf_session_run(se);
	rf_session_destroy(se);
	return ret ? 1 : 0;
}

int rf_session_prepare(rf_session *se)
{
	int ret = se->mountpoint ? check_mountpoint(se) : 0;

	if (ret == 0)
		ret = check_transport(se);
	if (ret == 0)
		compute_buffers(se);
	return ret;
}
