/* SPDX-License-Identifier: MIT (see LICENSE) */
/* label_target.c: an engine with two pools (a "render" pool it traces, an
 * "io" pool it does not). A render job labels itself "cull", then waits for
 * an io group; the waiting worker runs the io job, which labels itself
 * "decompress" (io code shared with untraced paths). The render job's event
 * should stay "cull": async_trace_label "names the innermost running job's
 * event", and the io job has no event. Prints the name the render job got. */
#include <stdio.h>
#include <string.h>
#include "async/async.h"
static async_pool *render, *io;
static void io_job(void *arg) { (void)arg; async_trace_label("decompress"); }
static void render_job(void *arg)
{
	(void)arg;
	async_trace_label("cull");
	async_group g; async_job j;
	async_group_init(&g);
	async_job_init(&j, io_job, NULL);
	async_group_submit(io, &g, &j);
	async_group_wait(io, &g); /* helps io: runs io_job here */
}
static int show(void *ud, const async_trace_event *ev)
{
	if (ev->kind == ASYNC_TRACE_JOB) { printf("render trace: job on track %u named \"%s\"\n", ev->track, ev->name); ++*(int *)ud; }
	return 0;
}
int main(void)
{
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = 1; cfg.pin = 0;
	async_pool_create(&render, &cfg);
	cfg.workers = 0; /* io jobs run where they are waited for */
	async_pool_create(&io, &cfg);
	async_pool_trace_start(render, 0);
	async_group g; async_job j;
	async_group_init(&g);
	async_job_init(&j, render_job, NULL);
	async_group_submit(render, &g, &j);
	async_group_wait_asleep(render, &g);
	int n = 0;
	async_pool_trace_collect(render, show, &n);
	async_pool_destroy(render);
	async_pool_destroy(io);
	return 0;
}
