/* SPDX-License-Identifier: MIT (see LICENSE) */
/* sizes.c: ring sizes an engine might pass (0, 1, 2, SIZE_MAX, "as much as
 * possible"), and what start, record, jobs, collect and write then do. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "async/async.h"

static async_pool *p;
static void job_fn(void *arg) { (void)arg; async_trace_label("j"); }
static int count(void *ud, const async_trace_event *ev) { (void)ev; (*(unsigned long *)ud)++; return 0; }

static void run_jobs(unsigned n, double *ns_per_job)
{
	static async_job jobs[1000];
	async_group g;
	async_group_init(&g);
	uint64_t t0 = async_trace_now_ns();
	for (unsigned i = 0; i < n; i++) {
		async_job_init(&jobs[i], job_fn, NULL);
		async_group_submit(p, &g, &jobs[i]);
	}
	async_group_wait_asleep(p, &g);
	*ns_per_job = (double)(async_trace_now_ns() - t0) / n;
}

static void try_size(const char *what, size_t n)
{
	int rc = async_pool_trace_start(p, n);
	printf("%-28s start: %s", what, rc ? async_strerror(rc) : "0");
	if (rc == 0) {
		double per;
		run_jobs(1000, &per);
		uint64_t t = async_trace_now_ns();
		int rr = async_pool_trace_record(p, "span", t, t);
		unsigned long seen = 0;
		int rcol = async_pool_trace_collect(p, count, &seen);
		int rw = async_pool_trace_write(p, "/tmp/rt-sizes.json");
		printf("; 1000 jobs: %.0f ns/job; record: %s; collect: %s, %lu events; write: %s",
		       per, rr ? async_strerror(rr) : "0", rcol ? async_strerror(rcol) : "0", seen, rw ? async_strerror(rw) : "0");
		async_pool_trace_stop(p);
	}
	printf("\n");
}

int main(void)
{
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = 2; cfg.pin = 0;
	if (async_pool_create(&p, &cfg) != 0) return 1;
	double per;
	run_jobs(1000, &per);
	printf("%-28s 1000 jobs: %.0f ns/job\n", "off", per);
	try_size("0 (default)", 0);
	try_size("1", 1);
	try_size("2", 2);
	try_size("SIZE_MAX", SIZE_MAX);
	try_size("SIZE_MAX/72 - 2", SIZE_MAX / 72 - 2);
	try_size("1<<40 (79 TB a ring)", (size_t)1 << 40);
	try_size("1<<32 (309 GB a ring)", (size_t)1 << 32);
	try_size("1<<28 (19 GB a ring)", (size_t)1 << 28);
	try_size("0 again", 0);
	async_pool_destroy(p);
	return 0;
}
