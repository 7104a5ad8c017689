/* SPDX-License-Identifier: MIT (see LICENSE) */
/* paths.c: async_pool_trace_write to paths a tool might be given. */
#include <stdio.h>
#include <sys/stat.h>
#include "async/async.h"
static void job_fn(void *a) { (void)a; async_trace_label("x"); }
int main(void)
{
	async_pool *p;
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = 1; cfg.pin = 0;
	async_pool_create(&p, &cfg);
	async_pool_trace_start(p, 0);
	static async_job j[5000];
	async_group g; async_group_init(&g);
	for (int i = 0; i < 5000; i++) { async_job_init(&j[i], job_fn, NULL); async_group_submit(p, &g, &j[i]); }
	async_group_wait_asleep(p, &g);
	mkdir("/tmp/rt-ro", 0555);
	const char *paths[] = { "/tmp", "/dev/full", "", "/proc/version", "/tmp/rt-ro/x.json", "/nonexistent/x.json", "/tmp/rt-ok.json" };
	for (unsigned i = 0; i < sizeof paths / sizeof *paths; i++) {
		int rc = async_pool_trace_write(p, paths[i]);
		printf("write(\"%s\"): %s\n", paths[i], rc ? async_strerror(rc) : "0");
	}
	async_pool_destroy(p);
	return 0;
}
