/* SPDX-License-Identifier: MIT (see LICENSE) */
/* trace_workload.h: the labelled jobs the trace tests run (test_trace.c,
 * trace_json.c): job i names its event "job-<i>". */
#ifndef ASYNC_TEST_TRACE_WORKLOAD_H
#define ASYNC_TEST_TRACE_WORKLOAD_H

#include <stdio.h>

#include "async/async.h"

struct labelled {
	async_job job;
	char name[16];
	volatile unsigned spin;
};

static void run_labelled(void *arg)
{
	struct labelled *l = arg;
	async_trace_label(l->name);
	for (unsigned i = 0; i < 200; i++)
		l->spin += i; /* long enough for the other worker to take some */
}

/* Names and initialises jobs[0..n-1]. */
static void init_labelled(struct labelled *jobs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		snprintf(jobs[i].name, sizeof jobs[i].name, "job-%u", i);
		async_job_init(&jobs[i].job, run_labelled, &jobs[i]);
	}
}

#endif
