/*
 * The options fuse_session_new() understands, parsed with libfuse's rules, and their
 * translation into ringfuse's -o language.
 *
 * Low-level options: -d/debug/--debug, allow_root. Mount options: allow_other,
 * default_permissions, fsname=, subtype=, max_read=, the mount flags (rw, ro, -r, [no]suid,
 * [no]dev, [no]exec, [a]sync, [no]atime, dirsync; nosuid,nodev unless said otherwise) and the
 * mtab-only user= and -n. Anything left over is an unknown option, which fails the session as
 * it does with libfuse. What ringfuse cannot do (blkdev, SELinux contexts, blksize) fails
 * loudly too; auto_unmount is accepted with a warning.
 *
 * Unlike ringfuse's own default, the kernel does not check permissions unless
 * default_permissions is given, as with libfuse. A mount is named by fsname=, else by
 * subtype=, else "/dev/fuse", as with libfuse.
 */
#include "compat.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

struct ll_opts {
	int debug;
	int allow_root;
};

static const struct fuse_opt ll_table[] = {
	{"debug", offsetof(struct ll_opts, debug), 1},
	{"-d", offsetof(struct ll_opts, debug), 1},
	{"--debug", offsetof(struct ll_opts, debug), 1},
	{"allow_root", offsetof(struct ll_opts, allow_root), 1},
	FUSE_OPT_END,
};

struct mount_opts {
	int allow_other;
	int default_permissions;
	int blkdev;
	int auto_unmount;
	int unsupported; /* an option ringfuse cannot honour was given (already said) */
	char *fsname;
	char *subtype;
	unsigned int max_read;
	unsigned long flags; /* MS_* */
};

enum { KEY_FLAG, KEY_READONLY, KEY_IGNORED, KEY_KERNEL_ONLY };

#define MOUNT_OPT(t, field)                              \
	{                                                \
		t, offsetof(struct mount_opts, field), 1 \
	}

static const struct fuse_opt mount_table[] = {
	MOUNT_OPT("allow_other", allow_other),
	MOUNT_OPT("default_permissions", default_permissions),
	MOUNT_OPT("blkdev", blkdev),
	MOUNT_OPT("auto_unmount", auto_unmount),
	{"fsname=%s", offsetof(struct mount_opts, fsname), 0},
	{"subtype=%s", offsetof(struct mount_opts, subtype), 0},
	{"max_read=%u", offsetof(struct mount_opts, max_read), 0},
	FUSE_OPT_KEY("blksize=", KEY_KERNEL_ONLY),
	FUSE_OPT_KEY("context=", KEY_KERNEL_ONLY),
	FUSE_OPT_KEY("fscontext=", KEY_KERNEL_ONLY),
	FUSE_OPT_KEY("defcontext=", KEY_KERNEL_ONLY),
	FUSE_OPT_KEY("rootcontext=", KEY_KERNEL_ONLY),
	FUSE_OPT_KEY("user=", KEY_IGNORED),
	FUSE_OPT_KEY("-n", KEY_IGNORED),
	FUSE_OPT_KEY("-r", KEY_READONLY),
	FUSE_OPT_KEY("ro", KEY_FLAG),
	FUSE_OPT_KEY("rw", KEY_FLAG),
	FUSE_OPT_KEY("suid", KEY_FLAG),
	FUSE_OPT_KEY("nosuid", KEY_FLAG),
	FUSE_OPT_KEY("dev", KEY_FLAG),
	FUSE_OPT_KEY("nodev", KEY_FLAG),
	FUSE_OPT_KEY("exec", KEY_FLAG),
	FUSE_OPT_KEY("noexec", KEY_FLAG),
	FUSE_OPT_KEY("async", KEY_FLAG),
	FUSE_OPT_KEY("sync", KEY_FLAG),
	FUSE_OPT_KEY("dirsync", KEY_FLAG),
	FUSE_OPT_KEY("atime", KEY_FLAG),
	FUSE_OPT_KEY("noatime", KEY_FLAG),
	FUSE_OPT_END,
};

struct flag_word {
	const char *word;
	unsigned long flag;
	bool set;
};

static const struct flag_word flag_words[] = {
	{"rw", MS_RDONLY, false},	  {"ro", MS_RDONLY, true},
	{"suid", MS_NOSUID, false},	  {"nosuid", MS_NOSUID, true},
	{"dev", MS_NODEV, false},	  {"nodev", MS_NODEV, true},
	{"exec", MS_NOEXEC, false},	  {"noexec", MS_NOEXEC, true},
	{"async", MS_SYNCHRONOUS, false}, {"sync", MS_SYNCHRONOUS, true},
	{"atime", MS_NOATIME, false},	  {"noatime", MS_NOATIME, true},
	{"dirsync", MS_DIRSYNC, true},
};

static int mount_arg(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct mount_opts *mo = data;

	(void)outargs;
	switch (key) {
	case KEY_READONLY:
		arg = "ro";
		/* fall through */
	case KEY_FLAG:
		for (size_t i = 0; i < sizeof(flag_words) / sizeof(flag_words[0]); i++) {
			if (strcmp(arg, flag_words[i].word) != 0)
				continue;
			if (flag_words[i].set)
				mo->flags |= flag_words[i].flag;
			else
				mo->flags &= ~flag_words[i].flag;
		}
		return 0;
	case KEY_IGNORED:
		return 0;
	case KEY_KERNEL_ONLY:
		fuse_log(FUSE_LOG_ERR, "ringfuse: mount option `%s' is not supported\n", arg);
		mo->unsupported = 1;
		return 0;
	default:
		return 1;
	}
}

/* Append "word" or "word=value" to the ringfuse option list. */
static int add(char **list, const char *word, const char *value)
{
	size_t len = strlen(word) + (value ? strlen(value) + 1 : 0) + 1;
	char *opt = malloc(len);
	int res;

	if (!opt)
		return -1;
	snprintf(opt, len, value ? "%s=%s" : "%s", word, value);
	res = fuse_opt_add_opt(list, opt);
	free(opt);
	return res;
}

/* ringfuse's option lists cannot carry commas or quotes in a value. */
static bool passable(const char *what, const char *value)
{
	if (!strpbrk(value, ",'\""))
		return true;
	fuse_log(FUSE_LOG_ERR, "ringfuse: %s `%s' may not contain commas or quotes\n", what, value);
	return false;
}

static int translate(const struct ll_opts *ll, const struct mount_opts *mo, char **list)
{
	const char *name = mo->fsname ? mo->fsname : mo->subtype ? mo->subtype : "/dev/fuse";
	char num[16];

	if (!passable("fsname", name) || (mo->subtype && !passable("subtype", mo->subtype)))
		return -1;
	if (add(list, mo->default_permissions ? "default_permissions" : "no_default_permissions",
		NULL) < 0 ||
	    add(list, "fsname", name) < 0)
		return -1;
	if (mo->subtype && add(list, "subtype", mo->subtype) < 0)
		return -1;
	if (mo->allow_other && add(list, "allow_other", NULL) < 0)
		return -1;
	if (ll->debug && add(list, "debug", NULL) < 0)
		return -1;
	if (mo->max_read) {
		snprintf(num, sizeof(num), "%u", mo->max_read);
		if (add(list, "max_read", num) < 0)
			return -1;
	}
	/* Every flag said out loud, so ringfuse's own defaults play no part. */
	for (size_t i = 0; i < sizeof(flag_words) / sizeof(flag_words[0]); i++) {
		const struct flag_word *w = &flag_words[i];

		if (w->flag == MS_DIRSYNC && !(mo->flags & MS_DIRSYNC))
			continue;
		if (((mo->flags & w->flag) != 0) == w->set && add(list, w->word, NULL) < 0)
			return -1;
	}
	return 0;
}

static void unknown_options(const struct fuse_args *args)
{
	char line[1024];
	size_t used = 0;

	line[0] = '\0';
	for (int i = 1; i < args->argc && used < sizeof(line); i++)
		used += (size_t)snprintf(line + used, sizeof(line) - used, "%s%s", i > 1 ? " " : "",
					 args->argv[i]);
	fuse_log(FUSE_LOG_ERR, "fuse: unknown option(s): `%s'\n", line);
}

int compat_parse_session_args(struct fuse_session *se, struct fuse_args *args, char **list)
{
	struct ll_opts ll = {0};
	struct mount_opts mo = {.flags = MS_NOSUID | MS_NODEV};
	int res = -1;

	*list = NULL;
	if (fuse_opt_parse(args, &ll, ll_table, NULL) == -1)
		return -1;
	if (ll.allow_root && fuse_opt_add_arg(args, "-oallow_other") == -1)
		return -1;
	if (fuse_opt_parse(args, &mo, mount_table, mount_arg) == -1)
		goto out;
	if (args->argc == 1 && args->argv[0][0] == '-') {
		fuse_log(FUSE_LOG_ERR, "fuse: warning: argv[0] looks like an option, but will be "
				       "ignored\n");
	} else if (args->argc != 1) {
		unknown_options(args);
		fuse_opt_free_args(args);
		goto out;
	}
	if (mo.unsupported)
		goto out;
	if (mo.blkdev) {
		fuse_log(FUSE_LOG_ERR, "ringfuse: mount option `blkdev' (fuseblk) is not "
				       "supported\n");
		goto out;
	}
	if (mo.auto_unmount)
		compat_unsupported("mount option `auto_unmount'",
				   "the mount stays if the process dies");
	se->debug = ll.debug;
	se->deny_others = ll.allow_root;
	se->max_read = mo.max_read;
	res = translate(&ll, &mo, list);
out:
	if (res < 0) {
		free(*list);
		*list = NULL;
	}
	free(mo.fsname);
	free(mo.subtype);
	return res;
}
