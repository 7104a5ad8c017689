/* SPDX-License-Identifier: MIT (see LICENSE) */
/* scale.c: workers added and stopped while a trace records. Each job is
 * submitted to one worker (async_pool_submit_to) and labels itself with
 * the index async_pool_worker_index gives it: its event must be on that
 * track; a stopped worker's events must stay; the file must name each
 * worker's track. */
#include <stdio.h>
#include <string.h>
#include "async/async.h"
static async_pool *p;
struct j { async_job job; char name[16]; };
static void fn(void *arg)
{
	struct j *j = arg;
	snprintf(j->name, sizeof j->name, "on-%d", async_pool_worker_index(p));
	async_trace_label(j->name);
}
static unsigned wrong, seen[8];
static int check(void *ud, const async_trace_event *ev)
{
	(void)ud;
	int k;
	if (ev->kind == ASYNC_TRACE_JOB && sscanf(ev->name, "on-%d", &k) == 1) {
		if ((unsigned)k != ev->track) wrong++;
		if (ev->track < 8) seen[ev->track]++;
	}
	return 0;
}
static void run_on_each(unsigned n)
{
	static struct j jobs[64];
	async_group g;
	async_group_init(&g);
	for (unsigned i = 0; i < 8 * n; i++) {
		async_job_init(&jobs[i].job, fn, &jobs[i]);
		async_pool_submit_to(p, i % n, &g, &jobs[i].job);
	}
	async_group_wait_asleep(p, &g);
}
int main(void)
{
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = 1; cfg.max_workers = 4; cfg.pin = 0;
	async_pool_create(&p, &cfg);
	async_pool_trace_start(p, 0);
	run_on_each(1);
	printf("added %d\n", async_pool_add_workers(p, 3));
	run_on_each(4);
	printf("stopped %d\n", async_pool_stop_workers(p, 2));
	run_on_each(2);
	printf("added %d\n", async_pool_add_workers(p, 1)); /* reuses a stopped slot */
	run_on_each(3);
	async_pool_trace_stop(p);
	async_pool_trace_collect(p, check, NULL);
	printf("jobs per track: %u %u %u %u; on a wrong track: %u\n", seen[0], seen[1], seen[2], seen[3], wrong);
	async_pool_trace_write(p, "/tmp/rt-scale.json");
	async_pool_destroy(p);
	return 0;
}
