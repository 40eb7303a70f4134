/*
 * The machine as the FUSE ring sees it: which CPU ids are possible (the kernel keeps one ring
 * queue per possible CPU and routes a request to the queue of the CPU its caller runs on),
 * which NUMA node each belongs to, and which CPUs are SMT siblings of one core.
 *
 * Read from a sysfs tree whose root is a parameter, so tests describe machines they do not
 * have with small fake trees; or made up from a CPU count (for projections, ringfuse-probe
 * --plan). Nothing here allocates per request: it is read once when a transport starts.
 */
#ifndef RF_TOPOLOGY_H
#define RF_TOPOLOGY_H

#include <stdbool.h>
#include <stdint.h>

/* The largest CPU id + 1 the kernel can be built for (NR_CPUS). */
#define RF_TOPO_MAX_IDS 8192

struct rf_cpu {
	int node;	   /* NUMA node; 0 when the machine tells of none */
	int package;	   /* physical package id; -1 when unknown */
	unsigned int core; /* lowest CPU id among its SMT siblings: equal values share a core */
	bool possible, online;
};

struct rf_topology {
	unsigned int nids;	/* highest possible CPU id + 1: entries of cpu[] */
	unsigned int npossible; /* possible CPUs, counted as num_possible_cpus() counts them */
	unsigned int nonline;	/* online CPUs among the possible ones */
	unsigned int nnodes;	/* highest node id of a possible CPU + 1 */
	struct rf_cpu *cpu;	/* indexed by CPU id */
};

/*
 * Parse a kernel CPU list ("0-3,8,10-11\n"). Sets set[id] = 1 for each id when set is not
 * NULL (ids must then be below cap), and *end to the highest id + 1. Returns how many ids
 * the list names (0 for an empty list), or -EINVAL / -ERANGE.
 */
int rf_cpulist_parse(const char *list, uint8_t *set, unsigned int cap, unsigned int *end);

/*
 * Read the topology under sysfs ("/sys", or NULL for it): devices/system/cpu/{possible,
 * online}, devices/system/node/nodeN/cpulist, devices/system/cpu/cpuN/topology/. What a
 * tree does not say gets a safe default (one node, every CPU its own core). 0 or -errno.
 */
int rf_topology_read(const char *sysfs, struct rf_topology *t);

/*
 * A machine of ncpus online CPUs on nnodes nodes, smt threads per core, numbered the way x86
 * Linux numbers them: first one thread of every core (node after node), then the siblings
 * in the same order, so CPU c and c + ncpus / smt share a core. 0 or -EINVAL / -ENOMEM.
 */
int rf_topology_synthetic(struct rf_topology *t, unsigned int ncpus, unsigned int nnodes,
			  unsigned int smt);

void rf_topology_free(struct rf_topology *t);

#endif /* RF_TOPOLOGY_H */
