/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * moray: the DPDK application. main() parses the application options (before
 * EAL, so usage errors answer at once), starts EAL, checks ports and lcores,
 * assigns roles (main lcore: control; sw dispatch: rx lcores then workers;
 * rss: workers only), sizes and prints memory, starts the workers, which
 * create their engines on their own lcore, and runs the control loop until
 * a signal or --idle-exit. Every failure before the workers run is one line
 * on stderr and exit status 1; nothing input can reach aborts.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include "app.h"

struct app g_app;
volatile sig_atomic_t app_stop_signal;
volatile sig_atomic_t app_hup_signal;

static int logtype_engine;
static bool eal_up;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		app_hup_signal = 1;
	else
		app_stop_signal = 1;
}

static void engine_log(enum mry_log_level level, const char *module, const char *msg,
		       void *ctx)
{
	static const uint32_t map[] = { RTE_LOG_ERR, RTE_LOG_WARNING, RTE_LOG_INFO,
					RTE_LOG_DEBUG };

	(void)ctx;
	rte_log(map[level <= MRY_LOG_DEBUG ? level : MRY_LOG_DEBUG], (uint32_t)logtype_engine,
		"moray.%s: %s\n", module, msg);
}

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Clean up first so the error is the last line the operator sees. */
	if (eal_up) {
		app_port_close(&g_app);
		rte_eal_cleanup();
	}
	fflush(stdout);
	fprintf(stderr, "moray: error: %s\n", msg);
	exit(1);
}

static void *zalloc_socket(size_t size, int socket)
{
	return rte_zmalloc_socket("moray", size, RTE_CACHE_LINE_SIZE, socket);
}

/* Roles: main = control; sw: nb_rx rx lcores then workers; rss: workers. */
static void assign_lcores(struct app *a)
{
	unsigned lc, nb_avail = rte_lcore_count() - 1, i = 0, k;
	bool rss_ok = true;

	if (rte_lcore_count() < 2)
		die("need at least 2 lcores (main + 1 worker), have %u: use -l/--lcores",
		    rte_lcore_count());
	a->dispatch = a->opt.dispatch;
	a->rss_hash = true;
	if (a->dispatch == APP_DISPATCH_QUEUE) {
		uint32_t want = a->opt.nb_workers != 0 ? a->opt.nb_workers : nb_avail;

		for (k = 0; k < a->nb_ports; k++)
			if (!app_port_has_queues(a->ports[k], want))
				die("--dispatch queue: port %u has fewer than %u rx or tx queues "
				    "(one per worker)", a->ports[k], want);
		a->dispatch = APP_DISPATCH_RSS;
		a->rss_hash = false;
	} else if (a->dispatch == APP_DISPATCH_AUTO || a->dispatch == APP_DISPATCH_RSS) {
		uint32_t want = a->opt.nb_workers != 0 ? a->opt.nb_workers : nb_avail;

		/* One worker polls every port itself: no RSS needed. */
		for (k = 0; k < a->nb_ports && want > 1; k++)
			rss_ok = rss_ok && app_port_rss_capable(a->ports[k], want);
		if (a->dispatch == APP_DISPATCH_RSS && !rss_ok)
			die("--dispatch rss: a port has no IP RSS or fewer than %u queues "
			    "(use --dispatch sw)", want);
		a->dispatch = rss_ok ? APP_DISPATCH_RSS : APP_DISPATCH_SW;
	}
	if (a->dispatch == APP_DISPATCH_SW) {
		a->nb_rx = MRY_MIN(a->opt.nb_rx_lcores, a->nb_ports);
		if (nb_avail < a->nb_rx + 1)
			die("--dispatch sw needs %u lcores (main, %u rx, 1 worker), have %u: "
			    "use -l/--lcores", a->nb_rx + 2, a->nb_rx, nb_avail + 1);
		a->nb_workers = nb_avail - a->nb_rx;
	} else {
		a->nb_rx = 0;
		a->nb_workers = nb_avail;
	}
	if (a->opt.nb_workers != 0) {
		if (a->opt.nb_workers > a->nb_workers)
			die("--workers %u: only %u lcores left for workers", a->opt.nb_workers,
			    a->nb_workers);
		a->nb_workers = a->opt.nb_workers;
	}
	if (a->nb_workers > APP_MAX_WORKERS)
		a->nb_workers = APP_MAX_WORKERS;
	a->tx_via_rx = false;
	if (a->dispatch == APP_DISPATCH_SW)
		for (k = 0; k < a->nb_ports; k++)
			if (!app_port_has_txq(a->ports[k], a->nb_workers))
				a->tx_via_rx = true;

	for (k = 0; k < RTE_MAX_ETHPORTS; k++)
		a->port_owner[k] = -1;
	RTE_LCORE_FOREACH_WORKER(lc) {
		int socket = (int)rte_lcore_to_socket_id(lc);

		if (socket < 0 || socket >= RTE_MAX_NUMA_NODES)
			socket = 0;
		if (i < a->nb_rx) {
			struct app_rx_lcore *rx = zalloc_socket(sizeof(*rx), socket);

			if (rx == NULL)
				die("no memory for rx lcore %u", lc);
			rx->lcore = lc;
			rx->id = i;
			a->rx[i] = rx;
		} else if (i < a->nb_rx + a->nb_workers) {
			struct app_worker *w = zalloc_socket(sizeof(*w), socket);

			if (w == NULL)
				die("no memory for worker on lcore %u (raise -m)", lc);
			w->lcore = lc;
			w->id = i - a->nb_rx;
			w->socket = socket;
			a->workers[w->id] = w;
		}
		i++;
	}
	for (k = 0; k < a->nb_ports && a->nb_rx != 0; k++) {
		struct app_rx_lcore *rx = a->rx[k % a->nb_rx];
		uint16_t p = a->ports[k];

		a->port_owner[p] = (int16_t)rx->id;
		rx->ports[rx->nb_ports++] = p;
	}
	if (a->dispatch == APP_DISPATCH_RSS)
		for (k = 0; k < a->nb_ports; k++)
			a->port_owner[a->ports[k]] = 0;
}

static void engine_config(struct app *a)
{
	struct mry_engine_config *c = &a->ecfg;
	uint32_t flows = a->opt.max_flows / a->nb_workers;

	*c = a->opt.eng;        /* defaults and the engine options, per worker */
	c->flow.max_flows = flows > 64 ? flows : 64;
	memcpy(c->smtp_ports, a->opt.smtp_ports, sizeof(c->smtp_ports));
	c->nb_smtp_ports = a->opt.nb_smtp_ports;
	c->encrypted = a->opt.encrypted;
	c->bare_lf = a->opt.bare_lf;
	c->hold_timeout_ns = a->opt.hold_timeout_s * MRY_NS_PER_SEC;
	c->hold_store_bytes = a->opt.hold_store_bytes / a->nb_workers;
	/* Pools that scale with flows follow the per-worker share. */
	c->smtp.max_sessions = c->flow.max_flows;
	c->reasm.seg_pool_count = MRY_MAX(a->opt.reasm_segments / a->nb_workers, 64u);
}

static double mib(uint64_t b)
{
	return (double)b / (1024.0 * 1024.0);
}

static uint64_t heap_used(void)
{
	struct rte_malloc_socket_stats s;
	uint64_t n = 0;
	int i;

	for (i = 0; i < RTE_MAX_NUMA_NODES; i++)
		if (rte_malloc_get_socket_stats(i, &s) == 0)
			n += s.heap_allocsz_bytes;
	return n;
}

static void print_memory(struct app *a, uint64_t heap_before)
{
	uint64_t pool = 0, rings = 0;
	unsigned i;

	for (i = 0; i < RTE_MAX_NUMA_NODES; i++)
		if (a->pools[i] != NULL)
			pool += (uint64_t)a->pools[i]->size *
				(a->pools[i]->header_size + a->pools[i]->elt_size +
				 a->pools[i]->trailer_size);
	if (a->dispatch == APP_DISPATCH_SW)
		rings = (uint64_t)a->nb_rx * a->nb_workers * a->opt.ring_size *
			sizeof(void *) * (a->tx_via_rx ? 2 : 1);
	printf("moray: memory: mbuf pool %u mbufs (%.1f MiB, cache 256/lcore); "
	       "dispatch rings %.1f MiB; log rings %.1f MiB\n", a->nb_mbufs, mib(pool),
	       mib(rings), mib((uint64_t)a->nb_workers * 16384 * APP_LOG_ELEM));
	printf("moray: memory: per worker: %u flows (%.1f MiB of flow entries), "
	       "%u reassembly segments, hold store %.1f MiB, hold timeout %" PRIu64 " s\n",
	       a->ecfg.flow.max_flows,
	       mib((uint64_t)a->ecfg.flow.max_flows * sizeof(struct mry_flow)),
	       a->ecfg.reasm.seg_pool_count, mib(a->ecfg.hold_store_bytes),
	       a->opt.hold_timeout_s);
	printf("moray: memory: engines use %.1f MiB of EAL heap; heap in use %.1f MiB\n",
	       mib(heap_used() - heap_before), mib(heap_used()));
}

/* mry_engine_pool_report(): one start-up line per engine pool. */
static void print_pool(void *ctx, const char *name, uint64_t count, uint64_t bytes)
{
	(void)ctx;
	printf("moray: pool %s %" PRIu64 " x %" PRIu64 " B = %.1f MiB per worker\n", name,
	       count, count != 0 ? bytes / count : 0, mib(bytes));
}

static void launch(struct app *a)
{
	unsigned i;
	bool failed = false;
	uint64_t heap_before = heap_used();

	for (i = 0; i < a->nb_rx; i++)
		if (rte_eal_remote_launch(app_rx_main, a->rx[i], a->rx[i]->lcore) != 0)
			die("cannot launch rx lcore %u", a->rx[i]->lcore);
	for (i = 0; i < a->nb_workers; i++)
		if (rte_eal_remote_launch(app_worker_main, a->workers[i],
					  a->workers[i]->lcore) != 0)
			die("cannot launch worker lcore %u", a->workers[i]->lcore);
	for (i = 0; i < a->nb_workers; i++) {
		int r;

		while ((r = __atomic_load_n(&a->workers[i]->ready, __ATOMIC_ACQUIRE)) == 0)
			rte_delay_us_sleep(1000);
		if (r < 0)
			failed = true;
	}
	if (failed) {
		__atomic_store_n(&a->phase, APP_PHASE_EXIT, __ATOMIC_RELEASE);
		rte_eal_mp_wait_lcore();
		die("cannot create the engine of every worker (raise -m, or lower "
		    "--max-flows/--hold-store-size)");
	}
	print_memory(a, heap_before);
	mry_engine_pool_report(a->workers[0]->engine, print_pool, NULL);
}

int main(int argc, char **argv)
{
	struct app *a = &g_app;
	char err[256];
	int dd, i, rc, early;
	struct sigaction sa;

	for (dd = 1; dd < argc; dd++)
		if (strcmp(argv[dd], "--") == 0)
			break;
	early = app_config_early(argc, argv);
	if (early == 1) {
		app_config_usage(stdout);
		return 0;
	}
	if (early == 2) {
		app_config_version(stdout);
		return 0;
	}
	app_config_defaults(&a->opt);
	{
		/* getopt wants argv[0] first. */
		int n = dd < argc ? argc - dd : 1;
		char **av = calloc((size_t)n + 1, sizeof(char *));

		if (av == NULL)
			return 1;
		av[0] = argv[0];
		for (i = 1; i < n; i++)
			av[i] = argv[dd + i];
		rc = app_config_parse(&a->opt, n, av);
		free(av);
		if (rc != 0)
			return 1;
	}

	rc = rte_eal_init(dd, argv);
	if (rc < 0) {
		fprintf(stderr, "moray: error: EAL initialisation failed: %s\n",
			rte_strerror(rte_errno));
		return 1;
	}
	eal_up = true;
	logtype_engine = rte_log_register_type_and_pick_level("moray.engine", RTE_LOG_INFO);
	if (logtype_engine < 0)
		logtype_engine = RTE_LOGTYPE_USER1;
	mry_log_set_handler(engine_log, NULL);

	a->tsc_hz = rte_get_tsc_hz();
	a->tsc0 = rte_rdtsc();
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		a->wall0_ns = (uint64_t)ts.tv_sec * MRY_NS_PER_SEC + (uint64_t)ts.tv_nsec;
	}
	a->phase = APP_PHASE_INIT;

	if (app_port_check(a, err, sizeof(err)) != 0)
		die("%s", err);
	assign_lcores(a);
	engine_config(a);
	/* the totals passed at parse time; each worker's share must too */
	if (mry_engine_config_check(&a->ecfg, NULL, err, sizeof(err)) != 0)
		die("%s (each of %u workers' share)", err, a->nb_workers);
	printf("moray %s: %u port(s), dispatch %s, %u rx lcore(s), %u worker(s)%s\n",
	       MORAY_VERSION, a->nb_ports,
	       a->dispatch == APP_DISPATCH_SW ? "sw" : a->nb_workers == 1 ? "direct" :
	       a->rss_hash ? "rss" : "queue",
	       a->nb_rx, a->nb_workers,
	       a->tx_via_rx ? ", tx through the rx lcores (ports have fewer tx queues than workers)" : "");

	{
		size_t sz = rte_rcu_qsbr_get_memsize(a->nb_workers);

		a->qsv = rte_zmalloc("moray_qsbr", sz, RTE_CACHE_LINE_SIZE);
		if (a->qsv == NULL || rte_rcu_qsbr_init(a->qsv, a->nb_workers) != 0)
			die("cannot create the RCU state for %u workers", a->nb_workers);
	}
	if (app_log_open(a) != 0)
		die("cannot open log %s: %s", a->opt.log_path, strerror(errno));
	if (app_control_db_start(a) != 0)
		die("cannot create the database state (out of memory)");
	if (app_blocklist_start(a) != 0)
		die("--blocklist %s: see the line above", a->opt.blocklist_path);
	if (app_port_setup(a, err, sizeof(err)) != 0)
		die("%s", err);
	if (a->dispatch == APP_DISPATCH_SW && app_ring_setup(a, err, sizeof(err)) != 0)
		die("%s", err);
	for (i = 0; i < (int)a->nb_rx && a->tx_via_rx; i++) {
		unsigned k;

		for (k = 0; k < a->rx[i]->nb_ports; k++) {
			uint16_t p = a->rx[i]->ports[k];

			if (app_txq_init(&a->rx[i]->txq[p], 0, a->opt.burst,
					 rte_eth_dev_socket_id(p) < 0 ? 0 :
					 rte_eth_dev_socket_id(p)) != 0)
				die("no memory for tx buffers");
		}
	}
	if (app_worker_setup(a, err, sizeof(err)) != 0)
		die("%s", err);
	if (app_telemetry_register() != 0)
		printf("moray: warning: telemetry commands not registered\n");

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	launch(a);
	a->start_ns = app_now_ns();
	__atomic_store_n(&a->phase, APP_PHASE_RUN, __ATOMIC_RELEASE);
	printf("moray: running (telemetry socket in %s, commands /moray/...)\n",
	       rte_eal_get_runtime_dir());
	fflush(stdout);

	app_control_loop(a);
	rte_eal_mp_wait_lcore();
	app_control_print_stats(a, stdout, true);
	app_control_final_metrics(a);
	for (i = 0; i < (int)a->nb_workers; i++)
		app_worker_print_latency(a->workers[i], stdout);
	for (i = 0; i < (int)a->nb_workers; i++) {
		mry_engine_destroy(a->workers[i]->engine, app_now_ns());
		a->workers[i]->engine = NULL;
	}
	app_blocklist_stop(a);
	while (app_log_drain(a) != 0)
		;
	app_log_close(a);
	app_port_close(a);
	mry_sigdb_ctl_destroy(a->ctl);
	rte_eal_cleanup();
	return 0;
}
