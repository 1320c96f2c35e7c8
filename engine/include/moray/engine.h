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

#include "moray/common.h"
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
	uint32_t max_msgs;               /* messages in progress per worker, default 4096 */
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

struct mry_engine_stats {
	uint64_t pkts;
	uint64_t bytes;
	uint64_t pkts_non_smtp;          /* forwarded on the short path */
	uint64_t pkts_forwarded;
	uint64_t pkts_dropped;
	uint64_t drop_invalid;
	uint64_t drop_withheld;          /* carried bytes at/past a pending end-of-message */
	uint64_t drop_conflict;          /* conflicting overlap (evasion) */
	uint64_t drop_ooo;               /* ahead of the stream inline: sender retransmits */
	uint64_t drop_after_verdict;     /* retransmissions toward a rejected message */
	uint64_t drop_no_flow;           /* table full / per-source cap */
	uint64_t drop_midstream_data;    /* message content on a flow never seen to start */
	uint64_t msgs;
	uint64_t msgs_clean;
	uint64_t msgs_infected;
	uint64_t msgs_tempfail;
	uint64_t msgs_encrypted;
	uint64_t msgs_unscanned;
	uint64_t msgs_held;
	uint64_t msgs_released;
	uint64_t hold_timeouts;
	uint64_t hold_store_full;
	uint64_t hold_bytes;             /* currently in the hold store */
	uint32_t hold_msgs;              /* currently held */
	uint64_t hold_oldest_ns;         /* arrival time of the oldest held message (0: none) */
	uint64_t replies_injected;
	uint64_t resets_injected;
	uint64_t events;
	uint64_t last_clean_ns;          /* time the last clean message was forwarded */
	uint64_t evasions;
	uint64_t msgs_aborted;           /* message data ended without an end-of-message */
	uint64_t midstream_resets;       /* SMTP flows never seen to start, reset */
	uint64_t encrypted_blocked;
	uint64_t session_pool_empty;
	uint64_t msg_pool_empty;
	uint64_t events_dropped;         /* JSON did not fit the event buffer */
	uint64_t frag_withheld;          /* TCP fragments held until their datagram completes */
	uint64_t frag_too_big;           /* reassembled TCP datagram larger than max_frame: dropped */
	uint64_t frag_reassembled_sent;  /* reassembled TCP datagrams forwarded as one frame */
	uint64_t msgs_evasion;           /* rejected: an end of data some server honours (--bare-lf reject) */
	uint64_t msgs_shutdown_tempfail; /* unfinished at stop: answered 421, server reset */
};

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
 * Periodic work: flow and fragment timers, hold timeouts, rescans of held
 * messages when a valid generation appeared. Bounded per call.
 */
void mry_engine_tick(struct mry_engine *e, uint64_t now_ns);

/** Shutdown: answer every in-progress or held message with 451. */
void mry_engine_shutdown(struct mry_engine *e, uint64_t now_ns);

void mry_engine_get_stats(const struct mry_engine *e, struct mry_engine_stats *st);

/**
 * Memory per SMTP connection that has not reached DATA: the flow slot with
 * its table overhead, the engine's session and the SMTP session (messages
 * in progress add a message context, MIME parser and scan streams).
 */
size_t mry_engine_conn_bytes(const struct mry_engine *e);
/** Anomaly/evasion counters by name: calls @fn for each non-zero one. */
void mry_engine_foreach_counter(const struct mry_engine *e,
				void (*fn)(void *ctx, const char *module,
					   const char *name, uint64_t value),
				void *ctx);

#endif /* MORAY_ENGINE_H */
