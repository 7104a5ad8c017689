/* SPDX-License-Identifier: MIT (see LICENSE) */
/* main.c: the six-call program of docs/c-api.md, built against an install. */
#include <async/async.h>
#include <stdio.h>

static int ran;
static void hello(void *arg) { ran = *(int *)arg; }

int main(void)
{
	async_pool_config cfg = async_pool_config_default();
	async_pool *pool;
	if (async_pool_create(&pool, &cfg) != 0)
		return 1;
	int value = 42;
	async_job job;
	async_job_init(&job, hello, &value);
	async_pool_submit(pool, &job);
	async_pool_destroy(pool); /* runs what is queued, then joins */
	printf("consumer ran job: %d\n", ran);
	return ran == 42 ? 0 : 1;
}
