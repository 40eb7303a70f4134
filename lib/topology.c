/*
 * Reading the machine's CPU topology from sysfs (or making one up for projections): possible
 * and online CPUs, their NUMA nodes, and which CPUs are SMT siblings. See topology.h.
 *
 * The queue count is num_possible_cpus(), the number of ids in cpu/possible, not the highest
 * id + 1: that is how the kernel sizes the FUSE ring (fuse_uring_create()), and the two differ
 * when the possible mask has holes.
 */
#include "topology.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYSFS_CPU  "devices/system/cpu"
#define SYSFS_NODE "devices/system/node"

int rf_cpulist_parse(const char *list, uint8_t *set, unsigned int cap, unsigned int *end)
{
	const char *p = list;
	unsigned long count = 0, top = 0;

	*end = 0;
	if (*p == '\0' || *p == '\n')
		return 0;
	for (;;) {
		unsigned long first, last;
		char *q;

		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		first = last = strtoul(p, &q, 10);
		p = q;
		if (*p == '-') {
			if (!isdigit((unsigned char)*++p))
				return -EINVAL;
			last = strtoul(p, &q, 10);
			p = q;
			if (last < first)
				return -EINVAL;
		}
		if (last >= RF_TOPO_MAX_IDS || (set && last >= cap))
			return -ERANGE;
		for (unsigned long id = first; id <= last; id++) {
			/* Overlapping ranges are not the kernel's style, but count each id once. */
			if (set) {
				count += !set[id];
				set[id] = 1;
			}
		}
		if (!set)
			count += last - first + 1;
		if (last + 1 > top)
			top = last + 1;
		if (*p != ',')
			break;
		p++;
	}
	if (*p == '\n')
		p++;
	if (*p)
		return -EINVAL;
	*end = (unsigned int)top;
	return (int)count;
}

/* What one reading of a tree needs: its root, a line buffer and a set of ids. */
struct reader {
	const char *root;
	char *line; /* LINE_MAX_LEN bytes */
	uint8_t *set;
	unsigned int nids;
};

/* 8192 ids listed one by one, with their commas, fit. */
#define LINE_MAX_LEN 65536

/* The first line of root/path into r->line; 0 or -errno. */
static int read_line(struct reader *r, const char *path)
{
	char full[4096];
	FILE *f;
	int ret = 0;

	if ((size_t)snprintf(full, sizeof(full), "%s/%s", r->root, path) >= sizeof(full))
		return -ENAMETOOLONG;
	f = fopen(full, "re");
	if (!f)
		return -errno;
	if (!fgets(r->line, LINE_MAX_LEN, f))
		ret = ferror(f) ? -EIO : -ENODATA;
	fclose(f);
	return ret;
}

/* The CPU list at root/path into r->set (cleared first); count of ids or -errno. */
static int read_cpulist(struct reader *r, const char *path)
{
	unsigned int end;
	int ret = read_line(r, path);

	memset(r->set, 0, r->nids);
	if (ret)
		return ret;
	return rf_cpulist_parse(r->line, r->set, r->nids, &end);
}

static void read_nodes(struct reader *r, struct rf_topology *t)
{
	char path[4096];
	struct dirent *d;
	DIR *dir;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", r->root, SYSFS_NODE) >= sizeof(path))
		return;
	dir = opendir(path);
	if (!dir)
		return; /* no NUMA: everything stays on node 0 */
	while ((d = readdir(dir))) {
		char rel[64];
		char *endp;
		unsigned long node;

		if (strncmp(d->d_name, "node", 4) || !isdigit((unsigned char)d->d_name[4]))
			continue;
		node = strtoul(d->d_name + 4, &endp, 10);
		if (*endp || node >= RF_TOPO_MAX_IDS)
			continue;
		snprintf(rel, sizeof(rel), "%s/node%lu/cpulist", SYSFS_NODE, node);
		/* A list naming ids past the possible range (a stale tree) is ignored. */
		if (read_cpulist(r, rel) < 0)
			continue;
		for (unsigned int id = 0; id < t->nids; id++)
			if (r->set[id])
				t->cpu[id].node = (int)node;
	}
	closedir(dir);
}

/* The SMT siblings and package of one CPU; left at their defaults when sysfs has none. */
static void read_cpu_topology(struct reader *r, struct rf_topology *t, unsigned int id)
{
	/* core_cpus_list is the newer name of thread_siblings_list. */
	static const char *const sibling_files[] = {"core_cpus_list", "thread_siblings_list"};
	char rel[128];

	for (size_t i = 0; i < sizeof(sibling_files) / sizeof(sibling_files[0]); i++) {
		snprintf(rel, sizeof(rel), "%s/cpu%u/topology/%s", SYSFS_CPU, id, sibling_files[i]);
		if (read_cpulist(r, rel) <= 0 || !r->set[id])
			continue;
		for (unsigned int s = 0; s < t->nids; s++) {
			if (r->set[s]) {
				t->cpu[id].core = s;
				break;
			}
		}
		break;
	}
	snprintf(rel, sizeof(rel), "%s/cpu%u/topology/physical_package_id", SYSFS_CPU, id);
	if (read_line(r, rel) == 0)
		t->cpu[id].package = atoi(r->line);
}

static int read_tree(struct reader *r, struct rf_topology *t)
{
	unsigned int end;
	bool online_known;
	int ret = read_line(r, SYSFS_CPU "/possible");

	if (!ret)
		ret = rf_cpulist_parse(r->line, NULL, 0, &end);
	if (ret < 0)
		return ret;
	if (ret == 0)
		return -ENODATA;
	t->nids = r->nids = end;
	t->cpu = calloc(end, sizeof(*t->cpu));
	r->set = calloc(end, 1);
	if (!t->cpu || !r->set)
		return -ENOMEM;
	ret = read_cpulist(r, SYSFS_CPU "/possible");
	if (ret < 0)
		return ret;
	for (unsigned int id = 0; id < end; id++) {
		t->cpu[id].possible = r->set[id];
		t->cpu[id].core = id;
		t->cpu[id].package = -1;
	}
	/* Without an online list, take every possible CPU as online. */
	online_known = read_cpulist(r, SYSFS_CPU "/online") >= 0;
	for (unsigned int id = 0; id < end; id++) {
		struct rf_cpu *c = &t->cpu[id];

		if (!c->possible)
			continue;
		t->npossible++;
		c->online = !online_known || r->set[id];
		t->nonline += c->online;
	}
	read_nodes(r, t);
	for (unsigned int id = 0; id < end; id++) {
		if (!t->cpu[id].possible)
			continue;
		read_cpu_topology(r, t, id);
		if ((unsigned int)t->cpu[id].node + 1 > t->nnodes)
			t->nnodes = (unsigned int)t->cpu[id].node + 1;
	}
	return 0;
}

int rf_topology_read(const char *sysfs, struct rf_topology *t)
{
	struct reader r = {.root = sysfs && *sysfs ? sysfs : "/sys"};
	int ret;

	memset(t, 0, sizeof(*t));
	r.line = malloc(LINE_MAX_LEN);
	ret = r.line ? read_tree(&r, t) : -ENOMEM;
	free(r.line);
	free(r.set);
	if (ret)
		rf_topology_free(t);
	return ret;
}

int rf_topology_synthetic(struct rf_topology *t, unsigned int ncpus, unsigned int nnodes,
			  unsigned int smt)
{
	unsigned int ncores;

	memset(t, 0, sizeof(*t));
	if (!ncpus || !nnodes || !smt || ncpus > RF_TOPO_MAX_IDS || ncpus % smt)
		return -EINVAL;
	ncores = ncpus / smt;
	if (nnodes > ncores)
		return -EINVAL;
	t->cpu = calloc(ncpus, sizeof(*t->cpu));
	if (!t->cpu)
		return -ENOMEM;
	t->nids = t->npossible = t->nonline = ncpus;
	t->nnodes = nnodes;
	for (unsigned int id = 0; id < ncpus; id++) {
		unsigned int core = id % ncores;

		t->cpu[id] = (struct rf_cpu){
			.node = (int)((unsigned long)core * nnodes / ncores),
			.core = core,
			.possible = true,
			.online = true,
		};
		t->cpu[id].package = t->cpu[id].node;
	}
	return 0;
}

void rf_topology_free(struct rf_topology *t)
{
	free(t->cpu);
	memset(t, 0, sizeof(*t));
}
