/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The per-worker engine: decode -> flow -> TCP reassembly -> SMTP -> MIME ->
 * scan -> verdict, run to completion on one thread. The host (the DPDK app,
 * moray-scan, tests) hands in frames with the port they arrived on and the
 * time, and gets back what to do with the frame; injected or released frames
 * and verdict-log events come out through callbacks. No DPDK here.
 */
#ifndef MORAY_ENGINE_H
#define MORAY_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "moray/common.h"
#include "moray/counters.h"
#include "moray/flow.h"
#include "moray/ipfrag.h"
#include "moray/mime.h"
#include "moray/sigdb.h"
#include "moray/smtp.h"
#include "moray/tcp_reasm.h"

#define MRY_ENGINE_MAX_SMTP_PORTS 16

/* What the host does with the frame it handed in. */
enum mry_pkt_verdict {
	MRY_PKT_FORWARD = 0,  /* send it out the paired port, unchanged */
	MRY_PKT_DROP,         /* free it (withheld, conflicting, invalid, blocked) */
};

/* Where an emitted frame goes. */
enum mry_emit_dir {
	MRY_EMIT_TO_CLIENT = 0,  /* out the port the client's packets arrive on */
	MRY_EMIT_TO_SERVER,      /* toward the server: out the pair of the client's port */
};

/* inside DATA, a "." line some server takes as end of data (SMTP smuggling) */
enum mry_bare_lf_policy {
	MRY_BARE_LF_REJECT = 0,  /* default: 554 5.5.2 to the client, server reset, verdict "evasion" */
	MRY_BARE_LF_STRICT,      /* judge the RFC 5321 message, flag it, forward if clean */
};

enum mry_encrypted_policy {
	MRY_ENCRYPTED_PASS = 0,  /* default: pass and count (verdict "encrypted") */
	MRY_ENCRYPTED_BLOCK,     /* refuse: the 220 to STARTTLS is replaced by 454 */
};

/* A connection's endpoints, client first, as inet_ntop prints them. */
struct mry_engine_conn {
	char src[48];
	char dst[48];
	uint16_t sport;
	uint16_t dport;
};

enum mry_part_phase {
	MRY_PART_BEGIN = 0,
	MRY_PART_DATA,
	MRY_PART_END,
};

struct mry_engine_io {
	/*
	 * Emit a frame the engine built or released (copy it; @frame is valid
	 * only during the call). @port is the client's ingress port; the host
	 * maps @dir to the tx port.
	 */
	void (*emit)(void *ctx, enum mry_emit_dir dir, uint16_t client_port,
		     const uint8_t *frame, uint32_t len);
	/* One verdict-log event as a JSON object without newline (copy it). */
	void (*event)(void *ctx, const char *json, size_t len);
	/*
	 * Optional forensics hooks (moray-scan), NULL in the app: each TCP
	 * direction's in-order bytes, each message as the server receives it
	 * (@end true once, with len 0, at its end), decoded MIME leaves.
	 */
	void (*stream)(void *ctx, const struct mry_engine_conn *c, bool from_client,
		       const uint8_t *data, uint32_t len);
	void (*message)(void *ctx, const struct mry_engine_conn *c, uint32_t msg_index,
			const uint8_t *data, uint32_t len, bool end);
	void (*part)(void *ctx, const struct mry_engine_conn *c, uint32_t msg_index,
		     const struct mry_mime_part_info *pi, enum mry_part_phase phase,
		     const uint8_t *data, uint32_t len);
};

struct mry_engine_config {
	uint16_t smtp_ports[MRY_ENGINE_MAX_SMTP_PORTS];
	uint8_t nb_smtp_ports;           /* default {25, 587, 2525} */
	unsigned decode_flags;           /* MRY_DECODE_F_* */
	enum mry_encrypted_policy encrypted;
	uint64_t hold_timeout_ns;        /* default 240 s */
	uint64_t hold_store_bytes;       /* default 256 MiB */
	uint32_t hold_max_msgs;          /* hold ring entries, default 4096 */
	uint32_t max_msgs;               /* messages in progress per worker; 0 (default):
					  * max_flows / 16, at least 64 (memory: see
					  * mry_engine_create). The envelope, MIME parser
					  * and scan-stream pools derive from it */
	uint64_t shed_log_interval_ns;   /* aggregation interval of "shed" events, default 10 s */
	struct mry_flow_config flow;
	struct mry_reasm_config reasm;
	struct mry_smtp_config smtp;
	struct mry_mime_config mime;
	struct mry_ipfrag_config ipfrag;
	uint32_t max_frame;              /* largest frame a reassembled TCP datagram may go out as */
	bool track_all_tcp;              /* forensics: reassemble every TCP flow, not only SMTP ports */
	enum mry_bare_lf_policy bare_lf; /* default reject */
};

/* Fills every field with its default. */
void mry_engine_config_defaults(struct mry_engine_config *cfg);

/* Range limits of the options both moray and moray-scan take (engine_check.c). */
#define MRY_ENGINE_HOLD_STORE_MIN (1ULL << 20)    /* --hold-store-size: 64 hold chunks */
#define MRY_ENGINE_HOLD_STORE_MAX (1ULL << 40)
#define MRY_ENGINE_HOLD_TIMEOUT_MAX_S 599u        /* below the client's 10 min */
#define MRY_ENGINE_MAX_FLOWS_MAX (1u << 26)
#define MRY_ENGINE_DB_MAX_AGE_MIN_S 60u           /* --db-max-age, unless 0 */

/**
 * Refuse a configuration that would stop mail or contradict itself, before
 * anything starts: SMTP ports (at least one, 1-65535, none twice), a hold
 * store that cannot hold messages (--hold-store-size, which 0 turns into a
 * tempfail for every message), a hold timeout that ends after the client
 * stopped waiting (RFC 5321 §4.5.3.2.6: 10 minutes for the reply to the end
 * of data), an empty flow table, and with @db (may be NULL) a database
 * age limit so short that every database is refused (--db-max-age).
 * Totals are checked (the app splits them between workers afterwards).
 * @return 0, or -EINVAL with one line in @why naming the command-line option
 * and its allowed range.
 */
int mry_engine_config_check(const struct mry_engine_config *cfg,
			    const struct mry_sigdb_ctl_config *db, char *why, size_t len);

/*
 * The flood options both binaries take (FLOOD-SPEC: the same names in moray,
 * moray-scan and --config keys): max-flows, max-half-open, max-per-source,
 * max-msgs, timeout-half-open, timeout-greeting, timeout-cmd,
 * timeout-data-init, timeout-data, min-data-rate, timeout-data-end,
 * timeout-closing, emergency-high, emergency-low, emergency-timeout-pct,
 * shed-log-interval.
 * (--blocklist FILE is loaded by each host: mry_blocklist_load_file() and
 * mry_engine_set_blocklist().)
 */

/**
 * Set engine option @name (without leading dashes) from @value.
 * @return 0 when set, -ENOENT when @name is not an engine option (the host
 * tries its own), -EINVAL with one line in @why naming the option and its
 * allowed range when @value is not valid.
 */
int mry_engine_option_set(struct mry_engine_config *cfg, const char *name,
			  const char *value, char *why, size_t len);
/** True when @name (without dashes) is an engine option taking a value. */
bool mry_engine_option_known(const char *name);
/** Usage lines of the engine options ("  --max-flows N  ...\n"), each with its default. */
void mry_engine_option_usage(FILE *out);

/* struct mry_engine_stats: generated from the counter table, moray/counters.h. */

struct mry_engine;

/**
 * Create one worker's engine. @ctl gives the active generation (shared,
 * read-only here); @io receives emitted frames and events.
 * NULL (logged) on bad config or no memory.
 */
struct mry_engine *mry_engine_create(const struct mry_alloc *a,
				     const struct mry_engine_config *cfg,
				     struct mry_sigdb_ctl *ctl,
				     const struct mry_engine_io *io, void *io_ctx);
/** Answers every unfinished message (451, nothing lost), then frees. */
void mry_engine_destroy(struct mry_engine *e, uint64_t now_ns);

/** Change the decode flags (e.g. checksum verification) between captures. */
void mry_engine_set_decode_flags(struct mry_engine *e, unsigned flags);

/** One frame. Fast-path safe. */
enum mry_pkt_verdict mry_engine_packet(struct mry_engine *e, const uint8_t *frame,
				       uint32_t len, uint16_t in_port, uint64_t now_ns);

/**
 * True when the last mry_engine_packet() call judged a message whose end
 * that frame carried (scanned and answered in the same call; held messages
 * released later do not count): the host can time a message's last frame
 * from arrival to forward.
 */
bool mry_engine_frame_ended_message(const struct mry_engine *e);

/**
 * Periodic work: flow and fragment timers, hold timeouts, rescans of held
 * messages when a valid generation appeared. Bounded per call.
 */
void mry_engine_tick(struct mry_engine *e, uint64_t now_ns);

/**
 * The earliest time at which mry_engine_tick() has work: a flow or fragment
 * timer, the hold timeout of the oldest held message, or at once (the
 * current clock) when held messages wait and a usable generation is there.
 * UINT64_MAX when nothing is pending. A replay (moray-scan) calls
 * mry_engine_tick() at each such time before the next packet, so timers fire
 * when they would have on the wire rather than at the next packet.
 */
uint64_t mry_engine_next_deadline(const struct mry_engine *e);

/** Shutdown: answer every in-progress or held message with 451. */
void mry_engine_shutdown(struct mry_engine *e, uint64_t now_ns);

void mry_engine_get_stats(const struct mry_engine *e, struct mry_engine_stats *st);

/**
 * The top @n sources of this engine's flow table by @key, as
 * mry_flow_top_sources() gives them. The engine's own thread only (it
 * walks the table): the app's workers publish the result.
 */
uint32_t mry_engine_top_sources(struct mry_engine *e, enum mry_flow_top_key key,
				uint32_t n, struct mry_flow_source *out);

/**
 * Memory per SMTP connection that has not reached DATA: the flow slot with
 * its table overhead, the engine's session and the SMTP session (messages
 * in progress add a message context, MIME parser and scan streams).
 */
size_t mry_engine_conn_bytes(const struct mry_engine *e);

/**
 * Each fixed pool of the engine: @fn gets its name, its object count and the
 * bytes it takes (count x size with overhead). Hosts print one line each:
 * "pool <name> <count> x <size> B = <MiB> MiB".
 */
void mry_engine_pool_report(const struct mry_engine *e,
			    void (*fn)(void *ctx, const char *name, uint64_t count,
				       uint64_t bytes),
			    void *ctx);

struct mry_blocklist;

/**
 * Source prefixes refused from now on (NULL: none). New connections from a
 * matching client address are refused (RST to the client, never forwarded);
 * open flows from it are shed (a bounded number per mry_engine_tick()). The
 * caller keeps @bl alive and unchanged until the next call (the app
 * publishes it through RCU). Worker thread.
 */
void mry_engine_set_blocklist(struct mry_engine *e, const struct mry_blocklist *bl);

#endif /* MORAY_ENGINE_H */
