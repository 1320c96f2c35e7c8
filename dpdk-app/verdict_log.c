/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Verdict log transport. Each worker owns a single-producer/single-consumer
 * rte_ring of 64-byte elements toward the main lcore; an event of any length
 * (up to APP_LOG_MAX_EVENT) is one bulk enqueue of consecutive elements, the
 * first starting with its 32-bit length. A bulk enqueue is all or nothing,
 * so a full ring loses whole events (counted in log_ring_full), never parts,
 * and the worker never waits. The main lcore drains the rings and writes
 * one JSON object per line; SIGHUP reopens the file for logrotate.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_errno.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "app.h"

#define LOG_RING_ELEMS 16384      /* 1 MiB per worker */
#define DRAIN_BUDGET 4096         /* events per ring per call */

static uint8_t drain_buf[APP_LINEAR_BUF + APP_LOG_ELEM] __attribute__((aligned(64)));

struct rte_ring *app_log_ring_create(unsigned worker, int socket)
{
	char name[RTE_RING_NAMESIZE];

	snprintf(name, sizeof(name), "mry_log_%u", worker);
	return rte_ring_create_elem(name, APP_LOG_ELEM, LOG_RING_ELEMS, socket,
				    RING_F_SP_ENQ | RING_F_SC_DEQ);
}

void app_log_push(struct app_worker *w, const char *json, size_t len)
{
	uint32_t l32 = (uint32_t)len, n;

	if (mry_unlikely(len > APP_LOG_MAX_EVENT)) {
		w->st.log_too_long++;
		return;
	}
	n = (uint32_t)((4 + len + APP_LOG_ELEM - 1) / APP_LOG_ELEM);
	memcpy(w->logbuf, &l32, 4);
	memcpy(w->logbuf + 4, json, len);
	if (rte_ring_enqueue_bulk_elem(w->log, w->logbuf, APP_LOG_ELEM, n, NULL) == 0)
		w->st.log_ring_full++;
	else
		w->st.log_events++;
}

void app_log_write_line(struct app *a, const char *json, size_t len)
{
	if (a->log == NULL)
		return;
	if (fwrite(json, 1, len, a->log) != len || fputc('\n', a->log) == EOF)
		a->log_write_errors++;
	else
		a->log_written++;
}

unsigned app_log_drain(struct app *a)
{
	unsigned i, total = 0;

	for (i = 0; i < a->nb_workers; i++) {
		struct rte_ring *r = a->workers[i]->log;
		unsigned k;

		if (r == NULL)
			continue;
		for (k = 0; k < DRAIN_BUDGET; k++) {
			uint32_t len, n;

			if (rte_ring_dequeue_bulk_elem(r, drain_buf, APP_LOG_ELEM, 1, NULL) == 0)
				break;
			memcpy(&len, drain_buf, 4);
			n = (4 + len + APP_LOG_ELEM - 1) / APP_LOG_ELEM;
			/* The producer enqueued all n elements at once. */
			if (n > 1 && rte_ring_dequeue_bulk_elem(r, drain_buf + APP_LOG_ELEM,
								APP_LOG_ELEM, n - 1, NULL) == 0) {
				a->log_write_errors++;
				break;
			}
			app_log_write_line(a, (const char *)drain_buf + 4, len);
			total++;
		}
	}
	if (total != 0 && a->log != NULL)
		fflush(a->log);
	return total;
}

int app_log_open(struct app *a)
{
	if (a->opt.log_path[0] == '\0')
		return 0;
	a->log = fopen(a->opt.log_path, "a");
	if (a->log == NULL)
		return -errno;
	return 0;
}

void app_log_reopen(struct app *a)
{
	if (a->opt.log_path[0] == '\0')
		return;
	if (a->log != NULL)
		fclose(a->log);
	a->log = fopen(a->opt.log_path, "a");
	if (a->log == NULL)
		fprintf(stderr, "moray: cannot reopen log %s: %s (events are counted, not written)\n",
			a->opt.log_path, strerror(errno));
}

void app_log_close(struct app *a)
{
	if (a->log != NULL) {
		fflush(a->log);
		fclose(a->log);
		a->log = NULL;
	}
}
