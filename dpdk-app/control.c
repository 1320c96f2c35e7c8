/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The main lcore's control loop: it never touches a packet. Every
 * millisecond it drains the verdict-log rings; every 100 ms it polls the
 * --db file (inode, size, mtime, ctime), offers a changed file to the
 * generation state once it has been stable for one poll (a file still being
 * written is also rejected by full validation, and re-offered when it
 * changes again), frees retired generations once every worker has passed a
 * quiescent point (rte_rcu_qsbr), writes a "db" event on every state change,
 * computes the alarm, and runs the shutdown sequence: stop rx, let workers
 * drain their rings, have them answer unfinished messages with 451, flush
 * the transmit paths and the log.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_rcu_qsbr.h>

#include "app.h"
#include "moray/event.h"

#define WATCH_MS 100
#define MAX_PENDING 64
#define STOP_DRAIN_MAX_MS 5000

struct pending_gen {
	struct mry_sigdb_gen *gen;
	uint64_t token;
};

struct db_watch {
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};

static struct pending_gen pending[MAX_PENDING];
static unsigned nb_pending;
static struct db_watch seen, offered;
static bool offered_valid;
static uint64_t db_version_logged = UINT64_MAX;

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * MRY_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/*
 * One verdict-log line from the control thread, flushed at once. Its buffer
 * is sized from the event's bound (event.h; test_event shows every event at
 * it fits), so @n is never 0 unless that proof broke: say so loudly.
 */
static void log_event(struct app *a, const char *what, const char *line, size_t n)
{
	if (n == 0) {
		printf("moray: BUG: a %s event did not fit its bound and was lost\n", what);
		fflush(stdout);
		return;
	}
	app_log_write_line(a, line, n);
	if (a->log != NULL)
		fflush(a->log);
}

void app_control_snapshot_read(const struct app *a, struct app_ctl_snapshot *out)
{
	uint32_t s1;

	do {
		s1 = __atomic_load_n(&a->ctl_snap.seq, __ATOMIC_ACQUIRE);
		if (s1 & 1)
			continue;
		memcpy(out, &a->ctl_snap, sizeof(*out));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while (s1 != __atomic_load_n(&a->ctl_snap.seq, __ATOMIC_RELAXED));
}

static void snap_begin(struct app *a)
{
	__atomic_store_n(&a->ctl_snap.seq, a->ctl_snap.seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static void snap_end(struct app *a)
{
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&a->ctl_snap.seq, a->ctl_snap.seq + 1, __ATOMIC_RELAXED);
}

/*
 * Publish the generation state; write a "db" event when it changed. @path
 * and @st name the offer that led here (NULL: a state change without one).
 */
static void db_publish(struct app *a, const char *path, const enum mry_sigdb_status *st)
{
	uint64_t ver = mry_sigdb_ctl_version(a->ctl);
	struct mry_sigdb_gen *act;
	struct mry_event_db d;
	bool valid;
	static char line[MRY_EVENT_DB_MAX];     /* main lcore only */

	if (ver == db_version_logged)
		return;
	db_version_logged = ver;
	act = mry_sigdb_ctl_active(a->ctl);
	valid = mry_sigdb_ctl_state(a->ctl) == MRY_DB_VALID;
	snap_begin(a);
	a->ctl_snap.db_generation = act != NULL ? mry_sigdb_gen_number(act) : 0;
	a->ctl_snap.db_created = act != NULL ? mry_sigdb_gen_created(act) : 0;
	a->ctl_snap.db_nb_sigs = act != NULL ? mry_sigdb_gen_nb_sigs(act) : 0;
	a->ctl_snap.db_valid = valid;
	a->ctl_snap.db_usable = mry_sigdb_ctl_usable(a->ctl) != NULL;
	snprintf(a->ctl_snap.db_reason, sizeof(a->ctl_snap.db_reason), "%s",
		 mry_sigdb_ctl_reason(a->ctl));
	a->ctl_snap.db_changes++;
	snap_end(a);

	d = (struct mry_event_db){
		.generation = a->ctl_snap.db_generation,
		.valid = valid,
		.reason = a->ctl_snap.db_reason,
		.file = path,
		.offer = st != NULL ? mry_sigdb_status_name(*st) : NULL,
	};
	log_event(a, "db", line, mry_event_db(line, sizeof(line), wall_ns(), &d));
	printf("moray: database generation %" PRIu64 " state %s (%s)%s\n",
	       a->ctl_snap.db_generation, valid ? "valid" : "invalid",
	       a->ctl_snap.db_reason,
	       valid || a->ctl_snap.db_usable ? "" : ": new messages are held");
	fflush(stdout);
}

static void retire(struct app *a, struct mry_sigdb_gen *g)
{
	if (g == NULL)
		return;
	if (nb_pending == MAX_PENDING) {
		/* Too many swaps in flight: wait for one grace period here. */
		rte_rcu_qsbr_synchronize(a->qsv, RTE_QSBR_THRID_INVALID);
		while (nb_pending > 0)
			mry_sigdb_gen_unref(pending[--nb_pending].gen);
		a->ctl_snap.db_reclaimed += MAX_PENDING;
	}
	pending[nb_pending].gen = g;
	pending[nb_pending].token = rte_rcu_qsbr_start(a->qsv);
	nb_pending++;
}

static void reclaim(struct app *a, bool force)
{
	unsigned i = 0;

	while (i < nb_pending) {
		if (force || rte_rcu_qsbr_check(a->qsv, pending[i].token, false) == 1) {
			mry_sigdb_gen_unref(pending[i].gen);
			pending[i] = pending[--nb_pending];
			snap_begin(a);
			a->ctl_snap.db_reclaimed++;
			snap_end(a);
		} else {
			i++;
		}
	}
}

static void offer(struct app *a, const char *path)
{
	struct mry_sigdb_gen *retired = NULL;
	enum mry_sigdb_status st;

	st = mry_sigdb_ctl_offer(a->ctl, path, (uint64_t)time(NULL), &retired);
	snap_begin(a);
	a->ctl_snap.db_offers++;
	if (st != MRY_SIGDB_OK && path != NULL)
		a->ctl_snap.db_rejected++;
	snap_end(a);
	if (st != MRY_SIGDB_OK && path != NULL)
		printf("moray: database %s not used: %s\n", path, mry_sigdb_status_name(st));
	retire(a, retired);
	db_publish(a, path, &st);
}

static bool watch_stat(const char *path, struct db_watch *w)
{
	struct stat sb;

	memset(w, 0, sizeof(*w));
	if (stat(path, &sb) != 0)
		return false;
	w->exists = true;
	w->dev = sb.st_dev;
	w->ino = sb.st_ino;
	w->size = sb.st_size;
	w->mtime = sb.st_mtim;
	w->ctime = sb.st_ctim;
	return true;
}

static bool watch_eq(const struct db_watch *x, const struct db_watch *y)
{
	return x->exists == y->exists && x->dev == y->dev && x->ino == y->ino &&
		x->size == y->size && x->mtime.tv_sec == y->mtime.tv_sec &&
		x->mtime.tv_nsec == y->mtime.tv_nsec && x->ctime.tv_sec == y->ctime.tv_sec &&
		x->ctime.tv_nsec == y->ctime.tv_nsec;
}

/* First offer at start: no debounce; a missing or bad file means "hold". */
int app_control_db_start(struct app *a)
{
	struct mry_sigdb_ctl_config cc = {
		.policy = a->opt.db_policy,
		.max_age_s = a->opt.db_max_age_s,
		.pubkey = a->opt.have_pubkey ? a->opt.db_pubkey : NULL,
		/* each new generation brings a scratch per worker, made here */
		.nb_scratch = a->nb_workers,
	};

	a->ctl = mry_sigdb_ctl_create(&cc);
	if (a->ctl == NULL)
		return -ENOMEM;
	if (a->opt.db_path[0] != '\0') {
		watch_stat(a->opt.db_path, &seen);
		offered = seen;
		offered_valid = true;
		offer(a, seen.exists ? a->opt.db_path : NULL);
	} else {
		offer(a, NULL);
	}
	return 0;
}

static void db_watch(struct app *a)
{
	struct db_watch now;

	mry_sigdb_ctl_tick(a->ctl, (uint64_t)time(NULL));
	if (a->opt.db_path[0] != '\0') {
		watch_stat(a->opt.db_path, &now);
		if (!watch_eq(&now, &seen)) {
			seen = now;          /* changed: wait until it is stable */
		} else if (!offered_valid || !watch_eq(&now, &offered)) {
			offered = now;
			offered_valid = true;
			offer(a, now.exists ? a->opt.db_path : NULL);
		}
	}
	db_publish(a, NULL, NULL);
}

static uint64_t rx_total(struct app *a)
{
	uint64_t n = 0;
	unsigned i;

	for (i = 0; i < a->nb_rx; i++)
		n += a->rx[i]->st.rx_pkts;
	for (i = 0; a->dispatch == APP_DISPATCH_RSS && i < a->nb_workers; i++) {
		struct app_worker_stats w;
		static struct mry_counters eng;

		app_worker_snapshot_read(a->workers[i], &w, &eng);
		n += w.rx_pkts;
	}
	return n;
}

static void update_alarm(struct app *a, uint64_t now)
{
	static struct app_counters t;
	uint64_t smtp, window = a->opt.alarm_no_clean_s * MRY_NS_PER_SEC, since;
	char reason[160] = "", line[MRY_EVENT_ALARM_MAX];
	bool alarm = false;

	app_counters_total(a, &t);
	smtp = t.eng.engine.pkts - t.eng.engine.pkts_non_smtp;
	if (smtp != a->last_smtp_pkts) {
		a->last_smtp_pkts = smtp;
		a->smtp_seen_ns = now;
	}
	since = MRY_MAX(t.eng.engine.last_clean_ns, a->start_ns);
	if (window != 0 && a->smtp_seen_ns != 0 && now - a->smtp_seen_ns < window &&
	    now > since && now - since >= window) {
		alarm = true;
		strcat(reason, "no_clean_message");
	}
	if (t.eng.engine.hold_msgs != 0) {
		alarm = true;
		strcat(reason, reason[0] != '\0' ? ",messages_held" : "messages_held");
	}
	if (!a->ctl_snap.db_valid) {
		alarm = true;
		strcat(reason, reason[0] != '\0' ? ",db_invalid" : "db_invalid");
	}
	if (alarm != a->ctl_snap.alarm || strcmp(reason, a->ctl_snap.alarm_reason) != 0) {
		snap_begin(a);
		a->ctl_snap.alarm = alarm;
		snprintf(a->ctl_snap.alarm_reason, sizeof(a->ctl_snap.alarm_reason), "%s",
			 reason);
		snap_end(a);
		log_event(a, "alarm", line,
			  mry_event_alarm(line, sizeof(line), wall_ns(), alarm, reason));
	}
}

/*
 * The stats line: the counters the table marks for it, by group, summed over
 * workers, rx lcores and ports; at the end, one line per worker as well.
 */
void app_control_print_stats(struct app *a, FILE *f, bool final)
{
	static struct app_counters t;
	static struct app_port_counters es[APP_MAX_PORTS];
	static uint16_t ids[APP_MAX_PORTS];
	struct mry_counter_src srcs[APP_SRC_MAX];
	const struct mry_counter_def *defs;
	unsigned i, nb_ports;
	size_t nb;

	defs = app_counters_table(&nb);
	app_counters_total(a, &t);
	nb_ports = app_counters_ports(a, es, ids);
	app_counters_srcs(srcs, &t, APP_COUNTERS_ALL, es, ids, nb_ports);
	fprintf(f, "moray: %s: ", final ? "final" : "stats");
	mry_counters_write_line(f, defs, nb, srcs, APP_SRC_MAX);
	for (i = 0; final && a->nb_workers > 1 && i < a->nb_workers; i++) {
		app_counters_worker(a, i, &t);
		app_counters_srcs(srcs, &t, APP_COUNTERS_WORKER, NULL, NULL, 0);
		fprintf(f, "moray: worker %u (lcore %u): ", i, a->workers[i]->lcore);
		mry_counters_write_line(f, defs, nb, srcs, APP_SRC_MAX);
	}
	fflush(f);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)ms * 1000000L };

	nanosleep(&ts, NULL);
}

static bool all_workers(struct app *a, size_t off)
{
	unsigned i;

	for (i = 0; i < a->nb_workers; i++)
		if (!__atomic_load_n((volatile bool *)((char *)a->workers[i] + off),
				     __ATOMIC_ACQUIRE))
			return false;
	return true;
}

static void set_phase(struct app *a, enum app_phase p)
{
	__atomic_store_n(&a->phase, (int)p, __ATOMIC_RELEASE);
}

static void shutdown_sequence(struct app *a)
{
	unsigned waited = 0, i;

	set_phase(a, APP_PHASE_STOP_RX);
	while (!all_workers(a, offsetof(struct app_worker, drained)) &&
	       waited < STOP_DRAIN_MAX_MS) {
		app_log_drain(a);
		sleep_ms(1);
		waited++;
	}
	set_phase(a, APP_PHASE_SHUTDOWN);
	while (!all_workers(a, offsetof(struct app_worker, done))) {
		app_log_drain(a);
		sleep_ms(1);
	}
	set_phase(a, APP_PHASE_EXIT);
	for (i = 0; i < a->nb_rx; i++)
		while (!__atomic_load_n(&a->rx[i]->done, __ATOMIC_ACQUIRE))
			sleep_ms(1);
	while (app_log_drain(a) != 0)
		;
}

/* --metrics-file: a failure is reported once per error code, then retried quietly. */
static void write_metrics(struct app *a)
{
	static int last_rc;
	int rc = app_counters_write_metrics(a);

	if (rc != 0 && rc != last_rc)
		fprintf(stderr, "moray: metrics file %s: %s\n", a->opt.metrics_path, strerror(-rc));
	last_rc = rc;
}

void app_control_final_metrics(struct app *a)
{
	write_metrics(a);
}

void app_control_loop(struct app *a)
{
	uint64_t last_watch = 0, last_stats, last_metrics, last_rx = UINT64_MAX, last_rx_change;
	uint64_t last_bl = 0;
	uint64_t metrics_ns = (a->opt.stats_interval_s != 0 ? a->opt.stats_interval_s :
			       APP_METRICS_INTERVAL_S) * MRY_NS_PER_SEC;
	uint64_t now = app_now_ns();
	const char *why = "signal";

	last_stats = last_metrics = last_rx_change = now;
	write_metrics(a);
	while (1) {
		uint64_t rx;

		app_log_drain(a);
		app_blocklist_drain(a);
		if (app_hup_signal) {
			app_hup_signal = 0;
			app_log_reopen(a);
			printf("moray: SIGHUP: log %s reopened\n", a->opt.log_path);
		}
		if (app_stop_signal)
			break;
		now = app_now_ns();
		if (now - last_watch >= WATCH_MS * MRY_NS_PER_MS) {
			last_watch = now;
			db_watch(a);
			reclaim(a, false);
			if (now - last_bl >= MRY_NS_PER_SEC) {
				last_bl = now;
				app_blocklist_poll(a);
			}
			update_alarm(a, now);
			rx = rx_total(a);
			if (rx != last_rx) {
				last_rx = rx;
				last_rx_change = now;
			}
			snap_begin(a);
			a->ctl_snap.idle_ns = now - last_rx_change;
			snap_end(a);
			if (a->opt.idle_exit_s != 0 &&
			    now - last_rx_change >= a->opt.idle_exit_s * MRY_NS_PER_SEC) {
				why = "idle";
				break;
			}
		}
		if (a->opt.stats_interval_s != 0 &&
		    now - last_stats >= a->opt.stats_interval_s * MRY_NS_PER_SEC) {
			last_stats = now;
			app_control_print_stats(a, stdout, false);
		}
		if (a->opt.metrics_path[0] != '\0' && now - last_metrics >= metrics_ns) {
			last_metrics = now;
			write_metrics(a);
		}
		sleep_ms(1);
	}
	printf("moray: stopping (%s): draining, answering unfinished messages\n", why);
	fflush(stdout);
	shutdown_sequence(a);
	reclaim(a, true);
}
