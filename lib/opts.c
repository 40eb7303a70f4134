/*
 * Command-line parsing in the conventions FUSE filesystems share:
 *   prog [options] [source] mountpoint
 * with -f, -d, -s, -h, -V and -o opt[,opt...]. Options the library does not know are kept for
 * the filesystem (rf_session_opt); one that nobody asked for by the time the session runs is
 * an error, so a typo never silently changes nothing. The words mount(8) and /etc/fstab add
 * for themselves are accepted, and -o remount is done here and then (the options name the flags
 * to change; all others are those of the existing mount, and are ignored).
 */
#include "ringfuse_i.h"
#include "uring_plan.h"

#include <sys/mount.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RF_MAX_URING_DEPTH 1024
#define RF_MAX_SPIN_US	   100000

static void print_help(const char *prog)
{
	printf("usage: %s [options] [source] mountpoint\n"
	       "\n"
	       "general options:\n"
	       "    -h, --help             print this help\n"
	       "    -V, --version          print the version\n"
	       "    -f                     stay in the foreground\n"
	       "    -d, -o debug           trace every request (implies -f)\n"
	       "    -s                     single-threaded: every callback on one thread\n"
	       "    -o opt[,opt...]        mount and session options:\n"
	       "\n"
	       "    allow_other            let other users access the mount\n"
	       "    auto_unmount           unmount when the daemon dies (through fusermount3)\n"
	       "    default_permissions    kernel checks permissions (the default)\n"
	       "    no_default_permissions leave permission checks to the filesystem\n"
	       "    ro, rw                 read-only / read-write mount\n"
	       "    remount                change the flags of the mount at mountpoint (as\n"
	       "                           mount -o remount does through the helper) and exit\n"
	       "    nosuid, suid, nodev, dev, noexec, exec, sync, async, dirsync, lazytime,\n"
	       "    nosymfollow            mount flags\n"
	       "    relatime, noatime, strictatime, nodiratime\n"
	       "                           when reads update access times (default relatime)\n"
	       "    fsname=NAME            name shown as the mount's source\n"
	       "    subtype=NAME           filesystem type shown as fuse.NAME (default: the\n"
	       "                           program's name)\n"
	       "    defaults, _netdev, nofail, auto, noauto, user, users, x-*, comment=...\n"
	       "                           mount(8)'s own words: accepted and ignored\n"
	       "    max_write=N            largest write request in bytes (4096..1048576)\n"
	       "    max_read=N             largest read request in bytes\n"
	       "    max_background=N       async requests in flight (default: queues x depth)\n"
	       "    transport=T            auto (default), uring, dev or uring-rw\n"
	       "    uring_depth=N          ring entries an io-uring queue may grow to (1..%d,\n"
	       "                           default 16)\n"
	       "    uring_spin_us=N        after a round of requests, poll up to N us for more\n"
	       "                           before sleeping (default 50)\n"
	       "    uring_pin=0|1          pin each io-uring thread to its queues' CPUs\n"
	       "                           (default 1)\n"
	       "    uring_spread=0|1       let a pinned io-uring thread with many requests in\n"
	       "                           flight run on its node's CPUs until the load drops\n"
	       "                           (default 1)\n"
	       "    uring_defer_taskrun=0|1  DEFER_TASKRUN on the queue rings (default 0)\n"
	       "    uring_threads=N        io-uring threads, each serving a group of CPU queues\n"
	       "                           (1..queues, default one per queue; 1 is -s)\n"
	       "    uring_depth_min=N      entries a queue starts with; it grows to uring_depth\n"
	       "                           when all are busy (default 2)\n"
	       "    uring_payload_max=SIZE bound on registered payload memory (e.g. 512M)\n"
	       "    uring_trim_ms=N        give an entry's payload memory back after N ms idle\n"
	       "                           (default 1000, 0 never)\n"
	       "    threads=N              dev/uring-rw worker threads (default: online CPUs)\n"
	       "    drain_ms=N             on a clean stop, wait up to N ms for replies still "
	       "owed\n"
	       "                           (default 1000, at most 60000)\n"
	       "    stats                  print per-queue statistics at exit and on SIGUSR1\n",
	       prog, RF_MAX_URING_DEPTH);
}

static int parse_uint(const char *key, const char *val, unsigned long min, unsigned long max,
		      unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!val || !*val) {
		rf_log(RF_LOG_ERR, "ringfuse: option '%s' needs a value", key);
		return -EINVAL;
	}
	errno = 0;
	v = strtoul(val, &end, 0);
	if (errno || *end || val[0] == '-' || v < min || v > max) {
		rf_log(RF_LOG_ERR, "ringfuse: option '%s=%s': expected a number from %lu to %lu",
		       key, val, min, max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* A byte count with an optional k, m or g suffix (powers of 1024). */
static int parse_size(const char *key, const char *val, uint64_t min, uint64_t max, uint64_t *out)
{
	static const char units[] = "kmg";
	const char *unit;
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	if (!val || !*val || val[0] == '-')
		goto bad;
	errno = 0;
	v = strtoull(val, &end, 0);
	if (errno || end == val)
		goto bad;
	if (*end && (unit = strchr(units, tolower((unsigned char)*end)))) {
		shift = 10 * (unsigned int)(unit - units + 1);
		end++;
	}
	if (*end || v > (max >> shift) || (v << shift) < min)
		goto bad;
	*out = (uint64_t)v << shift;
	return 0;
bad:
	rf_log(RF_LOG_ERR,
	       "ringfuse: option '%s=%s': expected a size from %llu to %llu bytes (k, m, g "
	       "allowed)",
	       key, val ? val : "", (unsigned long long)min, (unsigned long long)max);
	return -EINVAL;
}

static int parse_bool(const char *key, const char *val, bool *out)
{
	if (!val || !strcmp(val, "1") || !strcmp(val, "yes") || !strcmp(val, "on")) {
		*out = true;
		return 0;
	}
	if (!strcmp(val, "0") || !strcmp(val, "no") || !strcmp(val, "off")) {
		*out = false;
		return 0;
	}
	rf_log(RF_LOG_ERR, "ringfuse: option '%s=%s': expected 0 or 1", key, val);
	return -EINVAL;
}

static int set_string(char **dst, const char *key, const char *val)
{
	if (!val || !*val) {
		rf_log(RF_LOG_ERR, "ringfuse: option '%s' needs a value", key);
		return -EINVAL;
	}
	if (strchr(val, '\'') || strchr(val, '"')) {
		rf_log(RF_LOG_ERR, "ringfuse: option '%s' may not contain quotes", key);
		return -EINVAL;
	}
	free(*dst);
	*dst = strdup(val);
	return *dst ? 0 : -ENOMEM;
}

struct flag_opt {
	const char *name;
	unsigned long set, clear;
};

#define ATIME_MODES (MS_NOATIME | MS_RELATIME | MS_STRICTATIME)

/* Plain mount flags passed through to mount(2); the last word of a kind wins, as in mount(8).
 * The atime words also tell the filesystem how to keep access times (rf_atime_due()). */
static const struct flag_opt mount_flags[] = {
	{"nosuid", MS_NOSUID, 0},
	{"suid", 0, MS_NOSUID},
	{"nodev", MS_NODEV, 0},
	{"dev", 0, MS_NODEV},
	{"noexec", MS_NOEXEC, 0},
	{"exec", 0, MS_NOEXEC},
	{"sync", MS_SYNCHRONOUS, 0},
	{"async", 0, MS_SYNCHRONOUS},
	{"dirsync", MS_DIRSYNC, 0},
	{"noatime", MS_NOATIME, ATIME_MODES},
	{"atime", 0, MS_NOATIME},
	{"relatime", MS_RELATIME, ATIME_MODES},
	{"norelatime", 0, MS_RELATIME},
	{"strictatime", MS_STRICTATIME, ATIME_MODES},
	{"nostrictatime", 0, MS_STRICTATIME},
	{"nodiratime", MS_NODIRATIME, 0},
	{"diratime", 0, MS_NODIRATIME},
	{"lazytime", MS_LAZYTIME, 0},
	{"nolazytime", 0, MS_LAZYTIME},
	{"nosymfollow", MS_NOSYMFOLLOW, 0},
	{"symfollow", 0, MS_NOSYMFOLLOW},
};

static int keep_extra(struct rf_opts *o, const char *opt)
{
	size_t old = o->extra ? strlen(o->extra) : 0;
	char *n = realloc(o->extra, old + strlen(opt) + 2);

	if (!n)
		return -ENOMEM;
	if (old)
		n[old++] = ',';
	strcpy(n + old, opt);
	o->extra = n;
	return 0;
}

/*
 * Words mount(8) and /etc/fstab use that concern mount(8) alone (who may mount, when, in which
 * order, comments): a helper passes some of them on, so they are accepted and ignored.
 */
static bool mount8_word(const char *opt, const char *val)
{
	static const char *const bare[] = {"defaults", "_netdev", "nofail",  "auto",  "noauto",
					   "nouser",   "users",	  "nousers", "owner", "noowner",
					   "group",    "nogroup", "silent",  "loud"};

	if (!strncmp(opt, "x-", 2) || !strncmp(opt, "X-", 2))
		return true; /* x-systemd.*, x-gvfs-*, ... */
	if (!strcmp(opt, "user") || !strcmp(opt, "comment"))
		return true; /* user[=name], comment=text */
	for (size_t i = 0; i < sizeof(bare) / sizeof(bare[0]); i++)
		if (!strcmp(opt, bare[i]))
			return !val;
	return false;
}

static int parse_one(struct rf_opts *o, char *opt)
{
	char *val = strchr(opt, '=');
	unsigned long v;
	int ret = 0;

	if (val)
		*val++ = '\0';
	for (size_t i = 0; i < sizeof(mount_flags) / sizeof(mount_flags[0]); i++) {
		const struct flag_opt *f = &mount_flags[i];

		if (!strcmp(opt, f->name) && !val) {
			o->mount_flags = (o->mount_flags & ~f->clear) | f->set;
			o->flags_set = (o->flags_set & ~f->clear) | f->set;
			o->flags_clear = (o->flags_clear & ~f->set) | f->clear;
			return 0;
		}
	}
	if (mount8_word(opt, val))
		return 0;
	if (!strcmp(opt, "remount") && !val)
		o->remount = true;
	else if (!strcmp(opt, "allow_other"))
		o->allow_other = true;
	else if (!strcmp(opt, "default_permissions"))
		o->default_permissions = true;
	else if (!strcmp(opt, "no_default_permissions"))
		o->default_permissions = false;
	else if (!strcmp(opt, "ro"))
		o->ro = o->ro_given = true;
	else if (!strcmp(opt, "rw")) {
		o->ro = false;
		o->ro_given = true;
	} else if (!strcmp(opt, "debug"))
		o->debug = o->foreground = true;
	else if (!strcmp(opt, "stats"))
		o->stats = true;
	else if (!strcmp(opt, "auto_unmount"))
		o->auto_unmount = true;
	else if (!strcmp(opt, "fsname"))
		ret = set_string(&o->fsname, opt, val);
	else if (!strcmp(opt, "subtype"))
		ret = set_string(&o->subtype, opt, val);
	else if (!strcmp(opt, "max_write")) {
		ret = parse_uint(opt, val, 4096, RF_DEFAULT_MAX_WRITE, &v);
		o->max_write = (uint32_t)v;
	} else if (!strcmp(opt, "max_read")) {
		ret = parse_uint(opt, val, 1, UINT32_MAX, &v);
		o->max_read = (uint32_t)v;
	} else if (!strcmp(opt, "max_background")) {
		ret = parse_uint(opt, val, 1, 65535, &v);
		o->max_background = (uint32_t)v;
	} else if (!strcmp(opt, "uring_depth")) {
		ret = parse_uint(opt, val, 1, RF_MAX_URING_DEPTH, &v);
		o->uring_depth = (unsigned int)v;
	} else if (!strcmp(opt, "uring_threads")) {
		ret = parse_uint(opt, val, 1, RF_MAX_QUEUES, &v);
		o->uring_threads = (unsigned int)v;
	} else if (!strcmp(opt, "uring_depth_min")) {
		ret = parse_uint(opt, val, 1, RF_MAX_URING_DEPTH, &v);
		o->uring_depth_min = (unsigned int)v;
	} else if (!strcmp(opt, "uring_payload_max")) {
		ret = parse_size(opt, val, RF_PAGE_SIZE, 1ull << 50, &o->uring_payload_max);
	} else if (!strcmp(opt, "uring_trim_ms")) {
		ret = parse_uint(opt, val, 0, 3600 * 1000, &v);
		o->uring_trim_ms = (unsigned int)v;
	} else if (!strcmp(opt, "uring_spin_us")) {
		ret = parse_uint(opt, val, 0, RF_MAX_SPIN_US, &v);
		o->uring_spin_us = (unsigned int)v;
	} else if (!strcmp(opt, "uring_pin"))
		ret = parse_bool(opt, val, &o->uring_pin);
	else if (!strcmp(opt, "uring_spread"))
		ret = parse_bool(opt, val, &o->uring_spread);
	else if (!strcmp(opt, "uring_defer_taskrun"))
		ret = parse_bool(opt, val, &o->uring_defer_taskrun);
	else if (!strcmp(opt, "threads")) {
		ret = parse_uint(opt, val, 1, RF_MAX_QUEUES, &v);
		o->threads = (unsigned int)v;
	} else if (!strcmp(opt, "drain_ms")) {
		ret = parse_uint(opt, val, 0, 60000, &v);
		o->drain_ms = (unsigned int)v;
	} else if (!strcmp(opt, "transport")) {
		if (val && !strcmp(val, "auto"))
			o->transport = RF_TP_AUTO;
		else if (val && !strcmp(val, "uring"))
			o->transport = RF_TP_URING;
		else if (val && !strcmp(val, "dev"))
			o->transport = RF_TP_DEV;
		else if (val && !strcmp(val, "uring-rw"))
			o->transport = RF_TP_URING_RW;
		else {
			rf_log(RF_LOG_ERR,
			       "ringfuse: option 'transport=%s': expected auto, uring, dev or "
			       "uring-rw",
			       val ? val : "");
			ret = -EINVAL;
		}
	} else {
		if (val)
			val[-1] = '=';
		ret = keep_extra(o, opt);
	}
	return ret;
}

static int parse_o(struct rf_opts *o, const char *arg)
{
	char *copy = strdup(arg), *save = NULL;
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	for (char *tok = strtok_r(copy, ",", &save); tok && !ret; tok = strtok_r(NULL, ",", &save))
		ret = parse_one(o, tok);
	free(copy);
	return ret;
}

/*
 * The type shown for the mount is fuse.PROGRAM unless subtype= says otherwise, as with libfuse:
 * it tells mounts apart, and mount(8) finds the helper for remounts by it.
 */
static int default_subtype(rf_session *se)
{
	const char *base = strrchr(se->progname, '/');

	base = base ? base + 1 : se->progname;
	if (se->opts.subtype || !*base ||
	    base[strspn(base, "abcdefghijklmnopqrstuvwxyz"
			      "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			      "0123456789._+-")])
		return 0;
	se->opts.subtype = strdup(base);
	return se->opts.subtype ? 0 : -ENOMEM;
}

void rf_opts_free(struct rf_opts *o)
{
	free(o->fsname);
	free(o->subtype);
	free(o->extra);
}

void rf_opts_defaults(struct rf_opts *o)
{
	o->default_permissions = true;
	o->uring_pin = true;
	o->uring_spread = true;
	/* Measured (docs/performance.md): waking a sleeping queue thread costs more than the
	 * request itself on small requests; spinning 50 us after the last completion keeps a
	 * busy queue awake and costs nothing once the queue goes idle. */
	o->uring_spin_us = 50;
	o->drain_ms = 1000;
	o->uring_trim_ms = RF_URING_TRIM_MS_DEFAULT;
	o->mount_flags = MS_NOSUID | MS_NODEV;
}

int rf_opts_parse_list(struct rf_opts *o, const char *list)
{
	return parse_o(o, list);
}

int rf_opts_parse(rf_session *se, int argc, char *argv[])
{
	struct rf_opts *o = &se->opts;
	const char *pos[3];
	int npos = 0;

	rf_opts_defaults(o);
	se->progname = strdup(argc > 0 && argv[0] ? argv[0] : "ringfuse");
	if (!se->progname)
		return -ENOMEM;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			print_help(se->progname);
			return 1;
		} else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			printf("ringfuse %d.%d (FUSE protocol %d.%d)\n", RF_VERSION_MAJOR,
			       RF_VERSION_MINOR, FUSE_KERNEL_VERSION, FUSE_KERNEL_MINOR_VERSION);
			return 1;
		} else if (!strcmp(a, "-f")) {
			o->foreground = true;
		} else if (!strcmp(a, "-d")) {
			o->debug = o->foreground = true;
		} else if (!strcmp(a, "-s")) {
			o->single_thread = true;
		} else if (!strncmp(a, "-o", 2)) {
			const char *arg = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
			int ret;

			if (!arg) {
				rf_log(RF_LOG_ERR, "ringfuse: -o needs an argument");
				return -EINVAL;
			}
			ret = parse_o(o, arg);
			if (ret)
				return ret;
		} else if (!strcmp(a, "--")) {
			while (++i < argc && npos < 3)
				pos[npos++] = argv[i];
		} else if (a[0] == '-' && a[1]) {
			rf_log(RF_LOG_ERR, "ringfuse: unknown option '%s' (see --help)", a);
			return -EINVAL;
		} else if (npos < 3) {
			pos[npos++] = a;
		} else {
			npos++;
		}
	}
	if (npos == 0) {
		rf_log(RF_LOG_ERR,
		       "ringfuse: no mountpoint given (usage: %s [options] [source] "
		       "mountpoint)",
		       se->progname);
		return -EINVAL;
	}
	if (npos > 2) {
		rf_log(RF_LOG_ERR,
		       "ringfuse: too many arguments (usage: %s [options] [source] "
		       "mountpoint)",
		       se->progname);
		return -EINVAL;
	}
	if (npos == 2) {
		se->source = strdup(pos[0]);
		if (!se->source)
			return -ENOMEM;
	}
	se->mountpoint = strdup(pos[npos - 1]);
	if (!se->mountpoint)
		return -ENOMEM;
	atomic_init(&se->mount_flags, rf_mount_flags_from_opts(o));
	if (o->remount) {
		int ret = rf_remount(se);

		return ret ? ret : 1;
	}
	return default_subtype(se);
}

/* Find key in the comma-separated extra list; returns its value ("" if bare) or NULL. */
static const char *extra_lookup(const char *extra, const char *key, size_t *index)
{
	size_t klen = strlen(key);
	size_t i = 0;

	for (const char *p = extra; p && *p; i++) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len >= klen && !strncmp(p, key, klen) && (len == klen || p[klen] == '=')) {
			*index = i;
			if (len == klen)
				return "";
			return p + klen + 1;
		}
		p = end ? end + 1 : p + len;
	}
	return NULL;
}

const char *rf_session_opt(const rf_session *cse, const char *key)
{
	rf_session *se = (rf_session *)cse;
	struct rf_opts *o = &se->opts;
	static __thread char value[256];
	size_t idx = 0;
	const char *v = extra_lookup(o->extra, key, &idx);
	size_t len;

	if (!v)
		return NULL;
	if (idx < 64)
		o->queried_mask |= 1ull << idx;
	len = strcspn(v, ",");
	if (len >= sizeof(value))
		len = sizeof(value) - 1;
	memcpy(value, v, len);
	value[len] = '\0';
	return value;
}

int rf_opts_check_unused(const rf_session *se)
{
	const struct rf_opts *o = &se->opts;
	size_t i = 0;
	int ret = 0;

	for (const char *p = o->extra; p && *p; i++) {
		const char *end = strchr(p, ',');
		int len = end ? (int)(end - p) : (int)strlen(p);

		if (i >= 64 || !(o->queried_mask & (1ull << i))) {
			rf_log(RF_LOG_ERR, "ringfuse: unknown option '%.*s' (see --help)", len, p);
			ret = -EINVAL;
		}
		p = end ? end + 1 : p + len;
	}
	return ret;
}
