/*
 * What this machine supports for FUSE over io_uring, and in words why not when it does not.
 * Used before mounting (so "-o transport=uring" fails with a reason, not a hang) and by the
 * ringfuse-probe tool.
 */
#include "ringfuse_i.h"
#include "topology.h"

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>

#define ENABLE_URING_PARAM "/sys/module/fuse/parameters/enable_uring"

static int read_first_char(const char *path)
{
	FILE *f = fopen(path, "re");
	int c;

	if (!f)
		return -1;
	c = fgetc(f);
	fclose(f);
	return c;
}

unsigned int rf_cpu_list_count(const char *list)
{
	unsigned int end;
	int n = rf_cpulist_parse(list, NULL, 0, &end);

	return n > 0 ? (unsigned int)n : 0;
}

unsigned int rf_possible_cpus(void)
{
	FILE *f = fopen("/sys/devices/system/cpu/possible", "re");
	char line[1024];
	unsigned int n = 0;
	int conf;

	if (f) {
		if (fgets(line, sizeof(line), f))
			n = rf_cpu_list_count(line);
		fclose(f);
	}
	if (n)
		return n;
	conf = get_nprocs_conf();
	return conf > 0 ? (unsigned int)conf : 1;
}

void rf_probe_run(struct rf_probe *p)
{
	struct io_uring ring;
	struct utsname u;
	int c, ret;

	memset(p, 0, sizeof(*p));
	c = read_first_char(ENABLE_URING_PARAM);
	p->fuse_param_exists = c >= 0;
	p->fuse_param_on = c == 'Y' || c == 'y' || c == '1';
	c = read_first_char("/proc/sys/kernel/io_uring_disabled");
	p->io_uring_disabled = c >= '0' && c <= '9' ? c - '0' : -1;
	ret = io_uring_queue_init(4, &ring, IORING_SETUP_SQE128);
	p->ring_sqe128 = ret == 0;
	p->ring_error = ret;
	if (ret == 0)
		io_uring_queue_exit(&ring);
	p->possible_cpus = rf_possible_cpus();
	p->online_cpus = (unsigned int)get_nprocs();
	if (uname(&u) == 0) {
		size_t n = strnlen(u.release, sizeof(p->kernel) - 1);

		memcpy(p->kernel, u.release, n);
		p->kernel[n] = '\0';
	}
}

int rf_probe_uring_usable(const struct rf_probe *p, char *why, size_t whylen)
{
	if (!p->fuse_param_exists) {
		snprintf(why, whylen,
			 "the kernel (%s) has no FUSE-over-io-uring support (needs Linux 6.14+ "
			 "with CONFIG_FUSE_IO_URING)",
			 p->kernel);
		return -EOPNOTSUPP;
	}
	if (!p->fuse_param_on) {
		snprintf(why, whylen,
			 "the fuse module parameter enable_uring is off (as root: echo Y > %s)",
			 ENABLE_URING_PARAM);
		return -EOPNOTSUPP;
	}
	if (p->io_uring_disabled > 0 && !p->ring_sqe128) {
		snprintf(why, whylen, "io_uring is disabled by sysctl kernel.io_uring_disabled=%d",
			 p->io_uring_disabled);
		return -EPERM;
	}
	if (!p->ring_sqe128) {
		if (p->ring_error == -ENOMEM)
			snprintf(why, whylen,
				 "cannot create an io_uring: out of locked memory "
				 "(raise RLIMIT_MEMLOCK, ulimit -l)");
		else
			snprintf(why, whylen, "cannot create an io_uring with 128-byte SQEs: %s",
				 strerror(-p->ring_error));
		return p->ring_error ? p->ring_error : -EOPNOTSUPP;
	}
	if (whylen)
		why[0] = '\0';
	return 0;
}

int rf_probe_enable_uring(void)
{
	FILE *f = fopen(ENABLE_URING_PARAM, "we");
	int ret = 0;

	if (!f)
		return -errno;
	if (fputs("Y\n", f) < 0)
		ret = -EIO;
	if (fclose(f) != 0 && !ret)
		ret = -errno;
	return ret;
}
