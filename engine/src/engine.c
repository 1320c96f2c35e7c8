/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The per-worker engine: one frame in, one verdict out, run to completion.
 * decode -> (ipfrag) -> flow -> TCP reassembly -> SMTP -> MIME -> scan.
 *
 * The central promise is DESIGN.md's first invariant: the segment that lets
 * the server complete a message (the '.' of CRLF.CRLF, the last byte of
 * BDAT LAST) is forwarded only after the whole message was scanned clean by
 * one valid generation. Because reassembly hands SMTP the bytes before this
 * function decides about the frame that carried them, a message whose end
 * arrives in this frame is judged before the frame's verdict is returned;
 * only held messages (no usable generation when their data began) wait, and
 * for those every segment carrying a byte at or past the withholding offset
 * is dropped until the verdict (retransmissions are absorbed the same way).
 *
 * Inline, segments that arrive ahead of the client stream are not forwarded
 * (the client retransmits them once the gap is filled): forwarding bytes the
 * engine has not yet been able to put in order would let a reordered
 * end-of-message reach the server unjudged.
 *
 * After a reject or tempfail the server side is reset and the client gets
 * the 5xx/4xx reply followed by a FIN: the server connection is gone, so
 * the SMTP session cannot continue, and a FIN (unlike an RST) lets the
 * client read the reply before it sees the close. Later client data on that
 * connection is dropped.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "moray/blocklist.h"
#include "moray/decode.h"
#include "moray/engine.h"
#include "moray/event.h"
#include "moray/flow.h"
#include "moray/ipfrag.h"
#include "moray/mime.h"
#include "moray/scan.h"
#include "moray/sigdb.h"
#include "moray/smtp.h"
#include "moray/tcp_reasm.h"

#include "counters_priv.h"
#include "engine_priv.h"

void mry_engine_config_defaults(struct mry_engine_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->smtp_ports[0] = 25;
	cfg->smtp_ports[1] = 587;
	cfg->smtp_ports[2] = 2525;
	cfg->nb_smtp_ports = 3;
	cfg->decode_flags = MRY_DECODE_F_VERIFY_IP_CSUM;
	cfg->encrypted = MRY_ENCRYPTED_PASS;
	cfg->hold_timeout_ns = 240 * MRY_NS_PER_SEC;
	cfg->hold_store_bytes = 256ULL << 20;
	cfg->hold_max_msgs = 4096;
	cfg->max_msgs = 0;              /* derived: max-flows / 16 */
	cfg->shed_log_interval_ns = 10 * MRY_NS_PER_SEC;
	mry_flow_config_defaults(&cfg->flow);
	cfg->max_frame = 1518 + 8;      /* 1500-byte MTU, Ethernet + QinQ */
}

/* ---- sessions and flows ------------------------------------------------- */

static void session_end(struct mry_engine *e, struct session *s, const char *why)
{
	if (s->smtp != NULL) {
		mry_smtp_close(e->smtp, s->smtp);   /* aborts an open message */
		mry_smtp_session_free(e->smtp, s->smtp);
		s->smtp = NULL;
	}
	/* a held message whose connection ends: the client is told to retry */
	mry_verdict_session_drop_msgs(e, s, why);
	mry_verdict_session_anomalies(e, s);
	s->flow->app = NULL;
	mry_pool_put(e->sess_pool, s);
}

static void flow_end(void *ctx, struct mry_flow *f, enum mry_flow_end_reason why)
{
	struct mry_engine *e = ctx;
	struct session *s = f->app;
	static const char *const names[] = { "closed", "timeout", "evicted", "shutdown", "blocked" };

	if (why == MRY_FLOW_END_EVICTED)
		mry_shed_flow(e, f, SHED_EVICTED);
	else if ((why == MRY_FLOW_END_TIMEOUT || why == MRY_FLOW_END_BLOCKED) &&
		 f->phase != MRY_FLOW_PHASE_CLOSING)
		mry_shed_flow(e, f, why == MRY_FLOW_END_TIMEOUT ? SHED_DEADLINE : SHED_BLOCKED);
	mry_tcp_stream_release(e->reasm, &f->stream[0]);
	mry_tcp_stream_release(e->reasm, &f->stream[1]);
	if (s != NULL)
		session_end(e, s, names[why <= MRY_FLOW_END_BLOCKED ? why : 0]);
}

struct deliver_ctx {
	struct mry_engine *e;
	struct session *s;
	bool from_client;
};

static void deliver(void *ctx, struct mry_tcp_stream *st, const uint8_t *d,
		    uint32_t len, uint64_t off)
{
	struct deliver_ctx *dc = ctx;
	struct session *s = dc->s;
	struct mry_engine *e = dc->e;

	(void)st;
	if (e->io.stream != NULL) {
		struct mry_engine_conn c;

		mry_verdict_conn_of(s->flow, &c);
		e->io.stream(e->io_ctx, &c, dc->from_client, d, len);
	}
	if (s->smtp == NULL || (s->flags & SESS_MIDSTREAM))
		return;
	if (s->flags & SESS_ENCRYPTED) {
		/* SMTP only checks that the client's first bytes are a TLS
		 * handshake (cleartext there is counted); the rest is opaque */
		if (dc->from_client)
			mry_smtp_client_data(e->smtp, s->smtp, d, len, off);
		return;
	}
	if (dc->from_client) {
		s->chunk = d;
		s->chunk_off = off;
		s->chunk_len = len;
		mry_smtp_client_data(e->smtp, s->smtp, d, len, off);
		s->chunk = NULL;
	} else
		mry_smtp_server_data(e->smtp, s->smtp, d, len, off);
	if (mry_smtp_encrypted(s->smtp))
		s->flags |= SESS_ENCRYPTED;
}

static struct session *session_new(struct mry_engine *e, struct mry_flow *f, bool smtp)
{
	struct session *s = mry_pool_get(e->sess_pool);

	if (s == NULL) {
		e->st.session_pool_empty++;
		return NULL;
	}
	s->e = e;
	s->flow = f;
	s->withhold_off = NO_OFF;
	if (smtp) {
		s->smtp = mry_smtp_session_new(e->smtp, s);
		if (s->smtp == NULL) {
			mry_pool_put(e->sess_pool, s);
			e->st.session_pool_empty++;
			return NULL;
		}
		s->flags |= SESS_SMTP;
	}
	f->app = s;
	return s;
}

/* Identify the client: the SYN's sender, else the side not on an SMTP port. */
static uint8_t client_side_of(const struct mry_engine *e, const struct mry_pkt *p,
			      uint8_t side)
{
	if ((p->tcp_flags & (MRY_TCP_SYN | MRY_TCP_ACK)) == MRY_TCP_SYN)
		return side;
	if ((p->tcp_flags & (MRY_TCP_SYN | MRY_TCP_ACK)) == (MRY_TCP_SYN | MRY_TCP_ACK))
		return side ^ 1u;
	if (is_smtp_port(e, p->dport))
		return side;
	if (is_smtp_port(e, p->sport))
		return side ^ 1u;
	return side;   /* forensics of other TCP: the first sender */
}

static enum mry_pkt_verdict drop(struct mry_engine *e, uint64_t *ctr)
{
	if (ctr != NULL)
		(*ctr)++;
	e->st.pkts_dropped++;
	return MRY_PKT_DROP;
}

/* Reset both sides of a flow moray never saw start (it may not carry mail unscanned). */
static void midstream_reset(struct mry_engine *e, struct session *s, const struct mry_pkt *p)
{
	if (s->flags & SESS_CLOSED_BY_US)
		return;
	s->flags |= SESS_CLOSED_BY_US;
	e->st.midstream_resets++;
	note_evasion(e, s, EV_MIDSTREAM);
	mry_verdict_flow_event(e, s->flow, "midstream_reset");
	mry_inject_save_template(s, p);
	/* @p is the client's: the client expects its ack, the server its seq */
	mry_inject_reset_both(e, s, p->ack, p->seq + p->payload_len, p->seq, p->ack);
}

/*
 * The deadlines the SMTP parser cannot drive (msg.c smtp_phase() does the
 * rest): the handshake's end leaves HALF_OPEN; on a flow the parser does not
 * read (not SMTP, encrypted after STARTTLS) the first payload leaves GREETING
 * and any payload re-arms CMD, since no command boundary can be seen.
 */
static void flow_phase_from_pkt(struct mry_engine *e, struct mry_flow *f,
				const struct session *s, const struct mry_pkt *p)
{
	if (f->phase == MRY_FLOW_PHASE_HALF_OPEN && !(p->tcp_flags & MRY_TCP_SYN))
		mry_flow_set_phase(e->flows, f, MRY_FLOW_PHASE_GREETING, e->now_ns);
	if (p->payload_len == 0 || ((s->flags & SESS_SMTP) && !(s->flags & SESS_ENCRYPTED)))
		return;
	if (f->phase == MRY_FLOW_PHASE_GREETING)
		mry_flow_set_phase(e->flows, f, MRY_FLOW_PHASE_CMD, e->now_ns);
	else if (f->phase == MRY_FLOW_PHASE_CMD)
		mry_flow_rearm(e->flows, f, e->now_ns);
}

static enum mry_pkt_verdict tcp_packet(struct mry_engine *e, const struct mry_pkt *p,
				       uint16_t in_port)
{
	struct mry_flow_key key;
	struct mry_flow *f;
	struct session *s;
	struct deliver_ctx dc;
	struct mry_reasm_seg_info info;
	enum mry_reasm_result rr;
	uint32_t hash;
	uint8_t side;
	bool smtp = is_smtp_port(e, p->sport) || is_smtp_port(e, p->dport);
	bool from_client;

	if (!smtp && !e->cfg.track_all_tcp) {
		e->st.pkts_non_smtp++;
		e->st.pkts_forwarded++;
		return MRY_PKT_FORWARD;
	}
	mry_flow_key_from_pkt(p, &key, &side);
	hash = mry_flow_key_hash(&key);
	f = mry_flow_lookup(e->flows, &key, hash);
	if (f != NULL && f->phase == MRY_FLOW_PHASE_CLOSING &&
	    (p->tcp_flags & (MRY_TCP_SYN | MRY_TCP_ACK)) == MRY_TCP_SYN) {
		/*
		 * A new connection on the 4-tuple of one that closed (the client
		 * reused its port, e.g. Linux tcp_tw_reuse): the old flow ends
		 * here instead of misreading the new stream as the old one.
		 */
		flow_end(e, f, MRY_FLOW_END_CLOSED);
		mry_flow_release(e->flows, f);
		f = NULL;
	}
	if (f == NULL) {
		uint64_t sup = 0;

		uint8_t cside = client_side_of(e, p, side);
		bool syn = (p->tcp_flags & (MRY_TCP_SYN | MRY_TCP_ACK)) == MRY_TCP_SYN;

		if (smtp && mry_tomb_hit(e, &key, hash)) {
			if (!syn)
				return drop(e, &e->st.drop_after_shed);
			mry_tomb_forget(e, hash);   /* the port is used again */
		}
		if (p->tcp_flags & MRY_TCP_RST)
			return smtp ? drop(e, NULL) : MRY_PKT_FORWARD;
		if (smtp && e->blocklist != NULL &&
		    mry_blocklist_match(e->blocklist, key.ip_version, key.addr[cside & 1u],
					e->now_ns)) {
			mry_refuse_syn(e, p, cside, &key, SHED_BLOCKED, in_port);
			return drop(e, NULL);
		}
		/* per-source limits count the client's address */
		f = mry_flow_create_client(e->flows, &key, hash, cside, e->now_ns);
		if (f == NULL && smtp) {
			uint32_t cap = e->cfg.flow.max_per_source;

			mry_refuse_syn(e, p, cside, &key,
				   cap != 0 && mry_flow_source_count(e->flows, key.ip_version,
								     key.addr[cside & 1u]) >= cap ?
				   SHED_PER_SOURCE_CAP : SHED_HALF_OPEN_BUDGET, in_port);
		}
		if (f == NULL) {
			if (mry_ratelimit_ok(&e->rl_no_flow, e->now_ns, 10 * MRY_NS_PER_SEC, &sup))
				mry_log(MRY_LOG_WARNING, MOD,
					"flow table full or per-source cap: new SMTP connections dropped (%" PRIu64 " more since last line)",
					sup);
			if (!smtp) {
				e->st.pkts_forwarded++;
				return MRY_PKT_FORWARD;
			}
			return drop(e, &e->st.drop_no_flow);
		}
		if (!(p->tcp_flags & MRY_TCP_SYN))
			f->flags |= MRY_FLOW_F_MIDSTREAM;
		if (session_new(e, f, smtp) == NULL) {
			mry_flow_release(e->flows, f);
			return smtp ? drop(e, &e->st.drop_no_flow) : MRY_PKT_FORWARD;
		}
		if (f->flags & MRY_FLOW_F_MIDSTREAM)
			((struct session *)f->app)->flags |= SESS_MIDSTREAM;
	}
	s = f->app;
	from_client = side == f->client_side;
	f->in_port[side] = in_port;
	f->pkts[side]++;
	mry_flow_touch_bytes(e->flows, f, p->payload_len, e->now_ns);
	flow_phase_from_pkt(e, f, s, p);
	if (from_client)
		mry_inject_save_template(s, p);

	/* a connection moray never saw start may not carry message content */
	if ((s->flags & SESS_MIDSTREAM) && (s->flags & SESS_SMTP)) {
		/* reassembled for forensics dumps only: no SMTP state is guessed */
		if (e->io.stream != NULL) {
			dc.e = e;
			dc.s = s;
			dc.from_client = from_client;
			(void)mry_reasm_segment(e->reasm, &f->stream[side], p, deliver, &dc, &info);
		}
		if (p->payload_len > 0 && from_client) {
			midstream_reset(e, s, p);
			return drop(e, &e->st.drop_midstream_data);
		}
		if (p->tcp_flags & (MRY_TCP_RST | MRY_TCP_FIN)) {
			mry_flow_set_phase(e->flows, f, MRY_FLOW_PHASE_CLOSING, e->now_ns);
		}
		e->st.pkts_forwarded++;
		return MRY_PKT_FORWARD;
	}

	dc.e = e;
	dc.s = s;
	dc.from_client = from_client;
	rr = mry_reasm_segment(e->reasm, &f->stream[side], p, deliver, &dc, &info);

	if ((s->flags & SESS_BLOCK_TLS) && !(s->flags & SESS_CLOSED_BY_US)) {
		/*
		 * Policy block: the server's 220 to STARTTLS (this packet: the
		 * flag is set while its bytes are delivered) never reaches the
		 * client and both sides are reset; the sender keeps the mail and
		 * retries (in plaintext, or not at all if it insists on TLS).
		 */
		const struct mry_tcp_stream *cst = &f->stream[f->client_side & 1u];

		MRY_ASSERT(!from_client);
		s->flags |= SESS_CLOSED_BY_US;
		e->st.encrypted_blocked++;
		mry_inject_reset_both(e, s, p->seq, cst->next_seq, cst->base_seq + (uint32_t)s->fwd_end,
			   s->tmpl_ack);
		return drop(e, NULL);
	}
	if ((s->flags & SESS_BLOCK_TLS) && p->payload_len > 0)
		return drop(e, &e->st.drop_after_verdict);

	if (rr == MRY_REASM_CONFLICT) {
		note_evasion(e, s, EV_TCP_CONFLICT);
		if (from_client)
			return drop(e, &e->st.drop_conflict);
	} else if (rr == MRY_REASM_OOO_FULL) {
		note_evasion(e, s, EV_TCP_OOO_CAP);
		if (from_client)
			return drop(e, &e->st.drop_ooo);
	} else if (rr == MRY_REASM_OUT_OF_ORDER && from_client && (s->flags & SESS_SMTP)) {
		return drop(e, &e->st.drop_ooo);
	}

	if (from_client && (s->flags & SESS_SMTP) && !(s->flags & SESS_ENCRYPTED)) {
		uint64_t w = s->withhold_off;

		if (s->smtp != NULL)
			w = MRY_MIN(w, mry_smtp_withhold_from(s->smtp));
		if (w != NO_OFF && mry_tcp_stream_reaches(&f->stream[side], p, w)) {
			struct msg *m = s->pending;

			/* keep the first frame that carries the end, to release it later */
			if (m != NULL && m->state == MSG_HELD)
				mry_hold_keep_frame(e, m, p->frame, p->frame_len);
			if (s->flags & SESS_CLOSED_BY_US)
				return drop(e, &e->st.drop_after_verdict);
			return drop(e, &e->st.drop_withheld);
		}
		if ((s->flags & SESS_CLOSED_BY_US) && p->payload_len > 0)
			return drop(e, &e->st.drop_after_verdict);
		if (p->payload_len > 0 && (f->stream[side].flags & MRY_STREAM_STARTED)) {
			uint64_t end = mry_tcp_stream_offset(&f->stream[side], p->seq) +
				       p->payload_len;

			if (end > s->fwd_end && end != NO_OFF)
				s->fwd_end = end;
		}
	}

	if (!from_client && (p->tcp_flags & (MRY_TCP_FIN | MRY_TCP_RST)) &&
	    s->pending != NULL && s->pending->state == MSG_HELD &&
	    !s->pending->replayed_reply) {
		/*
		 * The server gave up waiting for the withheld end (its idle
		 * timeout) or went away: it can no longer take the message, so
		 * the client is told to retry now rather than at the hold timeout.
		 */
		mry_verdict_tempfail_free(e, s->pending, "server_closed");
		mry_flow_set_phase(e->flows, f, MRY_FLOW_PHASE_CLOSING, e->now_ns);
		/* the client already has moray's answer and FIN in its place */
		return drop(e, &e->st.drop_after_verdict);
	}
	if (p->tcp_flags & (MRY_TCP_FIN | MRY_TCP_RST)) {
		mry_flow_set_phase(e->flows, f, MRY_FLOW_PHASE_CLOSING, e->now_ns);
		if (s->smtp != NULL && ((p->tcp_flags & MRY_TCP_RST) ||
		    ((f->stream[0].flags & MRY_STREAM_FIN_DONE) &&
		     (f->stream[1].flags & MRY_STREAM_FIN_DONE))))
			mry_smtp_close(e->smtp, s->smtp);
	}
	e->st.pkts_forwarded++;
	return MRY_PKT_FORWARD;
}

/*
 * IP fragments. Fragments of anything but TCP are forwarded as they come.
 * TCP fragments are withheld (copied by ipfrag) until their datagram is
 * complete and judged, then the reassembled datagram goes out as one frame:
 * forwarding fragments early would let a server whose reassembly differs
 * (another overlap policy, a longer timeout: Ptacek & Newsham 1998) build
 * bytes moray never saw. Legitimate TCP does not fragment (MSS, PMTUD), so
 * this costs nothing in practice; a datagram too large for one frame is
 * dropped and counted.
 */
static enum mry_pkt_verdict fragment(struct mry_engine *e, const uint8_t *frame,
				     const struct mry_pkt *fp, uint16_t in_port)
{
	const uint8_t *dg;
	uint32_t dlen, l2 = fp->l3_off;
	bool conflict = false;
	/* IPv6 may put Destination Options or Routing after the fragment
	 * header: withhold whatever may carry TCP, the datagram decides */
	bool tcp = mry_decode_frag_may_be_tcp(fp);
	enum mry_ipfrag_result fr = mry_ipfrag_add(e->frag, fp, e->now_ns, &dg, &dlen,
						   &conflict);
	struct mry_pkt p;
	enum mry_decode_result r;
	enum mry_pkt_verdict v;

	if (conflict) {
		e->ev_count[EV_IP_FRAG_CONFLICT]++;
		e->st.evasions++;
	}
	if (fr == MRY_IPFRAG_DROPPED)
		return drop(e, &e->st.drop_invalid);
	if (fr == MRY_IPFRAG_NEED_MORE) {
		if (tcp)
			return drop(e, &e->st.frag_withheld);
		e->st.pkts_forwarded++;
		return MRY_PKT_FORWARD;
	}
	r = mry_decode_ip(dg, dlen, e->cfg.decode_flags, &p, &e->dst);
	if (!tcp)
		return r == MRY_DECODE_INVALID ? drop(e, &e->st.drop_invalid) :
			(e->st.pkts_forwarded++, MRY_PKT_FORWARD);
	if (r != MRY_DECODE_TCP && r != MRY_DECODE_OTHER)
		return drop(e, &e->st.drop_invalid);
	if (l2 + dlen > EOM_FRAME_MAX || l2 + dlen > e->cfg.max_frame)
		return drop(e, &e->st.frag_too_big);
	/* one frame: this fragment's link header + the whole datagram */
	memcpy(e->fragbuf, frame, l2);
	memcpy(e->fragbuf + l2, dg, dlen);
	r = mry_decode_frame(e->fragbuf, l2 + dlen, e->cfg.decode_flags, &p, &e->dst);
	if (r == MRY_DECODE_TCP)
		v = tcp_packet(e, &p, in_port);
	else if (r == MRY_DECODE_OTHER)
		v = (e->st.pkts_forwarded++, MRY_PKT_FORWARD);  /* withheld, not TCP */
	else
		return drop(e, &e->st.drop_invalid);
	if (v == MRY_PKT_FORWARD && e->io.emit != NULL) {
		/* TO_SERVER with this port: out the pair of the port it came in on */
		e->io.emit(e->io_ctx, MRY_EMIT_TO_SERVER, in_port, e->fragbuf, l2 + dlen);
		e->st.frag_reassembled_sent++;
	}
	/* the fragment itself never goes out: the datagram went in its place */
	e->st.pkts_dropped += v == MRY_PKT_FORWARD ? 1 : 0;
	if (v == MRY_PKT_FORWARD)
		e->st.pkts_forwarded--;
	return MRY_PKT_DROP;
}

enum mry_pkt_verdict mry_engine_packet(struct mry_engine *e, const uint8_t *frame,
				       uint32_t len, uint16_t in_port, uint64_t now_ns)
{
	struct mry_pkt p;
	enum mry_decode_result r;

	e->now_ns = now_ns;
	e->ended_msg = false;
	mry_shed_maybe_flush(e);
	e->st.pkts++;
	e->st.bytes += len;
	if (mry_engine_fast_non_smtp(e, frame, len)) {
		e->st.pkts_non_smtp++;
		e->st.pkts_forwarded++;
		return MRY_PKT_FORWARD;
	}
	r = mry_decode_frame(frame, len, e->cfg.decode_flags, &p, &e->dst);
	if (r == MRY_DECODE_FRAGMENT)
		return fragment(e, frame, &p, in_port);
	switch (r) {
	case MRY_DECODE_TCP:
		return tcp_packet(e, &p, in_port);
	case MRY_DECODE_OTHER:
		e->st.pkts_non_smtp++;
		e->st.pkts_forwarded++;
		return MRY_PKT_FORWARD;
	default:
		/* malformed: a receiver would discard it too; never let it carry mail */
		return drop(e, &e->st.drop_invalid);
	}
}

bool mry_engine_frame_ended_message(const struct mry_engine *e)
{
	return e->ended_msg;
}

void mry_engine_set_decode_flags(struct mry_engine *e, unsigned flags)
{
	e->cfg.decode_flags = flags;
}

void mry_engine_tick(struct mry_engine *e, uint64_t now_ns)
{
	e->now_ns = now_ns;
	mry_shed_maybe_flush(e);
	mry_shed_sweep(e);
	mry_pressure_update(e);
	mry_flow_expire(e->flows, now_ns);
	mry_pressure_event(e);
	mry_ipfrag_expire(e->frag, now_ns, TICK_BUDGET);
	if (e->hold_head != NULL)
		mry_hold_tick(e);
}

uint64_t mry_engine_next_deadline(const struct mry_engine *e)
{
	uint64_t d = MRY_MIN(mry_flow_next_deadline(e->flows),
			     mry_ipfrag_next_deadline(e->frag));

	if (e->sweeping)
		return e->now_ns;   /* a blocklist sweep goes on tick by tick */
	if (e->hold_head != NULL) {
		/* hold_tick() goes oldest first: the head times out first */
		if (mry_sigdb_ctl_usable(e->ctl) != NULL)
			return e->now_ns;
		d = MRY_MIN(d, e->hold_head->held_ns + e->cfg.hold_timeout_ns);
	}
	return d;
}

static bool shutdown_one(void *ctx, struct mry_flow *f)
{
	struct mry_engine *e = ctx;
	struct session *s = f->app;

	/* a message in DATA gets 421, a held one 451; neither reaches the server */
	if (s != NULL)
		mry_verdict_session_shutdown(e, s);
	return true;
}

void mry_engine_shutdown(struct mry_engine *e, uint64_t now_ns)
{
	e->now_ns = now_ns;
	mry_flow_foreach(e->flows, shutdown_one, e);
	if (e->shed_start_ns != 0)
		mry_shed_flush(e);   /* the final one */
}

struct mry_engine *mry_engine_create(const struct mry_alloc *a,
				     const struct mry_engine_config *cfg,
				     struct mry_sigdb_ctl *ctl,
				     const struct mry_engine_io *io, void *io_ctx)
{
	struct mry_engine *e;
	uint32_t chunks;
	unsigned i;

	if (cfg->nb_smtp_ports > MRY_ENGINE_MAX_SMTP_PORTS || ctl == NULL) {
		mry_log(MRY_LOG_ERR, MOD, "invalid engine configuration");
		return NULL;
	}
	e = mry_zalloc_aligned(a, sizeof(*e), MRY_CACHE_LINE);
	if (e == NULL)
		return NULL;
	e->a = a;
	e->cfg = *cfg;
	e->ctl = ctl;
	if (io != NULL)
		e->io = *io;
	e->io_ctx = io_ctx;
	for (i = 0; i < cfg->nb_smtp_ports; i++)
		e->smtp_ports[cfg->smtp_ports[i] >> 3] |= (uint8_t)(1u << (cfg->smtp_ports[i] & 7u));
	if (e->cfg.flow.max_flows == 0)
		e->cfg.flow.max_flows = MRY_FLOW_MAX_DEFAULT;
	/*
	 * Messages in progress: one per 16 flows (4096 at the default table).
	 * One per flow would cost 52 KB x max-flows (envelope + MIME parser),
	 * 3.3 GiB per worker at 65536 flows, which hugepage memory cannot
	 * give; a flow that finds no slot is answered 451 4.3.2 and counted.
	 */
	if (e->cfg.max_msgs == 0)
		e->cfg.max_msgs = MRY_MIN(e->cfg.flow.max_flows,
					  MRY_MAX(e->cfg.flow.max_flows / 16u, 64u));
	/* every flow may hold a small envelope; a quarter of the message
	 * slots may have more than 4 recipients at once */
	if (e->cfg.smtp.envelope_pool_count == 0)
		e->cfg.smtp.envelope_pool_count = e->cfg.flow.max_flows;
	if (e->cfg.smtp.big_envelope_pool_count == 0)
		e->cfg.smtp.big_envelope_pool_count = MRY_MAX(e->cfg.max_msgs / 4u, 16u);
	if (e->cfg.mime.pool_count == 0)
		e->cfg.mime.pool_count = e->cfg.max_msgs;
	if (e->cfg.shed_log_interval_ns == 0)
		e->cfg.shed_log_interval_ns = 10 * MRY_NS_PER_SEC;
	cfg = &e->cfg;
	chunks = (uint32_t)MRY_MIN(e->cfg.hold_store_bytes / HOLD_CHUNK, (uint64_t)UINT32_MAX);
	e->tombs = mry_zalloc(a, TOMB_SLOTS * sizeof(struct tomb));
	mry_pool_registry_set(&e->pools);
	e->frag = mry_ipfrag_create(a, &cfg->ipfrag);
	e->flows = mry_flow_table_create(a, &cfg->flow, flow_end, e);
	e->reasm = mry_reasm_create(a, &cfg->reasm);
	e->smtp = mry_smtp_ctx_create(a, &cfg->smtp, &mry_msg_smtp_cb);
	e->mime = mry_mime_ctx_create(a, &cfg->mime, &mry_verdict_mime_cb);
	/* as many scans (and 3x streams) as messages: a message that got its
	 * slot always gets its scan, so only msg_pool_empty can run dry */
	e->scanner = mry_scanner_create(a, e->cfg.max_msgs);
	e->sess_pool = mry_pool_create(a, "session", sizeof(struct session),
				       cfg->flow.max_flows != 0 ? cfg->flow.max_flows : 65536);
	/* the envelope copy is written whole by mry_verdict_copy_envelope() */
	e->msg_pool = mry_pool_create_ex(a, "message", sizeof(struct msg), e->cfg.max_msgs,
					 offsetof(struct msg, mail_from));
	e->chunk_pool = chunks > 0 ? mry_pool_create_ex(a, "hold", HOLD_CHUNK, chunks,
							       sizeof(struct hold_chunk)) : NULL;
	mry_pool_registry_set(NULL);
	if (e->frag == NULL || e->flows == NULL || e->reasm == NULL || e->smtp == NULL ||
	    e->mime == NULL || e->scanner == NULL || e->sess_pool == NULL ||
	    e->msg_pool == NULL || e->tombs == NULL || (chunks > 0 && e->chunk_pool == NULL)) {
		mry_log(MRY_LOG_ERR, MOD, "cannot create engine (memory)");
		mry_engine_destroy(e, 0);
		return NULL;
	}
	return e;
}

void mry_engine_destroy(struct mry_engine *e, uint64_t now_ns)
{
	if (e == NULL)
		return;
	if (e->flows != NULL) {
		mry_engine_shutdown(e, now_ns);
		mry_flow_table_destroy(e->flows);
	}
	if (e->tombs != NULL)
		mry_free(e->a, e->tombs);
	mry_pool_destroy(e->chunk_pool);
	mry_pool_destroy(e->msg_pool);
	mry_pool_destroy(e->sess_pool);
	mry_scanner_destroy(e->scanner);
	mry_mime_ctx_destroy(e->mime);
	mry_smtp_ctx_destroy(e->smtp);
	mry_reasm_destroy(e->reasm);
	mry_ipfrag_destroy(e->frag);
	mry_free(e->a, e);
}

void mry_engine_pool_report(const struct mry_engine *e,
			    void (*fn)(void *ctx, const char *name, uint64_t count,
				       uint64_t bytes),
			    void *ctx)
{
	uint64_t nf = e->cfg.flow.max_flows;

	fn(ctx, "flows", nf, nf * mry_flow_table_bytes_per_flow(e->flows));
	for (unsigned i = 0; i < e->pools.nb; i++) {
		const struct mry_pool *p = e->pools.pool[i];

		fn(ctx, mry_pool_name(p), mry_pool_count(p),
		   (uint64_t)mry_pool_count(p) * mry_pool_obj_bytes(p));
	}
}

size_t mry_engine_conn_bytes(const struct mry_engine *e)
{
	return mry_flow_table_bytes_per_flow(e->flows) + sizeof(struct session) +
	       mry_smtp_session_bytes();
}
