/* SPDX-License-Identifier: MIT (see LICENSE) */
/* labels.c: labels an engine passes: a long name in a legacy 8-bit encoding
 * (a Windows-1252/Latin-1 asset path, as read from an old pack file), one in
 * UTF-8, NULL; each on its own job. Prints the names the trace kept, and the
 * file's names (check with check_trace.py). */
#include <stdio.h>
#include <string.h>
#include "async/async.h"
static const char *names[] = {
	/* "©©©...": 52 Latin-1 bytes 0xA9 */
	"\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9"
	"\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9",
	/* "Niveau-Ébène-..." in Latin-1, 60 bytes, the 48th an accented letter's continuation-looking byte */
	"terrain/\xc9\x62\xe8ne-\xe9t\xe9-\xe0-la-for\xeat-profonde-d\xe9j\xe0-vu-\xa7\xa7\xa7\xa7\xa7\xa7\xa7\xa7\xa7\xa7\xa7\xa7",
	"caf\xc3\xa9-\xe2\x82\xac-ok",
	NULL,
};
static void job_fn(void *arg) { async_trace_label(*(const char **)arg); }
static int show(void *ud, const async_trace_event *ev)
{
	(void)ud;
	if (ev->kind != ASYNC_TRACE_JOB) return 0;
	printf("kept %2zu bytes: \"", strlen(ev->name));
	for (const unsigned char *s = (const unsigned char *)ev->name; *s; s++)
		printf(*s < 0x80 ? "%c" : "\\x%02x", *s);
	printf("\"\n");
	return 0;
}
int main(void)
{
	async_pool *p;
	async_pool_config cfg = async_pool_config_default();
	cfg.workers = 1; cfg.pin = 0;
	async_pool_create(&p, &cfg);
	async_trace_label("outside a job"); /* nothing */
	async_pool_trace_start(p, 0);
	async_trace_label("outside a job, tracing");
	for (unsigned i = 0; i < sizeof names / sizeof *names; i++) {
		printf("label %u: %zu bytes\n", i, names[i] ? strlen(names[i]) : 0);
		async_group g; async_job j;
		async_group_init(&g);
		async_job_init(&j, job_fn, (void *)&names[i]);
		async_group_submit(p, &g, &j);
		async_group_wait_asleep(p, &g);
	}
	async_pool_trace_collect(p, show, NULL);
	async_pool_trace_write(p, "/tmp/rt-labels.json");
	async_pool_destroy(p);
	return 0;
}
