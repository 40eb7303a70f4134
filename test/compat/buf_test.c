/*
 * fuse_buf_size() and fuse_buf_copy() between memory and descriptors, as libfuse does them.
 * Built against ringfuse's libfuse3.so.3 and the system's; both must pass.
 */
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures, checks;

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

static int temp_file(const char *content)
{
	char path[] = "/tmp/ringfuse-buf-XXXXXX";
	int fd = mkstemp(path);

	if (fd < 0) {
		perror("mkstemp");
		exit(2);
	}
	unlink(path);
	if (content && write(fd, content, strlen(content)) != (ssize_t)strlen(content)) {
		perror("write");
		exit(2);
	}
	return fd;
}

static char *file_content(int fd, char *out, size_t size)
{
	ssize_t n = pread(fd, out, size - 1, 0);

	out[n > 0 ? n : 0] = '\0';
	return out;
}

/* A vector of n buffers: fuse_bufvec holds one, callers allocate room for more. */
static struct fuse_bufvec *vec(size_t n)
{
	struct fuse_bufvec *v = calloc(1, sizeof(*v) + (n - 1) * sizeof(struct fuse_buf));

	if (!v)
		exit(2);
	v->count = n;
	return v;
}

static void test_sizes(void)
{
	struct fuse_bufvec *a = vec(3);
	struct fuse_buf *b = a->buf;

	b[0].size = 5;
	b[1].size = 7;
	b[2].size = 0;
	CHECK(fuse_buf_size(a) == 12, "size %zu", fuse_buf_size(a));
	b[1].size = SIZE_MAX;
	CHECK(fuse_buf_size(a) == SIZE_MAX, "unbounded");
	b[1].size = 7;
	CHECK(fuse_buf_copy(a, a, 0) == 12, "copy to itself gives the size");
	free(a);
}

static void test_memory(void)
{
	char s1[] = "hello ", s2[] = "wide ", s3[] = "world";
	char d1[4], d2[20];
	struct fuse_bufvec *src = vec(3), *dst = vec(2);
	struct fuse_buf *sb = src->buf, *db = dst->buf;
	ssize_t n;

	sb[0].mem = s1;
	sb[0].size = 6;
	sb[1].mem = s2;
	sb[1].size = 5;
	sb[2].mem = s3;
	sb[2].size = 5;
	src->off = 2; /* start inside the first buffer */
	db[0].mem = d1;
	db[0].size = sizeof(d1);
	db[1].mem = d2;
	db[1].size = sizeof(d2);
	n = fuse_buf_copy(dst, src, 0);
	CHECK(n == 14, "copied %zd", n);
	CHECK(memcmp(d1, "llo ", 4) == 0 && memcmp(d2, "wide world", 10) == 0, "data");
	/* The source ran out first: libfuse then leaves the destination where the last piece
	 * started. */
	CHECK(src->idx == 3 && dst->idx == 1 && dst->off == 5, "positions %zu %zu %zu", src->idx,
	      dst->idx, dst->off);
	free(src);
	free(dst);

	/* The destination ends first: the copy stops there. */
	struct fuse_bufvec small = FUSE_BUFVEC_INIT(3);
	struct fuse_bufvec big = FUSE_BUFVEC_INIT(6);

	small.buf[0].mem = d1;
	big.buf[0].mem = s1;
	CHECK(fuse_buf_copy(&small, &big, 0) == 3 && memcmp(d1, "hel", 3) == 0, "short dst");
	CHECK(big.off == 3 && big.idx == 0, "source advanced by 3");
}

static void test_descriptors(void)
{
	char text[] = "0123456789", out[64], got[64];
	int fd = temp_file("abcdefghijkl");
	struct fuse_bufvec mem = FUSE_BUFVEC_INIT(4), file = FUSE_BUFVEC_INIT(4);
	ssize_t n;

	/* Memory into a file at a position (FUSE_BUF_FD_SEEK). */
	mem.buf[0].mem = text;
	file.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK | FUSE_BUF_FD_RETRY;
	file.buf[0].fd = fd;
	file.buf[0].pos = 2;
	n = fuse_buf_copy(&file, &mem, 0);
	CHECK(n == 4 && strcmp(file_content(fd, got, sizeof(got)), "ab0123ghijkl") == 0,
	      "pwrite: %zd '%s'", n, got);

	/* A file into memory from a position, short at the end of the file. */
	struct fuse_bufvec from = FUSE_BUFVEC_INIT(20), into = FUSE_BUFVEC_INIT(sizeof(out));

	from.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	from.buf[0].fd = fd;
	from.buf[0].pos = 8;
	into.buf[0].mem = out;
	n = fuse_buf_copy(&into, &from, 0);
	CHECK(n == 4 && memcmp(out, "ijkl", 4) == 0, "pread to EOF: %zd", n);

	/* Without FUSE_BUF_FD_SEEK the file position is used. */
	struct fuse_bufvec cur = FUSE_BUFVEC_INIT(3);

	cur.buf[0].flags = FUSE_BUF_IS_FD;
	cur.buf[0].fd = fd;
	lseek(fd, 1, SEEK_SET);
	into = (struct fuse_bufvec)FUSE_BUFVEC_INIT(sizeof(out));
	into.buf[0].mem = out;
	n = fuse_buf_copy(&into, &cur, 0);
	CHECK(n == 3 && memcmp(out, "b01", 3) == 0 && lseek(fd, 0, SEEK_CUR) == 4, "read: %zd", n);

	/* File to file: splice cannot join two regular files, so it falls back to copying,
	 * unless splicing is forced. */
	int fd2 = temp_file(NULL);
	struct fuse_bufvec a = FUSE_BUFVEC_INIT(5), b = FUSE_BUFVEC_INIT(5);

	a.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	a.buf[0].fd = fd;
	b.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	b.buf[0].fd = fd2;
	n = fuse_buf_copy(&b, &a, 0);
	CHECK(n == 5 && strcmp(file_content(fd2, got, sizeof(got)), "ab012") == 0,
	      "file to file: %zd '%s'", n, got);
	a.idx = a.off = b.idx = b.off = 0;
	b.buf[0].pos = 5;
	n = fuse_buf_copy(&b, &a, FUSE_BUF_NO_SPLICE);
	CHECK(n == 5 && strcmp(file_content(fd2, got, sizeof(got)), "ab012ab012") == 0,
	      "no splice: %zd '%s'", n, got);
	a.idx = a.off = b.idx = b.off = 0;
	n = fuse_buf_copy(&b, &a, FUSE_BUF_FORCE_SPLICE);
	CHECK(n == -EINVAL, "forced splice between files: %zd", n);

	/* An error before anything moved is returned as -errno. */
	struct fuse_bufvec bad = FUSE_BUFVEC_INIT(4);

	bad.buf[0].flags = FUSE_BUF_IS_FD;
	bad.buf[0].fd = -1;
	into = (struct fuse_bufvec)FUSE_BUFVEC_INIT(sizeof(out));
	into.buf[0].mem = out;
	CHECK(fuse_buf_copy(&into, &bad, 0) == -EBADF, "bad fd");
	close(fd);
	close(fd2);
}

/* Through a pipe, splice does work. */
static void test_splice(void)
{
	int fd = temp_file("spliced data"), p[2];
	char out[32] = "";
	struct fuse_bufvec file = FUSE_BUFVEC_INIT(7), pipe_in = FUSE_BUFVEC_INIT(7);
	ssize_t n;

	if (pipe(p) < 0) {
		perror("pipe");
		exit(2);
	}
	file.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	file.buf[0].fd = fd;
	pipe_in.buf[0].flags = FUSE_BUF_IS_FD;
	pipe_in.buf[0].fd = p[1];
	n = fuse_buf_copy(&pipe_in, &file, FUSE_BUF_FORCE_SPLICE);
	CHECK(n == 7, "splice into a pipe: %zd", n);
	CHECK(read(p[0], out, sizeof(out)) == 7 && memcmp(out, "spliced", 7) == 0, "pipe data");
	close(p[0]);
	close(p[1]);
	close(fd);
}

int main(void)
{
	test_sizes();
	test_memory();
	test_descriptors();
	test_splice();
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
