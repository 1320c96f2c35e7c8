/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Engine internals shared by its files, one job each:
 *   engine.c        the pipeline: frame in, decode, IP fragments, flow,
 *                   TCP reassembly, SMTP bytes, session end; create/destroy
 *   msg.c           message life: the SMTP layer's message callbacks decide
 *                   scan now or hold, and judge the end of a message
 *   hold_release.c  held messages: rescan and release when a generation is
 *                   usable, tempfail at the hold deadline
 *   verdict.c       scan glue (stream scan + MIME), scan results turned into
 *                   actions, message teardown, verdict-log events
 *   hold.c          the hold store (copies of held bytes) and hold queue
 *   inject.c        frames put on the wire: replies, FINs and RSTs, with
 *                   sequence numbers per RFC 5961
 *   shed.c          flows moray ends (deadline, eviction, cap, block): both
 *                   sides told, aggregated shed events, the blocklist sweep
 *   pressure.c      emergency mode fed by every pool, "emergency" events
 * Calls run one way: engine -> msg, hold_release -> verdict -> hold, inject.
 * Unit tests may include this header; nothing outside engine/src should.
 */
#ifndef MORAY_ENGINE_PRIV_H
#define MORAY_ENGINE_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moray/decode.h"
#include "moray/engine.h"
#include "moray/flow.h"
#include "moray/mime.h"
#include "moray/scan.h"
#include "moray/sigdb.h"
#include "moray/smtp.h"

#define MOD "engine"
#define NO_OFF UINT64_MAX
#define HDR_TMPL_MAX 128           /* Ethernet + 2 VLAN + IPv6 + TCP with options */
#define EVENT_BUF 16384
#define TX_BUF 2048
#define HOLD_CHUNK 16384           /* hold store granule */
#define EOM_FRAME_MAX 16384        /* largest frame built for release */
#define TICK_BUDGET 64

/* anomaly bit space for "evasions": smtp, mime, then engine-level */
#define EV_SMTP_BASE 0
#define EV_MIME_BASE 24
#define EV_TCP_CONFLICT 48
#define EV_TCP_OOO_CAP 49
#define EV_IP_FRAG_CONFLICT 50
#define EV_MIDSTREAM 51
#define EV_HOLD_STORE_FULL 52
#define EV_MAX 53

_Static_assert(MRY_SMTP_AN_MAX <= EV_MIME_BASE - EV_SMTP_BASE, "smtp anomalies fit");
_Static_assert(MRY_MIME_AN_MAX <= EV_TCP_CONFLICT - EV_MIME_BASE, "mime anomalies fit");

enum msg_state {
	MSG_DATA = 0,      /* between begin and end */
	MSG_HELD,          /* ended, waiting for a usable generation */
	MSG_DONE,
};

enum msg_verdict {
	V_CLEAN = 0,
	V_INFECTED,
	V_TEMPFAIL,
	V_UNSCANNED,
	V_EVASION,         /* an end of data some server honours (policy reject) */
};

struct hold_chunk {
	struct hold_chunk *next;
	uint32_t len;
	uint8_t data[];
};

struct session;

/* Why moray ended a flow (the "reason" of shed events and messages). */
enum shed_reason {
	SHED_DEADLINE = 0,
	SHED_EVICTED,
	SHED_PER_SOURCE_CAP,
	SHED_HALF_OPEN_BUDGET,
	SHED_BLOCKED,
	SHED_NO_MSG_SLOT,
	SHED_MAX,
};

#define SHED_TOP_TRACK 32           /* sources tracked per reason and interval */
#define SHED_TOP_LOG 5              /* sources logged per shed event */
#define TOMB_SLOTS 4096             /* recently ended 5-tuples (direct-mapped) */

struct shed_src {
	uint8_t addr[16];
	uint8_t ip_version;
	uint64_t count;
};

struct shed_agg {
	uint64_t count;
	uint64_t phases[MRY_FLOW_PHASE_MAX];
	struct shed_src top[SHED_TOP_TRACK];
	unsigned nb;
};

struct tomb {
	struct mry_flow_key key;
	uint64_t until_ns;
};

struct msg {
	struct session *sess;
	struct mry_scan_msg *scan;
	struct mry_mime *mime;
	struct msg *hold_next;          /* hold ring, arrival order */
	struct msg *hold_prev;
	struct hold_chunk *chunks;      /* held message bytes (copies) */
	struct hold_chunk *chunk_tail;
	uint8_t *eom_frame;             /* the withheld frame, copied into a hold chunk */
	uint32_t eom_frame_len;
	uint32_t index;
	uint64_t size;
	uint64_t eom_off;
	uint64_t eom_end;               /* client offset just past the end-of-message */
	uint64_t held_ns;
	uint64_t evasions;
	uint64_t hold_bytes;            /* charged to the hold store */
	uint8_t state;
	bool hold;                      /* no usable generation when data began */
	bool store_full;                /* hold store ran out: tempfail */
	bool replayed_reply;            /* the server answered the withheld end: a replay */
	bool ambiguous_end;             /* a "." line some server takes as end of data */
	bool has_res;                   /* res holds the scan result (for a deferred event) */
	uint8_t kind;                   /* enum mry_smtp_msg_kind */
	uint16_t server_reply;          /* server's final reply code, 0: none yet */
	struct msg *wait_next;          /* session's judged messages awaiting the server's reply */
	const char *verdict_name;       /* deferred event: verdict and action */
	const char *action_name;
	struct mry_scan_result res;
	struct mry_engine_conn conn;
	/* from here on not zeroed by the pool: see mry_verdict_copy_envelope() */
	char mail_from[256];
	char rcpt[1024];                /* NUL-separated list */
	uint32_t nb_rcpt;
};

#define SESS_ENCRYPTED 0x01u
#define SESS_CLOSED_BY_US 0x02u     /* reply injected, server reset */
#define SESS_MIDSTREAM 0x04u
#define SESS_SMTP 0x08u
#define SESS_BLOCK_TLS 0x10u        /* STARTTLS accepted under policy block */

struct session {
	struct mry_engine *e;
	struct mry_flow *flow;
	struct mry_smtp_session *smtp;
	struct msg *msg;                /* message in DATA */
	struct msg *pending;            /* ended, unresolved (held) */
	struct msg *wait_head;          /* forwarded, event waits for the server's reply */
	uint64_t withhold_off;          /* client offset: nothing at/past it reaches the server */
	uint64_t fwd_end;               /* client offset up to which bytes were forwarded */
	uint64_t evasions;              /* anomalies not yet tied to a message (the next one takes them) */
	uint32_t nb_msgs;
	uint8_t flags;
	uint8_t hdr_len;                /* bytes of hdr_tmpl */
	uint8_t l3_off;
	uint8_t ip_version;
	const uint8_t *chunk;           /* client bytes being delivered (during deliver) */
	uint64_t chunk_off;
	uint32_t chunk_len;
	uint32_t tmpl_ack;              /* last client segment's ack */
	uint16_t tmpl_win;
	uint8_t hdr_tmpl[HDR_TMPL_MAX]; /* last client frame's headers, for replies */
};

struct mry_engine {
	const struct mry_alloc *a;
	struct mry_engine_config cfg;
	struct mry_sigdb_ctl *ctl;
	struct mry_engine_io io;
	void *io_ctx;
	struct mry_decode_stats dst;
	struct mry_ipfrag_table *frag;
	struct mry_flow_table *flows;
	struct mry_reasm *reasm;
	struct mry_smtp_ctx *smtp;
	struct mry_mime_ctx *mime;
	struct mry_scanner *scanner;
	struct mry_pool *sess_pool;
	struct mry_pool *msg_pool;
	struct mry_pool *chunk_pool;
	struct mry_pool_registry pools;
	const struct mry_blocklist *blocklist;  /* owned by the host */
	struct shed_agg shed[SHED_MAX];
	uint64_t shed_start_ns;
	struct tomb *tombs;                     /* TOMB_SLOTS */
	uint32_t sweep_cursor;                  /* next flow slot the blocklist sweep looks at */
	bool sweeping;                          /* a new blocklist: open flows being swept */
	bool emergency;                         /* emergency state last logged */
	uint32_t pressure_pct;                  /* fullest pool but the flow table, last tick */
	const char *pressure_pool;              /* its name */
	struct msg *hold_head;
	struct msg *hold_tail;
	uint64_t prepared_gen;
	uint64_t now_ns;
	bool ended_msg;                  /* this frame's bytes ended a judged message */
	struct mry_engine_stats st;
	uint64_t ev_count[EV_MAX];
	struct mry_ratelimit rl_hold_full;
	struct mry_ratelimit rl_no_flow;
	struct mry_ratelimit rl_scan_error;
	struct mry_ratelimit rl_no_msg;
	uint8_t smtp_ports[65536 / 8];
	char evbuf[EVENT_BUF];
	uint8_t txbuf[TX_BUF];
	uint8_t fragbuf[EOM_FRAME_MAX];
};

static inline const char *ev_name(unsigned bit)
{
	static const char *const engine_ev_names[] = {
		[EV_TCP_CONFLICT - EV_TCP_CONFLICT] = "tcp_overlap_conflict",
		[EV_TCP_OOO_CAP - EV_TCP_CONFLICT] = "tcp_ooo_cap",
		[EV_IP_FRAG_CONFLICT - EV_TCP_CONFLICT] = "ip_frag_overlap_conflict",
		[EV_MIDSTREAM - EV_TCP_CONFLICT] = "tcp_midstream",
		[EV_HOLD_STORE_FULL - EV_TCP_CONFLICT] = "hold_store_full",
	};

	if (bit < EV_MIME_BASE)
		return bit < MRY_SMTP_AN_MAX ? mry_smtp_anomaly_name(bit) : NULL;
	if (bit < EV_TCP_CONFLICT)
		return bit - EV_MIME_BASE < MRY_MIME_AN_MAX ?
			mry_mime_anomaly_name(bit - EV_MIME_BASE) : NULL;
	if (bit < EV_MAX)
		return engine_ev_names[bit - EV_TCP_CONFLICT];
	return NULL;
}

/*
 * Anomalies belong to one message: one seen while a message's data is
 * open goes to that message; one seen outside (commands before a message,
 * between messages) waits on the session and goes to the next message
 * that begins, so each message lists what its own transaction showed.
 * What no message takes (after the last one) is logged on a "flow" event
 * with reason "anomalies" when the session ends.
 */
static inline void note_evasion(struct mry_engine *e, struct session *s, unsigned bit)
{
	e->ev_count[bit]++;
	e->st.evasions++;
	if (s != NULL) {
		if (s->msg != NULL)
			s->msg->evasions |= 1ULL << bit;
		else
			s->evasions |= 1ULL << bit;
		if (s->flow != NULL)
			s->flow->flags |= MRY_FLOW_F_EVASION;
	}
}

/* ---- hold.c: the hold store and the hold queue ---- */

/** Return @m's held bytes and withheld frame to the store. */
void mry_hold_free_bytes(struct mry_engine *e, struct msg *m);
/** The store ran out for @m: its bytes go, it will be tempfailed. */
void mry_hold_store_full(struct mry_engine *e, struct msg *m);
/**
 * Keep the withheld frame that carries @m's end, for its release: a chunk of
 * the hold store, charged like held bytes, never an allocation on the
 * worker. Not kept when the store has no room: the release then builds the
 * end itself (release_synthesized).
 */
void mry_hold_keep_frame(struct mry_engine *e, struct msg *m, const uint8_t *frame,
			 uint32_t len);
/** Copy @len bytes of @m into the store (mry_hold_store_full when it cannot). */
void mry_hold_append(struct mry_engine *e, struct msg *m, const uint8_t *d, size_t len);
/** Queue @m (ended, held) behind the older held messages. */
void mry_hold_queue_add(struct mry_engine *e, struct msg *m);
/** Take @m off the hold queue. */
void mry_hold_queue_del(struct mry_engine *e, struct msg *m);

/* ---- hold_release.c: rescan, release, deadlines ---- */

/** Release what a usable generation can judge, tempfail what waited too long. */
void mry_hold_tick(struct mry_engine *e);

/* ---- inject.c: frames moray puts on the wire ---- */

/** Keep the last client frame's headers as the template for injected frames. */
void mry_inject_save_template(struct session *s, const struct mry_pkt *p);
/** Build a segment in e->txbuf from the template; returns its length or 0. */
uint32_t mry_inject_segment(struct mry_engine *e, const struct session *s, bool to_client,
			    uint32_t seq, uint32_t ack, uint8_t flags, const char *payload,
			    uint32_t plen);
/** Hand @frame to the I/O layer toward the client or the server. */
void mry_inject_emit(struct mry_engine *e, const struct session *s, enum mry_emit_dir dir,
		     const uint8_t *frame, uint32_t len);
/** Client offset just past @m's end-of-message (what a reply acknowledges). */
uint64_t mry_inject_eom_end(const struct session *s, const struct msg *m);
/** Reply (then FIN) to the client, RST the server where forwarding stopped. */
void mry_inject_answer_and_reset(struct mry_engine *e, struct session *s, const char *reply,
				 uint64_t server_off, uint64_t ack_off);
/** RST to both sides. */
void mry_inject_reset_both(struct mry_engine *e, const struct session *s, uint32_t cli_seq,
			   uint32_t cli_ack, uint32_t srv_seq, uint32_t srv_ack);

/* ---- verdict.c: scan glue, verdicts, message teardown, events ---- */

extern const struct mry_mime_callbacks mry_verdict_mime_cb;
/** Open scanning of @m with @g; false: no resources. */
bool mry_verdict_scan_open(struct mry_engine *e, struct msg *m, struct mry_sigdb_gen *g);
void mry_verdict_scan_feed(struct msg *m, const uint8_t *d, size_t len);
void mry_verdict_scan_close(struct msg *m, struct mry_scan_result *res);
void mry_verdict_scan_abort(struct msg *m);
/** Free @m (scan state, hold queue and store, session links). */
void mry_verdict_msg_free(struct mry_engine *e, struct msg *m);
void mry_verdict_copy_envelope(struct msg *m, const struct mry_smtp_msg_info *mi);
/** Act on a judged message; returns the action name, sets *v. */
const char *mry_verdict_apply(struct mry_engine *e, struct msg *m,
			      const struct mry_scan_result *res, enum msg_verdict *v);
const char *mry_verdict_name(enum msg_verdict v);
/** Rate-limited ERR line: @m could not be scanned and is answered 451. */
void mry_verdict_log_scan_error(struct mry_engine *e, const struct msg *m);
/** 451 to the client, events, and @m freed. */
void mry_verdict_tempfail_free(struct mry_engine *e, struct msg *m, const char *why);
/** A message that ended without an end-of-message: event, @m freed. */
void mry_verdict_msg_abort(struct mry_engine *e, struct msg *m, const char *why);
/** The session's messages go no further: the open one aborted, a held one 451. */
void mry_verdict_session_drop_msgs(struct mry_engine *e, struct session *s, const char *why);
/** Stop: the open message is answered 421 and its server reset, a held one 451. */
void mry_verdict_session_shutdown(struct mry_engine *e, struct session *s);
/** @m is judged: log it now, or when the server answers its end (forwarded). */
void mry_verdict_msg_done(struct mry_engine *e, struct msg *m, const char *verdict,
			  const char *action, const struct mry_scan_result *res);
/** The server answered message @idx: its deferred event is written. */
void mry_verdict_server_reply(struct mry_engine *e, struct session *s,
			      const struct mry_smtp_msg_info *mi, unsigned code);
/** Messages still waiting for a reply are logged with server_reply null. */
void mry_verdict_flush_waiting(struct mry_engine *e, struct session *s);
/** Anomalies no message took: one "flow" event (reason "anomalies"). */
void mry_verdict_session_anomalies(struct mry_engine *e, struct session *s);
/** The connection as the log names it, client first. */
void mry_verdict_conn_of(const struct mry_flow *f, struct mry_engine_conn *c);
/** The event e->evbuf holds (@n bytes, 0: did not fit) to the host; counted. */
void mry_verdict_emit(struct mry_engine *e, size_t n);
void mry_verdict_message_event(struct mry_engine *e, struct msg *m, const char *verdict,
			       const char *action, const struct mry_scan_result *res,
			       const char *reason);
void mry_verdict_hold_event(struct mry_engine *e, struct msg *m, const char *what,
			    const char *reason);
/** The message event of a session that turned to TLS (verdict "encrypted"). */
void mry_verdict_encrypted_event(struct mry_engine *e, struct session *s);
void mry_verdict_flow_event(struct mry_engine *e, struct mry_flow *f, const char *reason);

/* ---- engine.c: flows moray ends ---- */

const char *mry_shed_reason_name(enum shed_reason r);
/** Count a flow moray ended or refused, for the aggregated shed events. */
void mry_shed_note(struct mry_engine *e, enum shed_reason r, unsigned phase,
		   uint8_t ip_version, const uint8_t *addr);
static inline bool is_smtp_port(const struct mry_engine *e, uint16_t port)
{
	return (e->smtp_ports[port >> 3] >> (port & 7u)) & 1u;
}

/* engine_fast.c: true when the frame is surely not SMTP and can be forwarded */
bool mry_engine_fast_non_smtp(const struct mry_engine *e, const uint8_t *f, uint32_t len);

/* shed.c: flows moray ends, both sides told, aggregated shed events */
void mry_shed_flush(struct mry_engine *e);
void mry_shed_maybe_flush(struct mry_engine *e);
bool mry_tomb_hit(struct mry_engine *e, const struct mry_flow_key *k, uint32_t hash);
void mry_tomb_forget(struct mry_engine *e, uint32_t hash);
void mry_shed_flow(struct mry_engine *e, struct mry_flow *f, enum shed_reason r);
void mry_refuse_syn(struct mry_engine *e, const struct mry_pkt *p, uint8_t side,
		    const struct mry_flow_key *key, enum shed_reason r, uint16_t in_port);
/** Shed the open flows of blocklisted sources, a bounded number per call. */
void mry_shed_sweep(struct mry_engine *e);

/* pressure.c: emergency mode fed by every pool of the engine */
/** Tell the flow table how full the fullest other pool is (before its expiry). */
void mry_pressure_update(struct mry_engine *e);
/** An "emergency" event when the table's emergency state changed. */
void mry_pressure_event(struct mry_engine *e);

/* ---- msg.c: the SMTP layer's message callbacks ---- */

extern const struct mry_smtp_callbacks mry_msg_smtp_cb;

#endif /* MORAY_ENGINE_PRIV_H */
