/*
 * ringfuse-probe: print what this machine supports for FUSE over io_uring and why a transport
 * would not work. Exit status 0 when io-uring can carry FUSE here, 1 otherwise.
 * With --enable, try to switch the fuse module's enable_uring parameter on first (root).
 * With --plan, project what the io-uring transport costs here or on other machines (plan.c).
 */
#include "plan.h"
#include "ringfuse_i.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char *argv[])
{
	struct rf_probe p;
	char why[256];
	int usable;

	if (argc > 1 && !strcmp(argv[1], "--plan"))
		return rf_plan_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "--enable")) {
		int ret = rf_probe_enable_uring();

		if (ret)
			fprintf(stderr, "ringfuse-probe: cannot enable io-uring for FUSE: %s\n",
				strerror(-ret));
	} else if (argc > 1) {
		fprintf(stderr, "usage: %s [--enable | --plan [CPUS] (--plan --help for more)]\n",
			argv[0]);
		return 2;
	}
	rf_probe_run(&p);
	usable = rf_probe_uring_usable(&p, why, sizeof(why));
	printf("kernel:               %s\n", p.kernel);
	printf("fuse enable_uring:    %s\n",
	       p.fuse_param_exists ? (p.fuse_param_on ? "Y" : "N") : "absent (kernel too old?)");
	printf("io_uring_disabled:    %d\n", p.io_uring_disabled);
	printf("SQE128 ring:          %s\n", p.ring_sqe128 ? "ok" : strerror(-p.ring_error));
	printf("cpus possible/online: %u/%u (one io-uring queue per possible cpu)\n",
	       p.possible_cpus, p.online_cpus);
	printf("running as root:      %s\n",
	       geteuid() == 0 ? "yes" : "no (mounts use fusermount3)");
	printf("transports:           dev yes, uring-rw %s, uring %s\n",
	       p.ring_error == 0 ? "yes" : "no", usable == 0 ? "yes" : "no");
	if (usable != 0)
		printf("uring unavailable:    %s\n", why);
	return usable == 0 ? 0 : 1;
}
