/* SPDX-License-Identifier: MIT (see LICENSE) */
/* placement.h: where each worker slot runs and whom it steals from first,
 * computed from the hardware topology alone (no binding), so it can be
 * tested on synthetic topologies. */
#ifndef ASYNC_PLACEMENT_H
#define ASYNC_PLACEMENT_H

#include <hwloc.h>

struct async_placement {
	unsigned nslots;
	int *pu;           /* per slot: OS index of its PU, -1 when unknown */
	unsigned *victims; /* per slot, nslots - 1 entries: steal order */
};

/* Pure: depends only on the topology and nslots. Slot order is one PU per
 * physical core first, the cores taken round-robin across NUMA nodes (so n
 * workers spread over the memory controllers), then the second PU of each
 * core in the same order, and so on; slots beyond the PU count wrap. The
 * placement of n slots is thus a prefix of that of n + 1. Each slot's
 * victims are the other slots, nearest first: same core, then same NUMA
 * node, then by depth of the deepest shared topology object (cache,
 * package), ties broken by ring distance so that thieves spread out.
 * topo may be NULL (no topology: PUs unknown, ring order). Returns 0 or
 * ASYNC_ENOMEM / ASYNC_EINVAL. */
int async_placement_compute(hwloc_topology_t topo, unsigned nslots, struct async_placement *out);
void async_placement_free(struct async_placement *p);

/* The victim list of one slot. */
static inline const unsigned *async_placement_victims(const struct async_placement *p, unsigned slot)
{
	return p->victims + (size_t)slot * (p->nslots - 1);
}

#endif
