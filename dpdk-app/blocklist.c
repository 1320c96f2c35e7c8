/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The runtime blocklist. The control side owns the current list: the
 * prefixes of --blocklist FILE (loaded at start, reloaded when the file's
 * inode, size or mtime changes; a bad file keeps the old list and logs the
 * line-numbered error) plus those added at runtime through telemetry
 * (/moray/block,<prefix>[,seconds]; /moray/unblock,<prefix>), pruned when
 * they expire. Lists are immutable (moray/blocklist.h): every change builds
 * a new one and publishes it with one pointer store; each worker installs
 * it in its engine at its quiescent point and the old list is freed after
 * two RCU grace periods (the first proves every worker has loaded the new
 * pointer at its next quiescent point, the second that it has installed it
 * and dropped the old one). The main lcore and the telemetry thread both
 * change the list, under one mutex; neither is on the fast path. Each
 * change writes a "blocklist" event.
 *
 * Only the main lcore writes the verdict log, so a change made by the
 * telemetry thread queues its event (formatted by event_log.c into a buffer
 * its bound, MRY_EVENT_BLOCKLIST_MAX, always fits) and the main lcore
 * writes the queue out on every turn of its loop (app_blocklist_drain). No
 * change is made without its event: a block or unblock that finds the queue
 * full (MAX_EVENTS changes the main lcore has not written yet) is refused
 * with an error the operator sees, counted in blocklist.changes_refused and
 * logged (at most once a second); the main lcore's own changes (file
 * reload, expiry) are made after it has emptied the queue.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <rte_rcu_qsbr.h>

#include "app.h"
#include "moray/blocklist.h"
#include "moray/event.h"

#define MAX_RETIRED 64
#define MAX_EVENTS 64          /* changes between two turns of the main loop */
#define EVENT_LEN MRY_EVENT_BLOCKLIST_MAX
#define MAIN_EVENTS 2           /* events one poll queues: a reload, a prune */

static_assert(MAX_EVENTS >= MAIN_EVENTS, "a poll's own events fit the emptied queue");

struct retired {
	struct mry_blocklist *bl;
	uint64_t token;
	unsigned stage;         /* grace periods passed */
};

struct bl_state {
	pthread_mutex_t lock;
	struct mry_blocklist *file;     /* the file's prefixes (NULL: none) */
	struct mry_blocklist_entry *rt; /* runtime prefixes */
	size_t nb_rt, cap_rt;
	struct mry_blocklist *cur;      /* file + runtime: what workers use */
	struct retired ret[MAX_RETIRED];
	unsigned nb_ret;
	char ev[MAX_EVENTS][EVENT_LEN]; /* events toward the log (main lcore) */
	size_t ev_len[MAX_EVENTS];
	unsigned nb_ev;                 /* written under the lock, peeked without */
	uint64_t refused;               /* changes refused: queue full */
	uint64_t refused_logged;        /* refused when last logged */
	uint64_t refused_log_ns;
	bool watched;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	uint64_t changes;
};

static struct bl_state S = { .lock = PTHREAD_MUTEX_INITIALIZER };

static const struct mry_alloc *alloc(void)
{
	return mry_alloc_default();
}

static bool same_prefix(const struct mry_blocklist_entry *x, const struct mry_blocklist_entry *y)
{
	return x->ip_version == y->ip_version && x->prefix_len == y->prefix_len &&
		memcmp(x->addr, y->addr, sizeof(x->addr)) == 0;
}

/*
 * Under the lock: queue a "blocklist" event (event_log.c formats it) for the
 * main lcore. Callers make room first (room_for_event, or the main lcore's
 * drain) and the buffer fits the event's bound (test_event), so neither
 * check below can fail unless that reasoning broke: say so loudly.
 */
static void queue_event(const char *action, const struct mry_blocklist_entry *e, size_t entries)
{
	size_t n = 0;

	if (S.nb_ev < MAX_EVENTS)
		n = mry_event_blocklist(S.ev[S.nb_ev], EVENT_LEN, app_now_ns(), action, e,
					entries);
	if (n == 0) {
		printf("moray: BUG: blocklist %s event lost (%s)\n", action,
		       S.nb_ev < MAX_EVENTS ? "longer than its bound" : "queue full");
		fflush(stdout);
		return;
	}
	S.ev_len[S.nb_ev] = n;
	__atomic_store_n(&S.nb_ev, S.nb_ev + 1, __ATOMIC_RELEASE);
}

/*
 * Under the lock, before a telemetry change: true when its event can be
 * queued; otherwise the change is refused (counted, logged once a second).
 */
static bool room_for_event(char *err, size_t errlen)
{
	uint64_t now;

	if (S.nb_ev < MAX_EVENTS)
		return true;
	S.refused++;
	snprintf(err, errlen, "%u blocklist events wait for the log writer; change not made, "
		 "try again", MAX_EVENTS);
	now = app_now_ns();
	if (S.refused_log_ns == 0 || now - S.refused_log_ns >= MRY_NS_PER_SEC) {
		printf("moray: blocklist: %" PRIu64 " changes refused: %u events wait for the "
		       "main lcore to write them (blocklist.changes_refused)\n",
		       S.refused - S.refused_logged, MAX_EVENTS);
		fflush(stdout);
		S.refused_log_ns = now;
		S.refused_logged = S.refused;
	}
	return false;
}

/* Under the lock, on the main lcore: write the queued events. */
static void write_events(struct app *a)
{
	unsigned i;

	for (i = 0; i < S.nb_ev; i++)
		app_log_write_line(a, S.ev[i], S.ev_len[i]);
	if (S.nb_ev != 0 && a->log != NULL)
		fflush(a->log);
	__atomic_store_n(&S.nb_ev, 0, __ATOMIC_RELEASE);
}

/* Under the lock: the old list waits for two grace periods. */
static void retire(struct app *a, struct mry_blocklist *bl)
{
	if (bl == NULL)
		return;
	if (S.nb_ret == MAX_RETIRED) {
		/* Too many changes in flight: wait here (control path only). */
		rte_rcu_qsbr_synchronize(a->qsv, RTE_QSBR_THRID_INVALID);
		rte_rcu_qsbr_synchronize(a->qsv, RTE_QSBR_THRID_INVALID);
		while (S.nb_ret > 0)
			mry_blocklist_free(S.ret[--S.nb_ret].bl);
	}
	S.ret[S.nb_ret++] = (struct retired){ bl, rte_rcu_qsbr_start(a->qsv), 0 };
}

static void reclaim(struct app *a, bool force)
{
	unsigned i = 0;

	while (i < S.nb_ret) {
		struct retired *r = &S.ret[i];

		if (!force && rte_rcu_qsbr_check(a->qsv, r->token, false) != 1) {
			i++;
			continue;
		}
		if (!force && ++r->stage < 2) {
			r->token = rte_rcu_qsbr_start(a->qsv);
			i++;
			continue;
		}
		mry_blocklist_free(r->bl);
		*r = S.ret[--S.nb_ret];
	}
}

/*
 * Under the lock: build file + runtime entries (runtime ones expired at
 * @now dropped) and publish it. 0 or a negative errno (the current list
 * stays).
 */
static int rebuild(struct app *a, uint64_t now)
{
	size_t nf = mry_blocklist_count(S.file), i, n = 0, k;
	struct mry_blocklist_entry *all;
	struct mry_blocklist *bl = NULL;
	char err[128];

	for (i = k = 0; i < S.nb_rt; i++)
		if (S.rt[i].expires_ns == 0 || now < S.rt[i].expires_ns)
			S.rt[k++] = S.rt[i];
	S.nb_rt = k;
	all = malloc((nf + S.nb_rt + 1) * sizeof(*all));
	if (all == NULL)
		return -ENOMEM;
	for (i = 0; i < nf; i++)
		all[n++] = *mry_blocklist_entry_at(S.file, i);
	for (i = 0; i < S.nb_rt; i++)
		all[n++] = S.rt[i];
	if (n != 0) {
		bl = mry_blocklist_build(alloc(), all, n, err, sizeof(err));
		if (bl == NULL) {
			free(all);
			printf("moray: blocklist not changed: %s\n", err);
			return -ENOMEM;
		}
	}
	free(all);
	retire(a, S.cur);
	S.cur = bl;
	__atomic_store_n(&a->blocklist, bl, __ATOMIC_RELEASE);
	S.changes++;
	return 0;
}

/* Under the lock: (re)load the file; false when it is bad (list kept). */
static bool load_file(struct app *a, bool at_start)
{
	struct mry_blocklist *bl;
	char err[256];
	struct stat sb;

	if (stat(a->opt.blocklist_path, &sb) == 0) {
		S.watched = true;
		S.dev = sb.st_dev;
		S.ino = sb.st_ino;
		S.size = sb.st_size;
		S.mtime = sb.st_mtim;
	}
	bl = mry_blocklist_load_file(alloc(), a->opt.blocklist_path, err, sizeof(err));
	if (bl == NULL) {
		printf("moray: blocklist %s %s: %s\n", a->opt.blocklist_path,
		       at_start ? "not loaded" : "not reloaded, previous list kept", err);
		fflush(stdout);
		return false;
	}
	mry_blocklist_free(S.file);
	S.file = bl;
	if (rebuild(a, app_now_ns()) != 0)
		return false;
	printf("moray: blocklist %s: %zu prefixes\n", a->opt.blocklist_path,
	       mry_blocklist_count(S.cur));
	fflush(stdout);
	queue_event("load", NULL, mry_blocklist_count(S.cur));
	return true;
}

int app_blocklist_start(struct app *a)
{
	int rc = 0;

	if (a->opt.blocklist_path[0] == '\0')
		return 0;
	pthread_mutex_lock(&S.lock);
	if (!load_file(a, true))
		rc = -EINVAL;
	pthread_mutex_unlock(&S.lock);
	return rc;
}

void app_blocklist_drain(struct app *a)
{
	if (__atomic_load_n(&S.nb_ev, __ATOMIC_ACQUIRE) == 0)
		return;
	pthread_mutex_lock(&S.lock);
	write_events(a);
	pthread_mutex_unlock(&S.lock);
}

uint64_t app_blocklist_refused(void)
{
	uint64_t n;

	pthread_mutex_lock(&S.lock);
	n = S.refused;
	pthread_mutex_unlock(&S.lock);
	return n;
}

void app_blocklist_poll(struct app *a)
{
	uint64_t now = app_now_ns();
	struct mry_blocklist *pruned = NULL;
	struct stat sb;

	pthread_mutex_lock(&S.lock);
	write_events(a);        /* room for this poll's own events */
	if (a->opt.blocklist_path[0] != '\0' && stat(a->opt.blocklist_path, &sb) == 0 &&
	    (!S.watched || sb.st_dev != S.dev || sb.st_ino != S.ino || sb.st_size != S.size ||
	     sb.st_mtim.tv_sec != S.mtime.tv_sec || sb.st_mtim.tv_nsec != S.mtime.tv_nsec))
		load_file(a, false);
	/* expired prefixes leave the list (match() already ignores them) */
	if (S.cur != NULL && mry_blocklist_prune(alloc(), S.cur, now, &pruned) > 0) {
		mry_blocklist_free(pruned);
		if (rebuild(a, now) == 0)
			queue_event("unblock", NULL, mry_blocklist_count(S.cur));
	}
	reclaim(a, false);
	write_events(a);
	pthread_mutex_unlock(&S.lock);
}

void app_blocklist_stop(struct app *a)
{
	pthread_mutex_lock(&S.lock);
	write_events(a);
	__atomic_store_n(&a->blocklist, NULL, __ATOMIC_RELEASE);
	reclaim(a, true);
	mry_blocklist_free(S.cur);
	mry_blocklist_free(S.file);
	free(S.rt);
	S.cur = S.file = NULL;
	S.rt = NULL;
	S.nb_rt = S.cap_rt = 0;
	pthread_mutex_unlock(&S.lock);
}

int app_blocklist_block(struct app *a, const char *prefix, size_t len, uint64_t seconds,
			char *err, size_t errlen)
{
	struct mry_blocklist_entry e;
	size_t i;
	int rc;

	if (mry_blocklist_parse_entry(prefix, len, &e, err, errlen) != 0)
		return -EINVAL;
	e.expires_ns = seconds != 0 ? app_now_ns() + seconds * MRY_NS_PER_SEC : 0;
	pthread_mutex_lock(&S.lock);
	if (!room_for_event(err, errlen)) {
		pthread_mutex_unlock(&S.lock);
		return -EBUSY;
	}
	for (i = 0; i < S.nb_rt && !same_prefix(&S.rt[i], &e); i++)
		;
	if (i == S.nb_rt) {
		if (S.nb_rt == S.cap_rt) {
			size_t cap = S.cap_rt != 0 ? S.cap_rt * 2 : 64;
			void *p = cap <= MRY_BLOCKLIST_MAX_ENTRIES ?
				realloc(S.rt, cap * sizeof(*S.rt)) : NULL;

			if (p == NULL) {
				pthread_mutex_unlock(&S.lock);
				snprintf(err, errlen, "runtime blocklist full");
				return -ENOSPC;
			}
			S.rt = p;
			S.cap_rt = cap;
		}
		S.nb_rt++;
	}
	S.rt[i] = e;
	rc = rebuild(a, app_now_ns());
	if (rc == 0)
		queue_event("block", &e, mry_blocklist_count(S.cur));
	else
		snprintf(err, errlen, "cannot build the new list");
	pthread_mutex_unlock(&S.lock);
	return rc;
}

int app_blocklist_unblock(struct app *a, const char *prefix, size_t len,
			  char *err, size_t errlen)
{
	struct mry_blocklist_entry e;
	struct mry_blocklist *nf = NULL;
	bool found = false;
	size_t i;
	int rc;

	if (mry_blocklist_parse_entry(prefix, len, &e, err, errlen) != 0)
		return -EINVAL;
	pthread_mutex_lock(&S.lock);
	if (!room_for_event(err, errlen)) {
		pthread_mutex_unlock(&S.lock);
		return -EBUSY;
	}
	for (i = 0; i < S.nb_rt; i++) {
		if (same_prefix(&S.rt[i], &e)) {
			S.rt[i] = S.rt[--S.nb_rt];
			found = true;
			break;
		}
	}
	/* a prefix of the file stays out until the file changes */
	if (S.file != NULL && mry_blocklist_remove(alloc(), S.file, &e, &nf) == 0) {
		mry_blocklist_free(S.file);
		S.file = nf;
		found = true;
	}
	if (!found) {
		pthread_mutex_unlock(&S.lock);
		snprintf(err, errlen, "not in the blocklist");
		return -ENOENT;
	}
	rc = rebuild(a, app_now_ns());
	if (rc == 0)
		queue_event("unblock", &e, mry_blocklist_count(S.cur));
	else
		snprintf(err, errlen, "cannot build the new list");
	pthread_mutex_unlock(&S.lock);
	return rc;
}

size_t app_blocklist_list(struct mry_blocklist_entry *out, size_t max, size_t *total)
{
	size_t i, n;

	pthread_mutex_lock(&S.lock);
	*total = mry_blocklist_count(S.cur);
	n = MRY_MIN(*total, max);
	for (i = 0; i < n; i++)
		out[i] = *mry_blocklist_entry_at(S.cur, i);
	pthread_mutex_unlock(&S.lock);
	return n;
}
