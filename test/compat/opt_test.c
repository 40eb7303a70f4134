/*
 * fuse_opt_*, fuse_parse_cmdline() and fuse_parse_conn_info_opts() as libfuse documents and
 * implements them. Built twice: linked with ringfuse's libfuse3.so.3 and with the system's,
 * and both must pass, so every expectation here is checked against libfuse itself.
 */
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
static int checks;

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		checks++;                                                    \
		if (!(cond)) {                                               \
			failures++;                                          \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
		}                                                            \
	} while (0)

/* args must equal the NULL-terminated list of strings that follows. */
static void expect_args(int line, const struct fuse_args *args, ...)
{
	va_list ap;
	int i = 0;
	const char *want;
	bool same = true;

	va_start(ap, args);
	while ((want = va_arg(ap, const char *))) {
		if (i >= args->argc || strcmp(args->argv[i], want) != 0)
			same = false;
		i++;
	}
	va_end(ap);
	if (i != args->argc || (args->argv && args->argv[args->argc]))
		same = false;
	checks++;
	if (!same) {
		failures++;
		fprintf(stderr, "FAIL line %d: argv is", line);
		for (int j = 0; j < args->argc; j++)
			fprintf(stderr, " [%s]", args->argv[j]);
		fputc('\n', stderr);
	}
}
#define EXPECT_ARGS(args, ...) expect_args(__LINE__, args, __VA_ARGS__, (const char *)NULL)

struct opts {
	char *name;
	unsigned int count;
	int flag_a, flag_b, both, value;
	long big;
	char *sep_arg;
};

enum { KEY_PROC_KEEP = 1, KEY_PROC_DROP, KEY_PROC_FAIL };

static const struct fuse_opt table[] = {
	{"name=%s", offsetof(struct opts, name), 0},  {"count=%u", offsetof(struct opts, count), 0},
	{"big=%li", offsetof(struct opts, big), 0},   {"-a", offsetof(struct opts, flag_a), 1},
	{"--bee", offsetof(struct opts, flag_b), 7},  {"both", offsetof(struct opts, both), 1},
	{"both", offsetof(struct opts, value), 42},   {"-x %s", offsetof(struct opts, sep_arg), 0},
	{"set=", offsetof(struct opts, value), 5},    FUSE_OPT_KEY("keepme", FUSE_OPT_KEY_KEEP),
	FUSE_OPT_KEY("dropme", FUSE_OPT_KEY_DISCARD), FUSE_OPT_KEY("-k", FUSE_OPT_KEY_KEEP),
	FUSE_OPT_KEY("proc_keep", KEY_PROC_KEEP),     FUSE_OPT_KEY("proc_drop", KEY_PROC_DROP),
	FUSE_OPT_KEY("proc_fail", KEY_PROC_FAIL),     FUSE_OPT_END,
};

/* What the processing function saw, as "key:arg " pairs. */
static char seen[1024];

static int proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	(void)data, (void)outargs;
	snprintf(seen + strlen(seen), sizeof(seen) - strlen(seen), "%d:%s ", key, arg);
	switch (key) {
	case KEY_PROC_KEEP:
		return 1;
	case KEY_PROC_DROP:
		return 0;
	case KEY_PROC_FAIL:
		return -1;
	case FUSE_OPT_KEY_NONOPT:
		return strcmp(arg, "drop_positional") == 0 ? 0 : 1;
	default:
		return 1;
	}
}

static int parse(struct fuse_args *args, struct opts *o, fuse_opt_proc_t p, char **argv, int argc)
{
	*args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);
	memset(o, 0, sizeof(*o));
	seen[0] = '\0';
	return fuse_opt_parse(args, o, table, p);
}

#define ARGV(...) \
	((char *[]){__VA_ARGS__, NULL}), (int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *))

static void free_opts(struct opts *o)
{
	free(o->name);
	free(o->sep_arg);
}

static void test_templates(void)
{
	struct fuse_args args;
	struct opts o;

	CHECK(parse(&args, &o, NULL,
		    ARGV("prog", "-o", "name=hello,count=12", "-obig=0x10", "-a", "--bee")) == 0,
	      "templates parse");
	CHECK(o.name && strcmp(o.name, "hello") == 0, "name=%%s gives '%s'", o.name);
	CHECK(o.count == 12, "count=%%u gives %u", o.count);
	CHECK(o.big == 16, "big=%%li scans 0x10 as %ld", o.big);
	CHECK(o.flag_a == 1 && o.flag_b == 7, "flags %d %d", o.flag_a, o.flag_b);
	EXPECT_ARGS(&args, "prog");
	fuse_opt_free_args(&args);
	free_opts(&o);

	/* A later %s value replaces (and frees) the earlier one. */
	CHECK(parse(&args, &o, NULL, ARGV("prog", "-oname=a,name=b")) == 0, "repeat");
	CHECK(o.name && strcmp(o.name, "b") == 0, "last name wins: '%s'", o.name);
	fuse_opt_free_args(&args);
	free_opts(&o);

	/* Every template that matches applies. */
	CHECK(parse(&args, &o, NULL, ARGV("prog", "-o", "both")) == 0, "both");
	CHECK(o.both == 1 && o.value == 42, "both: %d %d", o.both, o.value);
	fuse_opt_free_args(&args);

	/* "name=" without a format sets the value, whatever follows the '='. */
	CHECK(parse(&args, &o, NULL, ARGV("prog", "-o", "set=anything")) == 0, "set=");
	CHECK(o.value == 5, "set= gives %d", o.value);
	fuse_opt_free_args(&args);

	/* "-x %s": the value in the same argument or the next one. */
	CHECK(parse(&args, &o, NULL, ARGV("prog", "-x", "sep", "-a")) == 0, "-x sep");
	CHECK(o.sep_arg && strcmp(o.sep_arg, "sep") == 0, "-x value '%s'", o.sep_arg);
	CHECK(o.flag_a == 1, "-a after -x");
	free_opts(&o);
	fuse_opt_free_args(&args);
	CHECK(parse(&args, &o, NULL, ARGV("prog", "-xjoined")) == 0, "-xjoined");
	CHECK(o.sep_arg && strcmp(o.sep_arg, "joined") == 0, "-x joined '%s'", o.sep_arg);
	free_opts(&o);
	fuse_opt_free_args(&args);

	CHECK(parse(&args, &o, NULL, ARGV("prog", "-x")) == -1, "-x needs a value");
	CHECK(parse(&args, &o, NULL, ARGV("prog", "-o")) == -1, "-o needs a value");
	char *bad[] = {"prog", "-o", "count=twelve", NULL};
	CHECK(parse(&args, &o, NULL, bad, 3) == -1, "bad %%u");
	EXPECT_ARGS(&args, "prog", "-o", "count=twelve"); /* untouched on failure */

	/* fuse_opt_match() */
	CHECK(fuse_opt_match(table, "name=x") == 1, "match name=x");
	CHECK(fuse_opt_match(table, "name") == 0, "no match name");
	CHECK(fuse_opt_match(table, "-xval") == 1, "match -xval");
	CHECK(fuse_opt_match(table, "-a") == 1 && fuse_opt_match(table, "-ab") == 0, "match -a");
	CHECK(fuse_opt_match(NULL, "x") == 0, "match NULL table");
}

static void test_keys_and_proc(void)
{
	struct fuse_args args;
	struct opts o;

	/* KEEP stays (without the function being asked), DISCARD goes, unknown ones go to the
	 * function as FUSE_OPT_KEY_OPT (-1), positionals as FUSE_OPT_KEY_NONOPT (-2). */
	CHECK(parse(&args, &o, proc,
		    ARGV("prog", "-o", "keepme,dropme,unknown,proc_keep,proc_drop", "pos1", "-k",
			 "-u", "drop_positional", "pos2")) == 0,
	      "keys parse");
	EXPECT_ARGS(&args, "prog", "-o", "keepme,unknown,proc_keep", "pos1", "-k", "-u", "pos2");
	CHECK(strcmp(seen, "-1:unknown 1:proc_keep 2:proc_drop -2:pos1 -1:-u -2:drop_positional "
			   "-2:pos2 ") == 0,
	      "proc saw '%s'", seen);
	fuse_opt_free_args(&args);

	/* -1 from the function fails the parse and leaves args as they were. */
	char *failing[] = {"prog", "-o", "proc_fail", "pos", NULL};
	CHECK(parse(&args, &o, proc, failing, 4) == -1, "proc fails");
	EXPECT_ARGS(&args, "prog", "-o", "proc_fail", "pos");

	/* Without a function everything unmatched is kept. */
	CHECK(parse(&args, &o, NULL, ARGV("prog", "-o", "zz,keepme", "-q", "p")) == 0, "no proc");
	EXPECT_ARGS(&args, "prog", "-o", "zz,keepme", "-q", "p");
	fuse_opt_free_args(&args);
}

static void test_escapes_and_groups(void)
{
	struct fuse_args args;
	struct opts o;

	/* "\," is a comma inside a value; kept options are escaped again on the way out. */
	CHECK(parse(&args, &o, NULL, ARGV("prog", "-o", "name=a\\,b,other\\,opt")) == 0, "esc");
	CHECK(o.name && strcmp(o.name, "a,b") == 0, "escaped comma: '%s'", o.name);
	EXPECT_ARGS(&args, "prog", "-o", "other\\,opt");
	free_opts(&o);
	fuse_opt_free_args(&args);

	/* Three octal digits give one character; a backslash before anything else gives that. */
	CHECK(parse(&args, &o, NULL, ARGV("prog", "-oname=x\\054y\\\\z\\q")) == 0, "octal");
	CHECK(o.name && strcmp(o.name, "x,y\\zq") == 0, "octal: '%s'", o.name);
	free_opts(&o);
	fuse_opt_free_args(&args);

	/* Empty options are options too (kept, without a function). */
	CHECK(parse(&args, &o, NULL, ARGV("prog", "-o", "a,,b")) == 0, "empty");
	EXPECT_ARGS(&args, "prog", "-o", "a,,b");
	fuse_opt_free_args(&args);

	/* Several -o groups merge into one, placed right after argv[0]. */
	CHECK(parse(&args, &o, NULL, ARGV("prog", "p1", "-o", "x", "-oy", "p2")) == 0, "merge");
	EXPECT_ARGS(&args, "prog", "-o", "x,y", "p1", "p2");
	fuse_opt_free_args(&args);
}

static void test_double_dash(void)
{
	struct fuse_args args;
	struct opts o;

	/* After "--" everything is positional. */
	CHECK(parse(&args, &o, proc, ARGV("prog", "-a", "--", "-a", "-o", "x")) == 0, "--");
	CHECK(o.flag_a == 1, "-a before --");
	EXPECT_ARGS(&args, "prog", "--", "-a", "-o", "x");
	CHECK(strcmp(seen, "-2:-a -2:-o -2:x ") == 0, "after --: '%s'", seen);
	fuse_opt_free_args(&args);

	/* A "--" with nothing after it is dropped... */
	CHECK(parse(&args, &o, NULL, ARGV("prog", "p", "--")) == 0, "trailing --");
	EXPECT_ARGS(&args, "prog", "p");
	fuse_opt_free_args(&args);

	/* ...unless kept -o options were put in front of it (libfuse compares positions). */
	CHECK(parse(&args, &o, NULL, ARGV("prog", "-o", "zz", "--")) == 0, "trailing -- after -o");
	EXPECT_ARGS(&args, "prog", "-o", "zz", "--");
	fuse_opt_free_args(&args);
}

static void test_arg_helpers(void)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	char *opts = NULL;

	CHECK(fuse_opt_add_arg(&args, "a") == 0 && fuse_opt_add_arg(&args, "c") == 0, "add");
	CHECK(fuse_opt_insert_arg(&args, 1, "b") == 0, "insert middle");
	CHECK(fuse_opt_insert_arg(&args, 3, "d") == 0, "insert at end");
	CHECK(fuse_opt_insert_arg(&args, 0, "0") == 0, "insert at start");
	EXPECT_ARGS(&args, "0", "a", "b", "c", "d");
	CHECK(args.allocated == 1, "allocated");
	fuse_opt_free_args(&args);
	CHECK(args.argc == 0 && args.argv == NULL && args.allocated == 0, "freed");

	CHECK(fuse_opt_add_opt(&opts, "a,b") == 0 && fuse_opt_add_opt(&opts, "c\\d") == 0, "opt");
	CHECK(strcmp(opts, "a,b,c\\d") == 0, "add_opt: '%s'", opts);
	CHECK(fuse_opt_add_opt_escaped(&opts, "e,f\\g") == 0, "escaped");
	CHECK(strcmp(opts, "a,b,c\\d,e\\,f\\\\g") == 0, "add_opt_escaped: '%s'", opts);
	free(opts);
	opts = NULL;
	CHECK(fuse_opt_add_opt(&opts, "") == 0 && fuse_opt_add_opt(&opts, "x") == 0, "empty");
	CHECK(strcmp(opts, "x") == 0, "empty first option: '%s'", opts);
	free(opts);

	/* Nothing to parse is a success that changes nothing. */
	CHECK(fuse_opt_parse(NULL, NULL, table, NULL) == 0, "NULL args");
	CHECK(fuse_opt_parse(&args, NULL, table, NULL) == 0 && args.argc == 0, "empty args");
}

static void test_cmdline(void)
{
	struct fuse_cmdline_opts c;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	char **argv;

	argv = (char *[]){
		"/usr/bin/myfs", "-f", "-s", "-d", "-o", "clone_fd,max_threads=5,x=1", "/", NULL};
	args = (struct fuse_args)FUSE_ARGS_INIT(7, argv);
	CHECK(fuse_parse_cmdline(&args, &c) == 0, "cmdline parses");
	CHECK(c.foreground && c.singlethread && c.debug && c.clone_fd, "flags %d %d %d %d",
	      c.foreground, c.singlethread, c.debug, c.clone_fd);
	CHECK(c.max_threads == 5 && c.max_idle_threads == (unsigned int)-1, "threads %u %u",
	      c.max_threads, c.max_idle_threads);
	CHECK(c.mountpoint && strcmp(c.mountpoint, "/") == 0, "mountpoint '%s'", c.mountpoint);
	CHECK(!c.show_help && !c.show_version && !c.nodefault_subtype, "no help");
	/* -d stays for fuse_session_new(); a default subtype names the mount. */
	EXPECT_ARGS(&args, "/usr/bin/myfs", "-o", "x=1", "-d", "-osubtype=myfs");
	free(c.mountpoint);
	fuse_opt_free_args(&args);

	argv = (char *[]){"prog", "-o", "fsname=src,debug", "-h", NULL};
	args = (struct fuse_args)FUSE_ARGS_INIT(4, argv);
	CHECK(fuse_parse_cmdline(&args, &c) == 0, "help parses");
	CHECK(c.show_help && c.debug && c.foreground && c.nodefault_subtype && !c.mountpoint,
	      "help flags");
	EXPECT_ARGS(&args, "prog", "-o", "fsname=src,debug");
	fuse_opt_free_args(&args);

	argv = (char *[]){"prog", "/dev/fd/5", NULL};
	args = (struct fuse_args)FUSE_ARGS_INIT(2, argv);
	CHECK(fuse_parse_cmdline(&args, &c) == 0, "fd mountpoint parses");
	CHECK(c.mountpoint && strcmp(c.mountpoint, "/dev/fd/5") == 0, "fd mountpoint '%s'",
	      c.mountpoint);
	free(c.mountpoint);
	fuse_opt_free_args(&args);

	argv = (char *[]){"prog", "/", "/", NULL};
	args = (struct fuse_args)FUSE_ARGS_INIT(3, argv);
	CHECK(fuse_parse_cmdline(&args, &c) == -1, "two mountpoints refused");
	free(c.mountpoint);

	argv = (char *[]){"prog", "/does/not/exist/ringfuse", NULL};
	args = (struct fuse_args)FUSE_ARGS_INIT(2, argv);
	CHECK(fuse_parse_cmdline(&args, &c) == -1, "missing mountpoint refused");
}

static void test_conn_info_opts(void)
{
	char *argv[] = {"prog", "-o",
			"max_write=65536,no_remote_lock,readdirplus=yes,sync_read,"
			"writeback_cache,time_gran=1000,other",
			NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	struct fuse_conn_info conn;
	struct fuse_conn_info_opts *o = fuse_parse_conn_info_opts(&args);

	CHECK(o != NULL, "conn opts parse");
	if (!o)
		return;
	EXPECT_ARGS(&args, "prog", "-o", "other");
	memset(&conn, 0, sizeof(conn));
	conn.max_write = 1 << 20;
	conn.max_readahead = 4096;
	conn.want = FUSE_CAP_ASYNC_READ | FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS |
		    FUSE_CAP_READDIRPLUS_AUTO;
	fuse_apply_conn_info_opts(o, &conn);
	CHECK(conn.max_write == 65536 && conn.time_gran == 1000 && conn.max_readahead == 4096,
	      "values %u %u %u", conn.max_write, conn.time_gran, conn.max_readahead);
	CHECK(conn.want == FUSE_CAP_WRITEBACK_CACHE, "want %#x", conn.want);
	free(o);
	fuse_opt_free_args(&args);
}

/* Directory entries are the kernel's layout, whichever library encodes them. */
static void test_direntries(void)
{
	char buf[256];
	struct stat st = {.st_ino = 77, .st_mode = S_IFDIR | 0755};
	struct fuse_entry_param e = {
		.ino = 9, .generation = 3, .attr_timeout = 1.5, .entry_timeout = 2.25};
	uint64_t u64;
	uint32_t u32;

	CHECK(fuse_add_direntry(NULL, NULL, 0, "abc", &st, 5) == 32, "size of 'abc'");
	CHECK(fuse_add_direntry(NULL, buf, 31, "abc", &st, 5) == 32, "too small");
	memset(buf, 0xee, sizeof(buf));
	CHECK(fuse_add_direntry(NULL, buf, sizeof(buf), "abc", &st, 5) == 32, "written");
	memcpy(&u64, buf, 8);
	CHECK(u64 == 77, "ino %llu", (unsigned long long)u64);
	memcpy(&u64, buf + 8, 8);
	CHECK(u64 == 5, "off %llu", (unsigned long long)u64);
	memcpy(&u32, buf + 16, 4);
	CHECK(u32 == 3, "namelen %u", u32);
	memcpy(&u32, buf + 20, 4);
	CHECK(u32 == (S_IFDIR >> 12), "type %u", u32);
	CHECK(memcmp(buf + 24, "abc\0\0\0\0\0", 8) == 0, "name and padding");

	e.attr.st_ino = 9;
	e.attr.st_mode = S_IFREG | 0644;
	e.attr.st_size = 1234;
	memset(buf, 0xee, sizeof(buf));
	CHECK(fuse_add_direntry_plus(NULL, buf, sizeof(buf), "f", &e, 6) == 160, "plus size");
	memcpy(&u64, buf, 8);
	CHECK(u64 == 9, "plus nodeid");
	memcpy(&u64, buf + 16, 8);
	CHECK(u64 == 2, "plus entry_valid %llu", (unsigned long long)u64);
	memcpy(&u32, buf + 32, 4);
	CHECK(u32 == 250000000, "plus entry_valid_nsec %u", u32);
	memcpy(&u64, buf + 128 + 8, 8);
	CHECK(u64 == 6, "plus off");
}

int main(void)
{
	test_templates();
	test_keys_and_proc();
	test_escapes_and_groups();
	test_double_dash();
	test_arg_helpers();
	test_cmdline();
	test_conn_info_opts();
	test_direntries();
	CHECK(fuse_version() == 314, "fuse_version %d", fuse_version());
	printf("%d checks, %d failed (%s)\n", checks, failures, fuse_pkgversion());
	return failures ? 1 : 0;
}
