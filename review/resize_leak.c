/* SPDX-License-Identifier: MIT (see LICENSE) */
/* resize_leak.c: a profiler overlay whose "ring size" slider restarts the
 * trace with the size the user picked (or an engine that starts each capture
 * with a size from its config, alternating between two). Every start with
 * a size other than the current one sets all rings aside until the pool is
 * destroyed. RSS after N restarts, with the workers filling their rings.
 * usage: resize_leak RESTARTS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "async/async.h"

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kib = atol(line + 6);
	if (f) fclose(f);
	return kib;
}

static void nop(void *arg) { (void)arg; }

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 50;
	async_pool *p;
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = 2; cfg.pin = 0;
	if (async_pool_create(&p, &cfg) != 0) return 1;
	static async_job jobs[20000];
	printf("start: rss %ld KiB\n", rss_kib());
	for (int r = 0; r < n; r++) {
		async_pool_trace_start(p, r % 2 ? 16384 : 16000); /* 1.1 MiB a ring */
		async_group g;
		async_group_init(&g);
		for (int i = 0; i < 20000; i++) {
			async_job_init(&jobs[i], nop, NULL);
			async_group_submit(p, &g, &jobs[i]);
		}
		async_group_wait(p, &g); /* this thread helps: an outside ring too */
		async_pool_trace_stop(p);
		if ((r + 1) % 10 == 0)
			printf("after %d restarts: rss %ld KiB\n", r + 1, rss_kib());
	}
	async_pool_destroy(p);
	printf("destroyed: rss %ld KiB\n", rss_kib());
	return 0;
}
