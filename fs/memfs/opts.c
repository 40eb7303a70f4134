/*
 * memfs command line: the -o options memfs takes on top of the library's, read into the
 * filesystem state (and, for the test options, into struct memfs_opts), and its help text.
 */
#include "memfs.h"

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10;
		end++;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		end++;
		break;
	case 'g':
	case 'G':
		v <<= 30;
		end++;
		break;
	case 't':
	case 'T':
		v <<= 40;
		end++;
		break;
	}
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Whether -o defer=N with N > 0 was given: the operations table handed to the session
 * depends on it, so it is needed before the session exists. The last one counts. */
bool want_defer(int argc, char *argv[])
{
	bool on = false;

	for (int i = 1; i < argc; i++) {
		const char *list;

		if (!strcmp(argv[i], "-o") && i + 1 < argc)
			list = argv[++i];
		else if (!strncmp(argv[i], "-o", 2))
			list = argv[i] + 2;
		else
			continue;
		for (const char *p = list; *p;) {
			size_t len = strcspn(p, ",");

			if (len > 6 && !strncmp(p, "defer=", 6))
				on = strtoul(p + 6, NULL, 0) > 0;
			p += len;
			if (*p == ',')
				p++;
		}
	}
	return on;
}

/* Whether -o test_threads_log was given: like defer, it decides the operations table. */
bool want_threads_log(int argc, char *argv[])
{
	bool on = false;

	for (int i = 1; i < argc; i++) {
		const char *list;

		if (!strcmp(argv[i], "-o") && i + 1 < argc)
			list = argv[++i];
		else if (!strncmp(argv[i], "-o", 2))
			list = argv[i] + 2;
		else
			continue;
		for (const char *p = list; *p;) {
			size_t len = strcspn(p, ",");

			if (len == 16 && !strncmp(p, "test_threads_log", len))
				on = true;
			p += len;
			if (*p == ',')
				p++;
		}
	}
	return on;
}

bool asked_for_help(int argc, char *argv[])
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
	return false;
}

void print_help(void)
{
	printf("\n"
	       "memfs options:\n"
	       "    cache=none|auto|always entry/attr timeouts 0, 1 s (default) or a day; always\n"
	       "                           also keeps file and directory caches across opens\n"
	       "    size=N[kmgt]           capacity in bytes (default: half the RAM)\n"
	       "    nr_inodes=N[kmgt]      most inodes (default: RAM / 8 KiB, at least 1M)\n"
	       "    mode=OCTAL, uid=N, gid=N  owner and mode of the root directory\n"
	       "    writeback              let the kernel cache writes (writeback cache)\n"
	       "    direct_io              files bypass the page cache: every read and write\n"
	       "                           reaches memfs\n"
	       "    ctl=PATH               control socket for changes behind the kernel's back\n"
	       "                           (write, touch, unlink, rmdir; see fs/memfs/ctl.c)\n"
	       "    defer=N                answer every request from a pool of N threads\n"
	       "    defer_delay_us=U       with defer: hold requests U microseconds first\n"
	       "    defer_delay_ops=A:B:.. with defer_delay_us: only these operations (default\n"
	       "                           all but release and releasedir)\n"
	       "    test_block=NAME, test_stale_reply=NAME, test_reply_none=NAME,\n"
	       "    test_linger_ms=N, test_log_interrupts\n"
	       "                           misbehave on purpose, for the library's tests\n"
	       "                           (see fs/memfs/testhooks.c)\n"
	       "    test_threads_log       at exit, say which threads ran the callbacks and how\n"
	       "                           many ran at once (see fs/memfs/threads.c)\n"
	       "With no_default_permissions memfs checks permissions itself; entries are then\n"
	       "not cached (unless cache= is given) so that every path walk reaches it.\n");
}

/* Options for tests: the control socket, deferred replies, the threads log. */
static int read_test_opts(rf_session *se, struct memfs_opts *o)
{
	const char *v;
	uint64_t n;

	memset(o, 0, sizeof(*o));
	v = rf_session_opt(se, "ctl");
	if (v) {
		o->ctl = strdup(v);
		if (!*v || !o->ctl) {
			fprintf(stderr, "memfs: bad ctl=%s\n", v);
			return -EINVAL;
		}
	}
	v = rf_session_opt(se, "defer");
	if (v) {
		if (parse_size(v, &n) < 0 || n > DEFER_THREADS_MAX) {
			fprintf(stderr, "memfs: bad defer=%s (0 to %u threads)\n", v,
				DEFER_THREADS_MAX);
			return -EINVAL;
		}
		o->defer = (unsigned int)n;
	}
	v = rf_session_opt(se, "defer_delay_us");
	if (v) {
		if (parse_size(v, &n) < 0 || n > DEFER_DELAY_US_MAX || !o->defer) {
			fprintf(stderr,
				"memfs: bad defer_delay_us=%s (needs defer=N; at most %u)\n", v,
				DEFER_DELAY_US_MAX);
			return -EINVAL;
		}
		o->delay_us = n;
	}
	v = rf_session_opt(se, "test_threads_log"); /* acted on in main() */
	if (v && *v) {
		fprintf(stderr, "memfs: test_threads_log takes no value\n");
		return -EINVAL;
	}
	v = rf_session_opt(se, "defer_delay_ops");
	if (v) {
		o->delay_ops = strdup(v);
		if (!o->delay_ops || !o->delay_us) {
			fprintf(stderr, "memfs: bad defer_delay_ops=%s (needs defer_delay_us=U)\n",
				v);
			return -EINVAL;
		}
	}
	return 0;
}

int read_opts(rf_session *se, struct memfs_opts *o)
{
	const char *v;
	uint64_t n;
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	uint64_t ram = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : 1ull << 32;

	fs.max_bytes = ram / 2;
	fs.max_inodes = max_u64(ram / 8192, 1u << 20);
	fs.entry_timeout = fs.attr_timeout = fs.neg_timeout = 1.0;
	fs.root_mode = 0755;
	fs.root_uid = getuid();
	fs.root_gid = getgid();

	v = rf_session_opt(se, "cache");
	if (v) {
		if (!strcmp(v, "none")) {
			fs.entry_timeout = fs.attr_timeout = fs.neg_timeout = 0;
		} else if (!strcmp(v, "always")) {
			fs.entry_timeout = fs.attr_timeout = fs.neg_timeout = 86400.0;
			fs.keep_cache = fs.cache_dir = true;
		} else if (strcmp(v, "auto")) {
			fprintf(stderr, "memfs: cache=%s: expected none, auto or always\n", v);
			return -EINVAL;
		}
	} else if (fs.perm_check) {
		/* The kernel walks cached entries without asking us, so our search permission
		 * checks would be skipped for names someone else looked up. */
		fs.entry_timeout = fs.neg_timeout = 0;
	}
	v = rf_session_opt(se, "size");
	if (v) {
		if (parse_size(v, &n) < 0 || n < CHUNK_SIZE) {
			fprintf(stderr, "memfs: bad size=%s\n", v);
			return -EINVAL;
		}
		fs.max_bytes = n;
	}
	v = rf_session_opt(se, "nr_inodes");
	if (v) {
		if (parse_size(v, &n) < 0 || n < 2) {
			fprintf(stderr, "memfs: bad nr_inodes=%s\n", v);
			return -EINVAL;
		}
		fs.max_inodes = n;
	}
	v = rf_session_opt(se, "mode");
	if (v) {
		char *end;
		unsigned long m = strtoul(v, &end, 8);

		if (!*v || *end || m > 07777) {
			fprintf(stderr, "memfs: bad mode=%s\n", v);
			return -EINVAL;
		}
		fs.root_mode = (mode_t)m;
	}
	v = rf_session_opt(se, "uid");
	if (v) {
		if (parse_size(v, &n) < 0 || n >= UINT32_MAX) {
			fprintf(stderr, "memfs: bad uid=%s\n", v);
			return -EINVAL;
		}
		fs.root_uid = (uid_t)n;
	}
	v = rf_session_opt(se, "gid");
	if (v) {
		if (parse_size(v, &n) < 0 || n >= UINT32_MAX) {
			fprintf(stderr, "memfs: bad gid=%s\n", v);
			return -EINVAL;
		}
		fs.root_gid = (gid_t)n;
	}
	fs.writeback = rf_session_opt(se, "writeback") != NULL;
	fs.direct_io = rf_session_opt(se, "direct_io") != NULL;
	return read_test_opts(se, o);
}
