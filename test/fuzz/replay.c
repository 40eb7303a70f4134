/*
 * Replay saved fuzz inputs without libFuzzer: the same harness (fuzz_dispatch.c) behind a
 * plain main(), so the regression inputs and the seed corpus run in every build, with any
 * compiler, sanitizers or not. A finding aborts as it does under the fuzzer.
 *
 *   replay [--strict] [--verbose] FILE|DIR...
 *
 * A directory stands for the files in it (not recursively; names starting with '.' and
 * README files are skipped). --strict additionally requires every request to be well formed
 * and to succeed (ENOSYS where nobody implements the opcode): the check for the seed corpus,
 * whose errors-* inputs, meant to fail, it leaves out.
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static unsigned long inputs;

static int run_file(const char *path)
{
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	/* Seeds named errors-* hold requests that are meant to fail. */
	int strict = fuzz_strict;
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0;
	unsigned long before = fuzz_strict_failures;

	if (!f) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (;;) {
		size_t n;

		if (len == cap) {
			unsigned char *p;

			cap = cap ? 2 * cap : 65536;
			p = realloc(buf, cap);
			if (!p) {
				fprintf(stderr, "replay: %s: out of memory\n", path);
				free(buf);
				fclose(f);
				return -1;
			}
			buf = p;
		}
		n = fread(buf + len, 1, cap - len, f);
		if (n == 0)
			break;
		len += n;
	}
	if (ferror(f)) {
		fprintf(stderr, "replay: %s: read error\n", path);
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	if (fuzz_verbose)
		fprintf(stderr, "== %s (%zu bytes)\n", path, len);
	if (!strncmp(base, "errors-", 7))
		fuzz_strict = 0;
	LLVMFuzzerTestOneInput(buf, len);
	fuzz_strict = strict;
	free(buf);
	inputs++;
	if (fuzz_strict_failures != before) {
		fprintf(stderr, "replay: %s: not a valid seed\n", path);
		return -1;
	}
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int ret = 0;

	if (!d) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !strncmp(de->d_name, "README", 6))
			continue;
		if (n == cap) {
			char **p = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof(*names));

			if (!p) {
				ret = -1;
				break;
			}
			names = p;
		}
		if (asprintf(&names[n], "%s/%s", dir, de->d_name) < 0) {
			ret = -1;
			break;
		}
		n++;
	}
	closedir(d);
	/* Sorted, so a run's output reads the same everywhere. */
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		struct stat st;

		if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode) && run_file(names[i]) < 0)
			ret = -1;
		free(names[i]);
	}
	free(names);
	return ret;
}

int main(int argc, char *argv[])
{
	int failed = 0, paths = 0;

	LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (!strcmp(argv[i], "--strict")) {
			fuzz_strict = 1;
			continue;
		}
		if (!strcmp(argv[i], "--verbose")) {
			fuzz_verbose = 1;
			continue;
		}
		paths++;
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			failed = 1;
		} else if (S_ISDIR(st.st_mode) ? run_dir(argv[i]) < 0 : run_file(argv[i]) < 0) {
			failed = 1;
		}
	}
	if (!paths) {
		fprintf(stderr, "usage: %s [--strict] [--verbose] FILE|DIR...\n", argv[0]);
		return 2;
	}
	printf("replay: %lu inputs, %s\n", inputs, failed ? "FAILED" : "all passed");
	return failed;
}
