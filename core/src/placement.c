/* SPDX-License-Identifier: MIT (see LICENSE) */
/* placement.c: worker placement and steal order from an hwloc topology.
 * See placement.h for the rules; this file only applies them. */
#include "placement.h"
#include "async/error.h"

#include <stdlib.h>
#include <string.h>

struct pu_info {
	hwloc_obj_t obj;
	int core;  /* logical index of its core */
	int numa;  /* logical index of its first NUMA node, -1 if none */
};

/* Logical index of the NUMA node whose cpuset contains obj's, or -1. */
static int numa_of(hwloc_topology_t topo, hwloc_obj_t obj)
{
	int n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
	for (int k = 0; k < n; k++) {
		hwloc_obj_t node = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)k);
		if (node->cpuset && hwloc_bitmap_isincluded(obj->cpuset, node->cpuset))
			return k;
	}
	return -1;
}

/* Ordered PU list: see placement.h. Returns the count, or -1 on ENOMEM. */
static int order_pus(hwloc_topology_t topo, struct pu_info **out)
{
	int npu = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
	int ncore = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
	int nnuma = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
	if (npu <= 0)
		return 0;
	/* Without cores, every PU is a core of its own. */
	hwloc_obj_type_t ctype = ncore > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
	if (ncore <= 0)
		ncore = npu;
	if (nnuma <= 0)
		nnuma = 1;

	int *core_numa = malloc(sizeof(int) * (size_t)ncore);
	int *core_order = malloc(sizeof(int) * (size_t)ncore);
	int *taken = calloc((size_t)nnuma, sizeof(int));
	struct pu_info *seq = malloc(sizeof *seq * (size_t)npu);
	int rc = -1;
	if (!core_numa || !core_order || !taken || !seq)
		goto out;

	for (int c = 0; c < ncore; c++) {
		int k = numa_of(topo, hwloc_get_obj_by_type(topo, ctype, (unsigned)c));
		core_numa[c] = k < 0 ? 0 : k;
	}
	/* Round-robin over NUMA nodes: the r-th core of node 0, of node 1, ... */
	int placed = 0;
	while (placed < ncore) {
		for (int k = 0; k < nnuma; k++) {
			int seen = 0;
			for (int c = 0; c < ncore; c++) {
				if (core_numa[c] != k)
					continue;
				if (seen++ == taken[k]) {
					core_order[placed++] = c;
					taken[k]++;
					break;
				}
			}
		}
	}
	/* The s-th PU of each core, for s = 0, 1, ... */
	int n = 0;
	for (int s = 0; n < npu; s++) {
		int added = 0;
		for (int i = 0; i < ncore; i++) {
			hwloc_obj_t core = hwloc_get_obj_by_type(topo, ctype, (unsigned)core_order[i]);
			hwloc_obj_t pu = ctype == HWLOC_OBJ_PU
			                     ? (s == 0 ? core : NULL)
			                     : hwloc_get_obj_inside_cpuset_by_type(topo, core->cpuset, HWLOC_OBJ_PU, (unsigned)s);
			if (pu == NULL)
				continue;
			seq[n].obj = pu;
			seq[n].core = core_order[i];
			seq[n].numa = numa_of(topo, pu);
			n++;
			added++;
		}
		if (added == 0)
			break;
	}
	*out = seq;
	seq = NULL;
	rc = n;
out:
	free(core_numa);
	free(core_order);
	free(taken);
	free(seq);
	return rc;
}

struct victim_key {
	unsigned slot;
	int closeness;
	unsigned ring;
};

static int victim_cmp(const void *a, const void *b)
{
	const struct victim_key *x = a, *y = b;
	if (x->closeness != y->closeness)
		return x->closeness > y->closeness ? -1 : 1;
	return x->ring < y->ring ? -1 : (x->ring > y->ring);
}

static int closeness(hwloc_topology_t topo, const struct pu_info *a, const struct pu_info *b)
{
	if (a->obj == b->obj)
		return 3000; /* wrapped slots sharing one PU */
	if (a->core == b->core)
		return 2000;
	int c = hwloc_get_common_ancestor_obj(topo, a->obj, b->obj)->depth;
	if (a->numa >= 0 && a->numa == b->numa)
		c += 1000;
	return c;
}

int async_placement_compute(hwloc_topology_t topo, unsigned nslots, struct async_placement *out)
{
	if (out == NULL || nslots == 0)
		return ASYNC_EINVAL;
	memset(out, 0, sizeof *out);
	struct pu_info *seq = NULL;
	int npu = topo ? order_pus(topo, &seq) : 0;
	if (npu < 0)
		return ASYNC_ENOMEM;
	out->nslots = nslots;
	out->pu = malloc(sizeof(int) * nslots);
	out->victims = malloc(sizeof(unsigned) * (size_t)nslots * (nslots > 1 ? nslots - 1 : 1));
	struct victim_key *keys = malloc(sizeof *keys * nslots);
	if (!out->pu || !out->victims || !keys) {
		free(seq);
		free(keys);
		async_placement_free(out);
		return ASYNC_ENOMEM;
	}
	for (unsigned i = 0; i < nslots; i++)
		out->pu[i] = npu > 0 ? (int)seq[i % (unsigned)npu].obj->os_index : -1;
	for (unsigned i = 0; i < nslots; i++) {
		unsigned m = 0;
		for (unsigned j = 0; j < nslots; j++) {
			if (j == i)
				continue;
			keys[m].slot = j;
			keys[m].ring = (j + nslots - i) % nslots;
			keys[m].closeness = npu > 0 ? closeness(topo, &seq[i % (unsigned)npu], &seq[j % (unsigned)npu]) : 0;
			m++;
		}
		qsort(keys, m, sizeof *keys, victim_cmp);
		unsigned *v = out->victims + (size_t)i * (nslots - 1);
		for (unsigned k = 0; k < m; k++)
			v[k] = keys[k].slot;
	}
	free(keys);
	free(seq);
	return 0;
}

void async_placement_free(struct async_placement *p)
{
	free(p->pu);
	free(p->victims);
	p->pu = NULL;
	p->victims = NULL;
	p->nslots = 0;
}
