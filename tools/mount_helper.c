/*
 * mount.ringfuse: the helper mount(8) runs for the ringfuse filesystems, so that they mount
 * with `mount -t fuse.ringfuse-passthrough SOURCE MOUNTPOINT -o ...`, from /etc/fstab, and
 * remount with `mount -o remount,ro MOUNTPOINT`.
 *
 * For a type fuse.NAME, mount(8) (libmount) looks for /sbin/mount.fuse.NAME, then for
 * /sbin/mount.fuse, and runs it as
 *     mount.fuse.NAME SOURCE MOUNTPOINT [-s] [-f] [-n] [-v] [-o OPTIONS] [-N NAMESPACE]
 * (with -t fuse.NAME when the helper's name does not end in the type), also for a remount,
 * with the options of the fstab line or the mount table followed by the ones asked for. This
 * program is installed under the names mount.fuse.ringfuse-memfs and
 * mount.fuse.ringfuse-passthrough (a link named mount.fuse.NAME serves any other filesystem
 * built on ringfuse); run under another name it takes NAME from -t or, as mount.fuse3 does,
 * from a SOURCE of the form NAME#SOURCE.
 *
 * It runs the daemon NAME (looked up in PATH, then in the directory the daemons were installed
 * to) as `NAME SOURCE MOUNTPOINT -o OPTIONS`. The daemon detaches once mounted, so its exit
 * status is mount(8)'s answer; a remount it does at once and exits. Of the options, those that
 * only mount(8) cares about (user, users, owner, group, auto, noauto, _netdev, defaults, x-*,
 * comment=) are left out; dev and suid are added unless nodev or nosuid were given, since
 * those are mount(8)'s defaults; nofail is the helper's own: with it, an absolute SOURCE that
 * does not exist mounts nothing and is no error, as mount(8) treats a missing device.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef RF_BINDIR
#define RF_BINDIR "/usr/local/bin"
#endif

static const char *prog = "mount.ringfuse";

static void usage(void)
{
	fprintf(stderr,
		"usage: %s SOURCE MOUNTPOINT [-s] [-f] [-n] [-v] [-o OPTIONS] [-t fuse.TYPE] "
		"[-N NAMESPACE]\n"
		"(run by mount(8) for the filesystem types fuse.ringfuse-*)\n",
		prog);
	exit(1);
}

/* Options mount(8) keeps for itself: who may mount, when, in which order, comments. */
static bool mount8_only(const char *opt)
{
	static const char *const words[] = {"user",    "nouser",   "users",   "nousers", "owner",
					    "noowner", "group",	   "nogroup", "auto",	 "noauto",
					    "_netdev", "defaults", NULL};
	size_t len = strcspn(opt, "=");

	if (!strncmp(opt, "x-", 2) || !strncmp(opt, "X-", 2) || !strncmp(opt, "comment=", 8))
		return true;
	for (const char *const *w = words; *w; w++)
		if (strlen(*w) == len && !strncmp(opt, *w, len) &&
		    (opt[len] == '\0' || !strcmp(*w, "user")))
			return true;
	return false;
}

struct seen {
	bool nofail, remount, nosuid, nodev;
};

/* Append to out (a comma list of size cap) the word w. */
static void append(char *out, size_t cap, const char *w)
{
	size_t used = strlen(out);

	if (used + strlen(w) + 2 > cap) {
		fprintf(stderr, "%s: options too long\n", prog);
		exit(1);
	}
	snprintf(out + used, cap - used, "%s%s", used ? "," : "", w);
}

/* Append the words of list that are for the daemon to out. */
static void filter_options(const char *list, char *out, size_t cap, struct seen *seen)
{
	char *copy = strdup(list), *save = NULL;

	if (!copy) {
		fprintf(stderr, "%s: out of memory\n", prog);
		exit(1);
	}
	for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		if (!strcmp(w, "nofail")) {
			seen->nofail = true;
			continue;
		}
		seen->remount |= !strcmp(w, "remount");
		seen->nosuid |= !strcmp(w, "nosuid");
		seen->nodev |= !strcmp(w, "nodev");
		if (!mount8_only(w))
			append(out, cap, w);
	}
	free(copy);
}

/* The daemon's name from "fuse.NAME" or "fuseblk.NAME", or NULL. */
static const char *type_name(const char *type)
{
	if (!strncmp(type, "fuse.", 5))
		return type + 5;
	if (!strncmp(type, "fuseblk.", 8))
		return type + 8;
	return NULL;
}

/* mount(8) -N: do it all in that mount namespace. */
static void enter_namespace(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || setns(fd, CLONE_NEWNS) < 0) {
		fprintf(stderr, "%s: cannot enter the mount namespace %s: %s\n", prog, path,
			strerror(errno));
		exit(1);
	}
	close(fd);
}

int main(int argc, char *argv[])
{
	const char *base = strrchr(argv[0], '/');
	const char *name = NULL, *source, *mountpoint, *ns = NULL;
	static char opts[8192], installed[4096];
	bool fake = false, verbose = false;
	struct seen seen = {0};
	char *dup_source = NULL;
	char *args[8];
	int n = 0;

	base = base ? base + 1 : argv[0];
	prog = base;
	if (!strncmp(base, "mount.", 6))
		name = type_name(base + 6);
	if (argc < 3)
		usage();
	source = argv[1];
	mountpoint = argv[2];
	for (int i = 3; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-o") && i + 1 < argc)
			filter_options(argv[++i], opts, sizeof(opts), &seen);
		else if (!strcmp(a, "-t") && i + 1 < argc) {
			const char *t = type_name(argv[++i]);

			if (!name)
				name = t;
		} else if (!strcmp(a, "-N") && i + 1 < argc)
			ns = argv[++i];
		else if (!strcmp(a, "-f"))
			fake = true;
		else if (!strcmp(a, "-v"))
			verbose = true;
		else if (strcmp(a, "-s") && strcmp(a, "-n"))
			usage(); /* -s (sloppy) and -n (no mtab) mean nothing to us */
	}
	if (!name && strchr(source, '#')) {
		dup_source = strdup(source);
		if (!dup_source)
			return 1;
		source = strchr(dup_source, '#') + 1;
		*strchr(dup_source, '#') = '\0';
		name = dup_source;
	}
	if (!name || !*name || strchr(name, '/')) {
		fprintf(stderr,
			"%s: which filesystem? (a type fuse.NAME, or a source NAME#SOURCE)\n",
			prog);
		return 1;
	}
	if (ns)
		enter_namespace(ns);
	if (seen.nofail && !seen.remount && source[0] == '/' && access(source, F_OK) < 0 &&
	    errno == ENOENT)
		return 0; /* a missing source with nofail: nothing to mount, no error */
	/* mount(8)'s defaults are suid and dev, the library's nosuid and nodev: a mount made
	 * through mount(8) gets mount(8)'s, as a local filesystem would (and as mount.fuse3 does).
	 * For a user mount, mount(8) adds nosuid,nodev itself and fusermount3 insists on them. */
	if (!seen.remount) {
		if (!seen.nodev)
			append(opts, sizeof(opts), "dev");
		if (!seen.nosuid)
			append(opts, sizeof(opts), "suid");
	}

	args[n++] = (char *)name;
	if (*source)
		args[n++] = (char *)source;
	args[n++] = (char *)mountpoint;
	if (*opts) {
		args[n++] = "-o";
		args[n++] = opts;
	}
	args[n] = NULL;
	if (verbose || fake) {
		fprintf(stderr, "%s: running", prog);
		for (int i = 0; args[i]; i++)
			fprintf(stderr, " %s", args[i]);
		fprintf(stderr, "\n");
	}
	if (fake)
		return 0;
	execvp(name, args);
	if (errno == ENOENT) {
		snprintf(installed, sizeof(installed), "%s/%s", RF_BINDIR, name);
		execv(installed, args);
	}
	fprintf(stderr, "%s: cannot run %s: %s\n", prog, name, strerror(errno));
	return 1;
}
