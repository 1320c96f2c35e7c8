/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Shared state of the moray application: options, lcore roles, per-lcore
 * contexts and the functions each dpdk-app/ file exports to the others. The
 * engine knows nothing of this; it sees frames, a port number and a clock.
 */
#ifndef MORAY_APP_H
#define MORAY_APP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include "moray/engine.h"
#include "moray/flow.h"
#include "moray/sigdb.h"

#define APP_MAX_PORTS 32
#define APP_MAX_WORKERS 64
#define APP_MAX_RX_LCORES 16
#define APP_MAX_BURST 256
#define APP_METRICS_INTERVAL_S 10    /* --metrics-file without --stats-interval */
#define APP_LINEAR_BUF 65536          /* multi-segment frames copied here */
#define APP_LOG_ELEM 64               /* verdict-log ring element, bytes */
#define APP_LOG_MAX_EVENT (APP_LINEAR_BUF - 4)
#define APP_TOP_MAX 32                /* top sources a worker publishes per key */
#define APP_TOP_KEYS 3                /* enum mry_flow_top_key: flows, data flows, bytes */

enum app_dispatch {
	APP_DISPATCH_AUTO = 0,
	APP_DISPATCH_SW,
	APP_DISPATCH_RSS,
	APP_DISPATCH_QUEUE,     /* option only: resolves to RSS without hashing */
};

/* Everything the command line or --config can set. */
struct app_options {
	uint64_t portmask;
	char db_path[1024];
	uint8_t db_pubkey[32];
	bool have_pubkey;
	enum mry_db_policy db_policy;
	uint64_t db_max_age_s;
	uint64_t hold_timeout_s;
	uint64_t hold_store_bytes;      /* total, split evenly between workers */
	uint16_t smtp_ports[MRY_ENGINE_MAX_SMTP_PORTS];
	uint8_t nb_smtp_ports;
	uint32_t max_flows;             /* total, split evenly between workers */
	struct mry_engine_config eng;   /* engine options (per worker): mry_engine_option_set() */
	uint32_t reasm_segments;        /* out-of-order segment buffers, total */
	char log_path[1024];
	enum mry_encrypted_policy encrypted;
	enum mry_bare_lf_policy bare_lf;   /* ambiguous end of data: reject (default) or strict */
	uint64_t alarm_no_clean_s;
	uint32_t burst;
	enum app_dispatch dispatch;
	uint32_t nb_rx_lcores;          /* sw dispatch */
	uint32_t nb_workers;            /* 0: every lcore left */
	uint64_t idle_exit_s;           /* 0: off */
	uint64_t stats_interval_s;      /* 0: off */
	char metrics_path[1024];        /* Prometheus text file, "" : off */
	char blocklist_path[1024];      /* --blocklist, "": none */
	uint32_t ring_size;
	uint32_t nb_mbufs;              /* 0: computed */
	uint16_t nb_rxd;
	uint16_t nb_txd;
	bool promisc;
};

/* A worker's own counters (rows APPW of the counter table, moray/counters.h). */
struct app_worker_stats {
	uint64_t rx_pkts;               /* frames handed to the engine */
	uint64_t tx_pkts;               /* frames handed to a tx path */
	uint64_t tx_dropped;            /* tx queue full */
	uint64_t ret_full_waits;        /* return ring full: waited for the rx lcore */
	uint64_t multiseg_copied;       /* multi-segment frames linearised */
	uint64_t oversize_dropped;      /* frames above APP_LINEAR_BUF */
	uint64_t emit_nombuf;           /* emitted frame without an mbuf */
	uint64_t emit_too_big;
	uint64_t emitted;
	uint64_t log_events;
	uint64_t log_ring_full;         /* verdict-log event lost: ring full */
	uint64_t log_too_long;
	uint64_t polls;
	uint64_t busy_polls;
};

/* What a worker publishes for the control thread (seqlock, single writer). */
struct app_snapshot {
	volatile uint32_t seq;
	struct app_worker_stats st;
	struct mry_counters eng;
};

/* A worker's top sources by each key (one of its two published buffers). */
struct app_top {
	uint64_t ns;                                    /* when it was taken */
	uint32_t nb[APP_TOP_KEYS];
	struct mry_flow_source src[APP_TOP_KEYS][APP_TOP_MAX];
};

/* One tx destination per port for a worker or rx lcore. */
struct app_txq {
	struct rte_eth_dev_tx_buffer *buf;
	uint16_t queue;
	uint64_t dropped;               /* counted by the tx-buffer error callback */
};

/*
 * Latency of a message's end: rx TSC of the burst that brought the frame
 * ending a judged message to the TSC when the worker knows that frame left
 * its tx buffer. Histogram of nanoseconds: values below 8 exactly, then 8
 * linear steps per power of two (error <= 12.5 %).
 */
#define APP_LAT_BUCKETS 512
#define APP_LAT_PENDING 256
struct app_lat {
	uint64_t hist[APP_LAT_BUCKETS];
	uint64_t n;
	uint64_t max_ns;
	uint64_t max_gap_ns;            /* longest time between two polls */
	uint64_t pending[APP_LAT_PENDING];   /* rx TSCs of ends not yet sent */
	uint32_t nb_pending;
};

struct app_worker {
	unsigned lcore;
	unsigned id;
	int socket;
	struct mry_engine *engine;
	struct rte_mempool *pool;
	struct rte_ring *in[APP_MAX_RX_LCORES];     /* sw: from each rx lcore */
	struct rte_ring *ret[APP_MAX_RX_LCORES];    /* sw via rx lcore: back to it */
	struct rte_ring *log;                       /* events toward the main lcore */
	struct app_txq txq[APP_MAX_PORTS];          /* direct tx */
	struct rte_mbuf *ret_pending[APP_MAX_RX_LCORES][APP_MAX_BURST];
	uint32_t nb_ret_pending[APP_MAX_RX_LCORES];
	struct app_worker_stats st;                 /* worker-private, live */
	struct app_lat lat;                         /* worker-private, read after it ended */
	struct app_snapshot snap MRY_CACHE_ALIGNED; /* published copy */
	/* top sources, once a second: top[gen & 1] is the latest complete one */
	struct app_top top[2];
	volatile uint32_t top_gen;                  /* 0: none yet */
	const struct mry_blocklist *bl;             /* the list its engine uses */
	volatile int ready;                         /* 1: engine up, -1: failed */
	volatile bool drained;                      /* in rings empty after stop */
	volatile bool done;
	uint8_t linear[APP_LINEAR_BUF] MRY_CACHE_ALIGNED;
	uint8_t logbuf[APP_LINEAR_BUF] MRY_CACHE_ALIGNED;
} MRY_CACHE_ALIGNED;

struct app_rx_stats {
	uint64_t rx_pkts;
	uint64_t rx_bytes;
	uint64_t ring_full;             /* dropped: worker ring full */
	uint64_t rx_throttled;          /* rx bursts cut short by ring space */
	uint64_t tx_pkts;
	uint64_t non_ip;                /* sent to worker 0 */
};

/*
 * Every counter the app shows, one snapshot: the rows of the counter table
 * (moray/counters.h) point into it, except PORT rows (struct rte_eth_stats,
 * one per port). Summed over workers and rx lcores, or one worker's.
 */
struct app_ring_gauges {
	uint64_t log_used;
	uint64_t in_used;
	uint64_t mbuf_avail;
};

struct app_db_gauges {
	uint64_t generation;
	uint64_t created;
	uint64_t signatures;
	uint64_t valid;
	uint64_t scanning;
	uint64_t changes;
	uint64_t offers;
	uint64_t rejected;
	uint64_t reclaimed;
};

struct app_counters {
	struct mry_counters eng;
	struct app_worker_stats w;
	struct app_rx_stats rx;
	struct app_ring_gauges ring;
	struct app_db_gauges db;
	uint64_t log_written;
	uint64_t log_write_errors;
	uint64_t alarm;
	uint64_t blocklist_refused;
};

/* One port's counters: its ethdev stats, and what an rx lcore's tx path lost. */
struct app_port_counters {
	struct rte_eth_stats eth;
	uint64_t sw_tx_dropped;
};

/* Sources of the app's counter table (def->src). */
enum app_counter_src {
	APP_SRC_ENG = 0,
	APP_SRC_APPW,
	APP_SRC_RX,
	APP_SRC_CTL,
	APP_SRC_RING,
	APP_SRC_PORT,
	APP_SRC_MAX,
};

struct app_rx_lcore {
	unsigned lcore;
	unsigned id;
	uint16_t ports[APP_MAX_PORTS];
	uint16_t nb_ports;
	struct app_txq txq[APP_MAX_PORTS];          /* tx via this lcore */
	struct app_rx_stats st;                     /* single writer, read racy (u64) */
	volatile bool stopped;                      /* saw STOP_RX: enqueues no more */
	volatile bool done;
} MRY_CACHE_ALIGNED;

/* What the main lcore publishes about the database and the alarm. */
struct app_ctl_snapshot {
	volatile uint32_t seq;
	uint64_t db_generation;         /* active generation number, 0: none */
	uint64_t db_created;            /* its creation time, unix seconds */
	uint32_t db_nb_sigs;
	bool db_valid;
	bool db_usable;                 /* workers can scan new messages */
	char db_reason[160];
	uint64_t db_changes;
	uint64_t db_offers;
	uint64_t db_rejected;
	uint64_t db_reclaimed;
	bool alarm;
	char alarm_reason[160];
	uint64_t idle_ns;
};

enum app_phase {
	APP_PHASE_INIT = 0,     /* workers create their engines, then wait */
	APP_PHASE_RUN,
	APP_PHASE_STOP_RX,      /* no more rx; workers drain their rings */
	APP_PHASE_SHUTDOWN,     /* workers answer unfinished messages, exit */
	APP_PHASE_EXIT,         /* rx lcores flush tx and exit */
};

struct app {
	struct app_options opt;
	enum app_dispatch dispatch;     /* resolved: SW or RSS */
	bool rss_hash;                  /* RSS: configure the device's hash (not --dispatch queue) */
	bool tx_via_rx;                 /* sw: workers hand frames back to rx lcores */
	uint16_t ports[APP_MAX_PORTS];
	uint16_t nb_ports;
	uint16_t pair[RTE_MAX_ETHPORTS];
	bool port_started[RTE_MAX_ETHPORTS];
	int16_t port_owner[RTE_MAX_ETHPORTS];      /* rx lcore owning a port (sw) */
	struct app_worker *workers[APP_MAX_WORKERS];
	uint32_t nb_workers;
	struct app_rx_lcore *rx[APP_MAX_RX_LCORES];
	uint32_t nb_rx;
	struct rte_mempool *pools[RTE_MAX_NUMA_NODES];
	uint32_t nb_mbufs;
	struct mry_sigdb_ctl *ctl;
	struct rte_rcu_qsbr *qsv;
	struct mry_engine_config ecfg;
	struct mry_blocklist *blocklist;   /* published list (RCU); blocklist.c owns it */
	volatile int phase;             /* enum app_phase */
	uint64_t tsc_hz;
	uint64_t tsc0;
	uint64_t wall0_ns;
	uint64_t start_ns;
	FILE *log;
	/* control-side state, published for telemetry */
	struct app_ctl_snapshot ctl_snap;
	uint64_t log_written;
	uint64_t log_write_errors;
	uint64_t last_smtp_pkts;
	uint64_t smtp_seen_ns;          /* last time SMTP packets were seen */
};

extern struct app g_app;

/* config.c */
void app_config_defaults(struct app_options *o);
/** Parse app options (argv after "--"). 0, or -EINVAL after printing one line. */
int app_config_parse(struct app_options *o, int argc, char **argv);
void app_config_usage(FILE *f);
void app_config_version(FILE *f);
/** Returns 1 for --help, 2 for --version, 0 otherwise. */
int app_config_early(int argc, char **argv);

/* time */
static inline uint64_t app_now_ns(void)
{
	uint64_t d = rte_rdtsc() - g_app.tsc0;
	return g_app.wall0_ns + d / g_app.tsc_hz * MRY_NS_PER_SEC +
		d % g_app.tsc_hz * MRY_NS_PER_SEC / g_app.tsc_hz;
}

/* port.c */
int app_port_check(struct app *a, char *err, size_t errlen);
bool app_port_rss_capable(uint16_t port, uint32_t nb_queues);
bool app_port_has_txq(uint16_t port, uint32_t nb_queues);
bool app_port_has_queues(uint16_t port, uint32_t nb_queues);
int app_port_setup(struct app *a, char *err, size_t errlen);
void app_port_close(struct app *a);
uint16_t app_port_nb_txq(const struct app *a);

/* ring.c: software dispatch */
int app_ring_setup(struct app *a, char *err, size_t errlen);
int app_rx_main(void *arg);
/** Symmetric hash of the IP pair of a frame; 0 for non-IP. */
uint32_t app_ring_ip_pair_hash(const uint8_t *frame, uint32_t len);
/** A tx buffer of @burst whose failures are counted in t->dropped. */
int app_txq_init(struct app_txq *t, uint16_t queue, uint32_t burst, int socket);

/* worker.c */
int app_worker_setup(struct app *a, char *err, size_t errlen);
int app_worker_main(void *arg);
void app_worker_snapshot_read(const struct app_worker *w, struct app_worker_stats *st,
			      struct mry_counters *eng);
/** One line: the worker's message-end latency percentiles and longest poll gap. */
void app_worker_print_latency(const struct app_worker *w, FILE *out);
/** The worker's latest top sources; false when it has published none yet. */
bool app_worker_top_read(const struct app_worker *w, struct app_top *out);

/* verdict_log.c */
struct rte_ring *app_log_ring_create(unsigned worker, int socket);
/** Copy one event into the worker's ring (all or nothing). Fast-path safe. */
void app_log_push(struct app_worker *w, const char *json, size_t len);
/** Drain every worker ring into the log file. Returns events written. */
unsigned app_log_drain(struct app *a);
int app_log_open(struct app *a);
void app_log_reopen(struct app *a);
void app_log_write_line(struct app *a, const char *json, size_t len);
void app_log_close(struct app *a);

/* control.c */
int app_control_db_start(struct app *a);
void app_control_loop(struct app *a);
void app_control_print_stats(struct app *a, FILE *f, bool final);
/** Rewrites --metrics-file (at exit, after the final statistics). */
void app_control_final_metrics(struct app *a);
void app_control_snapshot_read(const struct app *a, struct app_ctl_snapshot *out);
/** Async-signal-safe flags set by the handlers main.c installs. */
extern volatile sig_atomic_t app_stop_signal;
extern volatile sig_atomic_t app_hup_signal;

/* counters.c: the counter table over the app's snapshots */
#define APP_COUNTERS_ALL ((1u << APP_SRC_MAX) - 1)
#define APP_COUNTERS_WORKER ((1u << APP_SRC_ENG) | (1u << APP_SRC_APPW) | (1u << APP_SRC_RING))
const struct mry_counter_def *app_counters_table(size_t *nb);
/** One worker's counters and ring gauges (seqlock read). */
void app_counters_worker(struct app *a, unsigned i, struct app_counters *out);
/** Everything but the ports: workers and rx lcores summed, control values. */
void app_counters_total(struct app *a, struct app_counters *t);
/** Ethdev stats of every port that answers; returns how many. */
unsigned app_counters_ports(struct app *a, struct app_port_counters *es, uint16_t *ids);
/** Sources for the writers: those in @mask (bits of enum app_counter_src) present. */
void app_counters_srcs(struct mry_counter_src srcs[APP_SRC_MAX], const struct app_counters *t,
		       unsigned mask, const struct app_port_counters *es, const uint16_t *ids,
		       unsigned nb_ports);
/** Rewrites --metrics-file atomically; 0 or a negative errno (0 when off). */
int app_counters_write_metrics(struct app *a);

/* blocklist.c: the runtime blocklist, owned by the control side */
struct mry_blocklist_entry;
/** Loads --blocklist (if any); -EINVAL after printing the file's error. */
int app_blocklist_start(struct app *a);
/** Once a second (main lcore): file change, expiry, reclamation, events. */
void app_blocklist_poll(struct app *a);
/** Every turn of the main loop: writes the events telemetry changes queued. */
void app_blocklist_drain(struct app *a);
/** After the workers are done: writes the last events, frees every list. */
void app_blocklist_stop(struct app *a);
/** Telemetry changes refused because their events could not be queued. */
uint64_t app_blocklist_refused(void);
/**
 * Telemetry: block @prefix (not NUL-terminated), @seconds 0 = until unblocked.
 * -EBUSY (and unblock too): too many events wait for the main lcore, the
 * change was not made (see blocklist.c).
 */
int app_blocklist_block(struct app *a, const char *prefix, size_t len, uint64_t seconds,
			char *err, size_t errlen);
int app_blocklist_unblock(struct app *a, const char *prefix, size_t len,
			  char *err, size_t errlen);
/** Copies up to @max entries of the current list; *total: its size. */
size_t app_blocklist_list(struct mry_blocklist_entry *out, size_t max, size_t *total);

/* telemetry.c */
int app_telemetry_register(void);

#endif /* MORAY_APP_H */
