/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The DPDK app's runtime blocklist (dpdk-app/blocklist.c) at its event
 * queue's limit: every change made through telemetry writes a "blocklist"
 * event, queued for the main lcore, the only writer of the verdict log.
 * When the queue is full the change is refused (an error to the operator,
 * blocklist.changes_refused, a log line), so no change ever happens
 * without its event. Built from the app's own source; the log writer is
 * replaced by a recorder, the clock by the TSC.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <rte_cycles.h>
#include <rte_rcu_qsbr.h>

#include "app.h"
#include "moray/blocklist.h"

struct app g_app;

static unsigned nb_lines;
static char last_line[1024];

/* the main lcore's log writer, recorded */
void app_log_write_line(struct app *a, const char *json, size_t len)
{
	(void)a;
	cr_assert(lt(sz, len, sizeof(last_line)));
	memcpy(last_line, json, len);
	last_line[len] = '\0';
	nb_lines++;
}

static void setup(void)
{
	size_t sz = rte_rcu_qsbr_get_memsize(1);

	memset(&g_app, 0, sizeof(g_app));
	g_app.tsc_hz = 1000000000ULL;
	g_app.tsc0 = rte_rdtsc();
	g_app.wall0_ns = 1700000000ULL * MRY_NS_PER_SEC;
	g_app.qsv = aligned_alloc(RTE_CACHE_LINE_SIZE,
				  (sz + RTE_CACHE_LINE_SIZE - 1) / RTE_CACHE_LINE_SIZE *
				  RTE_CACHE_LINE_SIZE);
	cr_assert(ne(ptr, g_app.qsv, NULL));
	cr_assert(eq(int, rte_rcu_qsbr_init(g_app.qsv, 1), 0));
	nb_lines = 0;
}

static void teardown(void)
{
	app_blocklist_stop(&g_app);
	free(g_app.qsv);
}

TestSuite(app_blocklist, .init = setup, .fini = teardown);

static int block_nth(unsigned i, char *err, size_t errlen)
{
	char pfx[64];

	snprintf(pfx, sizeof(pfx), "10.%u.%u.0/24", i / 256, i % 256);
	return app_blocklist_block(&g_app, pfx, strlen(pfx), 0, err, errlen);
}

Test(app_blocklist, a_full_event_queue_refuses_the_change_and_counts_it)
{
	char err[160] = "";
	size_t total;
	unsigned i, queued;

	/* changes until the queue is full: each queues its event */
	for (i = 0; block_nth(i, err, sizeof(err)) == 0; i++)
		cr_assert(lt(u32, i, 4096), "the queue never filled");
	queued = i;
	cr_log_info("%u changes queued before the refusal", queued);
	cr_assert(ge(u32, queued, 64), "the queue holds the documented 64");
	cr_assert(eq(int, block_nth(i, err, sizeof(err)), -EBUSY));
	cr_assert(ne(ptr, strstr(err, "try again"), NULL), "error: %s", err);
	cr_assert(eq(int, app_blocklist_unblock(&g_app, "10.0.0.0/24", 11, err, sizeof(err)),
		     -EBUSY));
	cr_assert(eq(u64, app_blocklist_refused(), 3));
	/* a refused change was not made: the list holds what was logged */
	app_blocklist_list(NULL, 0, &total);
	cr_assert(eq(sz, total, queued));
	cr_assert(eq(u32, nb_lines, 0), "only the main lcore writes the log");

	/* the main lcore writes every queued event; then changes go through */
	app_blocklist_drain(&g_app);
	cr_assert(eq(u32, nb_lines, queued));
	cr_assert(ne(ptr, strstr(last_line, "\"action\":\"block\""), NULL), "%s", last_line);
	cr_assert(eq(int, block_nth(i, err, sizeof(err)), 0), "%s", err);
	cr_assert(eq(int, app_blocklist_unblock(&g_app, "10.0.0.0/24", 11, err, sizeof(err)), 0));
	app_blocklist_drain(&g_app);
	cr_assert(eq(u32, nb_lines, queued + 2));
	cr_assert(ne(ptr, strstr(last_line, "\"action\":\"unblock\",\"prefix\":\"10.0.0.0/24\""),
		     NULL), "%s", last_line);
	cr_assert(eq(u64, app_blocklist_refused(), 3));
}

Test(app_blocklist, a_poll_writes_what_telemetry_queued_before_its_own_events)
{
	char err[160] = "";
	unsigned i;

	for (i = 0; block_nth(i, err, sizeof(err)) == 0; i++)
		;
	/* the poll empties the queue first, so its own events always fit */
	app_blocklist_poll(&g_app);
	cr_assert(eq(u32, nb_lines, i));
	app_blocklist_drain(&g_app);
	cr_assert(eq(u32, nb_lines, i), "nothing written twice");
	cr_assert(eq(u64, app_blocklist_refused(), 1));
}
