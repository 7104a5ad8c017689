/* SPDX-License-Identifier: MIT (see LICENSE) */
/* unload_mod.c: a module (as the Lua module is) with the core inside. */
#include "async/async.h"
static async_pool *p;
int mod_open(void)
{
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = 1; cfg.pin = 0;
	if (async_pool_create(&p, &cfg) != 0) return -1;
	return async_pool_trace_start(p, 0);
}
int mod_record(void) { return async_pool_trace_record(p, "x", 1, 2); }
void mod_close(void) { async_pool_destroy(p); }
