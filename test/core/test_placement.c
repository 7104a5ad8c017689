/* SPDX-License-Identifier: MIT (see LICENSE) */
/* test_placement.c: placement and steal order on synthetic hwloc topologies,
 * checked against assignments worked out by hand. Nothing is bound. */
#include <criterion/criterion.h>
#include <string.h>

#include "async/pool.h"
#include "placement.h"

static hwloc_topology_t synth(const char *desc)
{
	hwloc_topology_t t;
	cr_assert_eq(hwloc_topology_init(&t), 0);
	cr_assert_eq(hwloc_topology_set_synthetic(t, desc), 0, "synthetic '%s' refused", desc);
	cr_assert_eq(hwloc_topology_load(t), 0);
	return t;
}

static int index_of(const unsigned *v, unsigned n, unsigned slot)
{
	for (unsigned i = 0; i < n; i++)
		if (v[i] == slot)
			return (int)i;
	return -1;
}

/* 2 packages x 2 NUMA nodes x 8 cores x 2 PUs: PU os index = 2*core + smt. */
Test(placement, numa_round_robin_cores_before_siblings)
{
	hwloc_topology_t t = synth("pack:2 numa:2 core:8 pu:2");
	struct async_placement p;
	cr_assert_eq(async_placement_compute(t, 70, &p), 0);
	for (unsigned i = 0; i < 64; i++) {
		unsigned r = i % 32;            /* position among first / second PUs */
		unsigned node = r % 4;          /* NUMA nodes in turn */
		unsigned core = node * 8 + r / 4;
		int want = (int)(2 * core + (i >= 32));
		cr_assert_eq(p.pu[i], want, "slot %u: PU %d, want %d", i, p.pu[i], want);
	}
	/* Slots beyond the 64 PUs wrap. */
	for (unsigned i = 64; i < 70; i++)
		cr_assert_eq(p.pu[i], p.pu[i - 64]);
	async_placement_free(&p);

	/* Steal order of slot 0 among 64 slots: its SMT sibling (slot 32), then
	 * the 14 slots on the 7 other cores of NUMA node 0, then the 16 of node
	 * 1 (same package), then the 32 of the other package. */
	cr_assert_eq(async_placement_compute(t, 64, &p), 0);
	const unsigned *v = async_placement_victims(&p, 0);
	cr_assert_eq(v[0], 32);
	for (unsigned s = 1; s < 64; s++) {
		unsigned r = s % 32, node = r % 4;
		int pos = index_of(v, 63, s);
		cr_assert_geq(pos, 0);
		if (s == 32)
			continue;
		if (node == 0)
			cr_assert(pos >= 1 && pos <= 14, "slot %u (node 0) at %d", s, pos);
		else if (node == 1)
			cr_assert(pos >= 15 && pos <= 30, "slot %u (node 1) at %d", s, pos);
		else
			cr_assert(pos >= 31, "slot %u (other package) at %d", s, pos);
	}
	/* Ties go by ring distance, so thieves spread: node 0's first-PU slots
	 * come in ring order 4, 8, ..., 28. */
	for (unsigned k = 0; k < 7; k++)
		cr_assert_eq(v[1 + k], 4 * (k + 1));
	async_placement_free(&p);
	hwloc_topology_destroy(t);
}

/* 2 packages x 2 L3 x 4 cores x 2 PUs, one NUMA node: shared L3 counts. */
Test(placement, shared_cache_before_package_before_machine)
{
	hwloc_topology_t t = synth("pack:2 l3:2 core:4 pu:2");
	struct async_placement p;
	cr_assert_eq(async_placement_compute(t, 32, &p), 0);
	for (unsigned i = 0; i < 32; i++)
		cr_assert_eq(p.pu[i], (int)(i < 16 ? 2 * i : 2 * (i - 16) + 1));
	const unsigned *v = async_placement_victims(&p, 0);
	unsigned want[] = { 16, 1, 2, 3, 17, 18, 19 };
	for (unsigned k = 0; k < 7; k++)
		cr_assert_eq(v[k], want[k], "victim %u is %u, want %u", k, v[k], want[k]);
	for (unsigned k = 7; k < 15; k++) /* same package, other L3: cores 4..7 */
		cr_assert((v[k] % 16) >= 4 && (v[k] % 16) <= 7, "victim %u is slot %u", k, v[k]);
	for (unsigned k = 15; k < 31; k++)
		cr_assert((v[k] % 16) >= 8);
	async_placement_free(&p);
	hwloc_topology_destroy(t);
}

Test(placement, prefix_property_and_no_smt)
{
	hwloc_topology_t t = synth("pack:1 core:6 pu:1");
	struct async_placement a, b;
	cr_assert_eq(async_placement_compute(t, 3, &a), 0);
	cr_assert_eq(async_placement_compute(t, 9, &b), 0);
	for (unsigned i = 0; i < 3; i++)
		cr_assert_eq(a.pu[i], b.pu[i]);
	for (unsigned i = 0; i < 9; i++)
		cr_assert_eq(b.pu[i], (int)(i % 6));
	async_placement_free(&a);
	async_placement_free(&b);
	hwloc_topology_destroy(t);
}

Test(placement, without_topology_ring_order)
{
	struct async_placement p;
	cr_assert_eq(async_placement_compute(NULL, 4, &p), 0);
	const unsigned *v = async_placement_victims(&p, 2);
	cr_assert_eq(p.pu[0], -1);
	cr_assert_eq(v[0], 3);
	cr_assert_eq(v[1], 0);
	cr_assert_eq(v[2], 1);
	async_placement_free(&p);
	cr_assert_eq(async_placement_compute(NULL, 0, &p), ASYNC_EINVAL);
}

/* The pool uses the placement: workers report the PUs computed above. */
Test(placement, pool_on_synthetic_topology)
{
	async_pool_config cfg = async_pool_config_default();
	cfg.synthetic_topology = "pack:2 numa:2 core:8 pu:2";
	cfg.workers = 5;
	async_pool *pool;
	cr_assert_eq(async_pool_create(&pool, &cfg), 0);
	async_worker_stats st[8];
	cr_assert_eq(async_pool_stats(pool, st, 8), 5);
	int want[] = { 0, 16, 32, 48, 2 };
	for (int i = 0; i < 5; i++)
		cr_assert_eq(st[i].pu, want[i]);
	async_pool_destroy(pool);

	cfg.synthetic_topology = "this is not a topology";
	cr_assert_eq(async_pool_create(&pool, &cfg), ASYNC_EINVAL);
	cr_assert_null(pool);
}
