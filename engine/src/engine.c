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

#define MOD "engine"
#define NO_OFF UINT64_MAX
#define HDR_TMPL_MAX 128           /* Ethernet + 2 VLAN + IPv6 + TCP with options */
#define EVENT_BUF 16384
#define TX_BUF 2048
#define HOLD_CHUNK 16384           /* hold store granule */
#define EOM_FRAME_MAX 16384        /* largest withheld frame kept for release */
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
};

struct hold_chunk {
	struct hold_chunk *next;
	uint32_t len;
	uint8_t data[];
};

struct session;

struct msg {
	struct session *sess;
	struct mry_scan_msg *scan;
	struct mry_mime *mime;
	struct msg *hold_next;          /* hold ring, arrival order */
	struct msg *hold_prev;
	struct hold_chunk *chunks;      /* held message bytes (copies) */
	struct hold_chunk *chunk_tail;
	uint8_t *eom_frame;             /* the withheld frame, copied */
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
	uint8_t kind;                   /* enum mry_smtp_msg_kind */
	struct mry_engine_conn conn;
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
	uint64_t withhold_off;          /* client offset: nothing at/past it reaches the server */
	uint64_t fwd_end;               /* client offset up to which bytes were forwarded */
	uint64_t evasions;
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
	struct msg *hold_head;
	struct msg *hold_tail;
	uint64_t prepared_gen;
	uint64_t now_ns;
	struct mry_engine_stats st;
	uint64_t ev_count[EV_MAX];
	struct mry_ratelimit rl_hold_full;
	struct mry_ratelimit rl_no_flow;
	uint8_t smtp_ports[65536 / 8];
	char evbuf[EVENT_BUF];
	uint8_t txbuf[TX_BUF];
	uint8_t fragbuf[EOM_FRAME_MAX];
};

static const char *const engine_ev_names[] = {
	[EV_TCP_CONFLICT - EV_TCP_CONFLICT] = "tcp_overlap_conflict",
	[EV_TCP_OOO_CAP - EV_TCP_CONFLICT] = "tcp_ooo_cap",
	[EV_IP_FRAG_CONFLICT - EV_TCP_CONFLICT] = "ip_frag_overlap_conflict",
	[EV_MIDSTREAM - EV_TCP_CONFLICT] = "tcp_midstream",
	[EV_HOLD_STORE_FULL - EV_TCP_CONFLICT] = "hold_store_full",
};

static const char *ev_name(unsigned bit)
{
	if (bit < EV_MIME_BASE)
		return bit < MRY_SMTP_AN_MAX ? mry_smtp_anomaly_name(bit) : NULL;
	if (bit < EV_TCP_CONFLICT)
		return bit - EV_MIME_BASE < MRY_MIME_AN_MAX ?
			mry_mime_anomaly_name(bit - EV_MIME_BASE) : NULL;
	if (bit < EV_MAX)
		return engine_ev_names[bit - EV_TCP_CONFLICT];
	return NULL;
}

static void note_evasion(struct mry_engine *e, struct session *s, unsigned bit)
{
	e->ev_count[bit]++;
	e->st.evasions++;
	if (s != NULL) {
		s->evasions |= 1ULL << bit;
		if (s->msg != NULL)
			s->msg->evasions |= 1ULL << bit;
		if (s->flow != NULL)
			s->flow->flags |= MRY_FLOW_F_EVASION;
	}
}

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
	cfg->max_msgs = 4096;
	mry_flow_config_defaults(&cfg->flow);
	cfg->max_frame = 1518 + 8;      /* 1500-byte MTU, Ethernet + QinQ */
}

/* ---- connection naming ---------------------------------------------- */

/* dotted quad, as inet_ntop() writes it, without its generic cost */
static void ipv4_text(const uint8_t a[4], char *out)
{
	for (int i = 0; i < 4; i++) {
		unsigned v = a[i];

		if (v >= 100)
			*out++ = (char)('0' + v / 100);
		if (v >= 10)
			*out++ = (char)('0' + v / 10 % 10);
		*out++ = (char)('0' + v % 10);
		*out++ = i < 3 ? '.' : '\0';
	}
}

static void conn_of(const struct mry_flow *f, struct mry_engine_conn *c)
{
	unsigned cs = f->client_side & 1u, ss = cs ^ 1u;

	if (f->key.ip_version == 6) {
		inet_ntop(AF_INET6, f->key.addr[cs], c->src, sizeof(c->src));
		inet_ntop(AF_INET6, f->key.addr[ss], c->dst, sizeof(c->dst));
	} else {
		ipv4_text(f->key.addr[cs], c->src);
		ipv4_text(f->key.addr[ss], c->dst);
	}
	c->sport = f->key.port[cs];
	c->dport = f->key.port[ss];
}

/* ---- events ------------------------------------------------------------ */

/* Every event starts alike: its kind, the time, the connection (client first). */
static void event_begin(struct mry_engine *e, struct mry_json *j, const char *event,
			const struct mry_engine_conn *c)
{
	mry_json_begin(j, e->evbuf, sizeof(e->evbuf));
	mry_json_str(j, "event", event);
	mry_json_ts(j, "ts", e->now_ns);
	mry_json_str(j, "src", c->src);
	mry_json_u64(j, "sport", c->sport);
	mry_json_str(j, "dst", c->dst);
	mry_json_u64(j, "dport", c->dport);
}

static void emit_event(struct mry_engine *e, struct mry_json *j)
{
	size_t n = mry_json_end(j);

	if (n == 0) {
		e->st.events_dropped++;
		return;
	}
	e->st.events++;
	if (e->io.event != NULL)
		e->io.event(e->io_ctx, j->buf, n);
}

static const char *verdict_name(enum msg_verdict v)
{
	switch (v) {
	case V_CLEAN: return "clean";
	case V_INFECTED: return "infected";
	case V_TEMPFAIL: return "tempfail";
	default: return "unscanned";
	}
}

static void message_event(struct mry_engine *e, struct msg *m, const char *verdict,
			  const char *action, const struct mry_scan_result *res,
			  const char *reason)
{
	struct mry_json j;
	const char *r = m->rcpt;
	uint64_t ev = m->evasions;
	uint32_t i;

	event_begin(e, &j, "message", &m->conn);
	mry_json_u64(&j, "msg_index", m->index);
	mry_json_str(&j, "mail_from", m->mail_from);
	mry_json_array_begin(&j, "rcpt_to");
	for (i = 0; i < m->nb_rcpt; i++) {
		mry_json_array_str(&j, r);
		r += strlen(r) + 1;
	}
	mry_json_array_end(&j);
	mry_json_u64(&j, "size", m->size);
	if (res != NULL && res->generation != 0)
		mry_json_u64(&j, "generation", res->generation);
	else
		mry_json_str(&j, "generation", NULL);
	mry_json_str(&j, "verdict", verdict);
	mry_json_str(&j, "action", action);
	mry_json_array_begin(&j, "signatures");
	for (i = 0; res != NULL && i < res->nb_sigs; i++) {
		mry_json_object_begin(&j, NULL);
		mry_json_u64(&j, "id", res->sig_ids[i]);
		mry_json_str(&j, "name", res->sig_names[i]);
		mry_json_object_end(&j);
	}
	mry_json_array_end(&j);
	mry_json_array_begin(&j, "evasions");
	for (i = 0; i < EV_MAX; i++) {
		const char *n;

		if ((ev & (1ULL << i)) == 0 || (n = ev_name(i)) == NULL)
			continue;
		mry_json_array_str(&j, n);
	}
	mry_json_array_end(&j);
	if (m->hold)
		mry_json_u64(&j, "held_ms", (e->now_ns - m->held_ns) / MRY_NS_PER_MS);
	if (reason != NULL)
		mry_json_str(&j, "reason", reason);
	emit_event(e, &j);
}

static void hold_event(struct mry_engine *e, struct msg *m, const char *what,
		       const char *reason)
{
	struct mry_json j;

	event_begin(e, &j, what, &m->conn);
	mry_json_u64(&j, "msg_index", m->index);
	mry_json_u64(&j, "size", m->size);
	if (reason != NULL)
		mry_json_str(&j, "reason", reason);
	emit_event(e, &j);
}

static void flow_event(struct mry_engine *e, struct mry_flow *f, const char *reason)
{
	struct mry_engine_conn c;
	struct mry_json j;

	conn_of(f, &c);
	event_begin(e, &j, "flow", &c);
	mry_json_str(&j, "reason", reason);
	emit_event(e, &j);
}

/* ---- injected frames --------------------------------------------------- */

static void save_template(struct session *s, const struct mry_pkt *p)
{
	uint32_t n = p->l4_off + 20u;

	if (n > HDR_TMPL_MAX || n > p->frame_len)
		return;
	memcpy(s->hdr_tmpl, p->frame, n);
	s->hdr_len = (uint8_t)n;
	s->l3_off = (uint8_t)p->l3_off;
	s->ip_version = p->ip_version;
	s->tmpl_ack = p->ack;
	s->tmpl_win = p->win;
}

/*
 * Build a TCP segment from the last client frame's headers: toward the
 * client (addresses, ports and MACs swapped: it looks like the server's) or
 * toward the server (as the client's). Returns the frame length or 0.
 */
static uint32_t build_segment(struct mry_engine *e, const struct session *s,
			      bool to_client, uint32_t seq, uint32_t ack,
			      uint8_t flags, const char *payload, uint32_t plen)
{
	uint8_t *b = e->txbuf;
	uint32_t l3 = s->l3_off, l4, len;
	uint8_t *ip, *tcp;
	uint16_t csum;

	if (s->hdr_len == 0)
		return 0;
	l4 = l3 + (s->ip_version == 6 ? 40u : 20u);
	len = l4 + 20u + plen;
	if (len > TX_BUF)
		return 0;
	memset(b, 0, len);
	memcpy(b, s->hdr_tmpl, l3);                 /* Ethernet + VLAN tags */
	if (to_client) {
		memcpy(b, s->hdr_tmpl + 6, 6);
		memcpy(b + 6, s->hdr_tmpl, 6);
	}
	ip = b + l3;
	tcp = b + l4;
	if (s->ip_version == 6) {
		const uint8_t *oip = s->hdr_tmpl + l3;
		uint16_t pl = htons((uint16_t)(20u + plen));

		ip[0] = 0x60;
		memcpy(ip + 4, &pl, 2);
		ip[6] = 6;
		ip[7] = 64;
		memcpy(ip + 8, oip + (to_client ? 24 : 8), 16);
		memcpy(ip + 24, oip + (to_client ? 8 : 24), 16);
	} else {
		const uint8_t *oip = s->hdr_tmpl + l3;
		uint16_t tl = htons((uint16_t)(40u + plen));

		ip[0] = 0x45;
		memcpy(ip + 2, &tl, 2);
		ip[6] = 0x40;                       /* DF */
		ip[8] = 64;
		ip[9] = 6;
		memcpy(ip + 12, oip + (to_client ? 16 : 12), 4);
		memcpy(ip + 16, oip + (to_client ? 12 : 16), 4);
		csum = htons(mry_csum_fold(mry_csum_partial(ip, 20, 0)));
		memcpy(ip + 10, &csum, 2);
	}
	{
		const uint8_t *otcp = s->hdr_tmpl + (s->hdr_len - 20u);
		uint32_t nseq = htonl(seq), nack = htonl(ack);
		uint16_t win = htons(s->tmpl_win != 0 ? s->tmpl_win : 8192);

		memcpy(tcp, otcp + (to_client ? 2 : 0), 2);
		memcpy(tcp + 2, otcp + (to_client ? 0 : 2), 2);
		memcpy(tcp + 4, &nseq, 4);
		memcpy(tcp + 8, &nack, 4);
		tcp[12] = 5u << 4;
		tcp[13] = flags;
		memcpy(tcp + 14, &win, 2);
		if (plen > 0)
			memcpy(tcp + 20, payload, plen);
		csum = htons(mry_tcp_csum(s->ip_version, ip + (s->ip_version == 6 ? 8 : 12),
					  ip + (s->ip_version == 6 ? 24 : 16), tcp, 20u + plen));
		memcpy(tcp + 16, &csum, 2);
	}
	return len;
}

static void emit(struct mry_engine *e, const struct session *s, enum mry_emit_dir dir,
		 const uint8_t *frame, uint32_t len)
{
	uint16_t port = s->flow->in_port[s->flow->client_side & 1u];

	if (len > 0 && e->io.emit != NULL)
		e->io.emit(e->io_ctx, dir, port, frame, len);
}

/*
 * Client stream offset just past the end-of-message: what the reply to it
 * acknowledges. DATA: after the LF that ends the "." line (CRLF or bare LF);
 * BDAT: the withholding octet is the last one.
 */
static uint64_t eom_end(const struct session *s, const struct msg *m)
{
	uint64_t i;

	if (m == NULL || m->kind != MRY_SMTP_MSG_DATA)
		return m != NULL ? m->eom_off + 1 : NO_OFF;
	if (s->chunk != NULL) {
		for (i = MRY_MAX(m->eom_off, s->chunk_off); i < s->chunk_off + s->chunk_len; i++)
			if (s->chunk[i - s->chunk_off] == '\n')
				return i + 1;
	}
	return m->eom_off + 3;
}

/*
 * Answer the client with @reply (then FIN) and reset the server at the
 * withholding point: the server never completes the message. @ack_off is
 * the client offset the reply acknowledges (the end of the message).
 */
static void answer_and_reset(struct mry_engine *e, struct session *s, const char *reply,
			     uint64_t server_off, uint64_t ack_off)
{
	struct mry_flow *f = s->flow;
	unsigned cs = f->client_side & 1u;
	const struct mry_tcp_stream *cst = &f->stream[cs];
	const struct mry_tcp_stream *sst = &f->stream[cs ^ 1u];
	uint32_t srv_seq = (sst->flags & MRY_STREAM_STARTED) ? sst->next_seq : s->tmpl_ack;
	/* delivered bytes only: never acknowledge what was not received */
	uint64_t delivered = mry_tcp_stream_delivered(cst);
	uint32_t cli_ack;
	/*
	 * The server's rcv_nxt is where the forwarded bytes end: an RST at any
	 * other in-window sequence only earns a challenge ACK (RFC 5961 §3.2).
	 */
	uint32_t rst_seq = cst->base_seq + (uint32_t)s->fwd_end;
	uint32_t plen = (uint32_t)strlen(reply), n;

	if (s->flags & SESS_CLOSED_BY_US)
		return;
	if (ack_off == NO_OFF || (ack_off > delivered && s->chunk == NULL))
		ack_off = delivered;
	cli_ack = cst->base_seq + (uint32_t)ack_off;
	s->flags |= SESS_CLOSED_BY_US;
	n = build_segment(e, s, true, srv_seq, cli_ack, MRY_TCP_ACK | MRY_TCP_PSH,
			  reply, plen);
	emit(e, s, MRY_EMIT_TO_CLIENT, e->txbuf, n);
	n = build_segment(e, s, true, srv_seq + plen, cli_ack, MRY_TCP_ACK | MRY_TCP_FIN,
			  NULL, 0);
	emit(e, s, MRY_EMIT_TO_CLIENT, e->txbuf, n);
	e->st.replies_injected++;
	n = build_segment(e, s, false, rst_seq, s->tmpl_ack, MRY_TCP_RST | MRY_TCP_ACK,
			  NULL, 0);
	emit(e, s, MRY_EMIT_TO_SERVER, e->txbuf, n);
	e->st.resets_injected++;
	s->withhold_off = server_off;
}

/* ---- hold store ------------------------------------------------------------ */

static void hold_free_bytes(struct mry_engine *e, struct msg *m)
{
	struct hold_chunk *c = m->chunks, *n;

	while (c != NULL) {
		n = c->next;
		mry_pool_put(e->chunk_pool, c);
		c = n;
	}
	m->chunks = NULL;
	m->chunk_tail = NULL;
	if (m->eom_frame != NULL) {
		mry_free(e->a, m->eom_frame);
		m->eom_frame = NULL;
	}
	e->st.hold_bytes -= m->hold_bytes;
	m->hold_bytes = 0;
}

static void hold_store_full(struct mry_engine *e, struct msg *m)
{
	uint64_t sup = 0;

	m->store_full = true;
	hold_free_bytes(e, m);
	e->st.hold_store_full++;
	note_evasion(e, m->sess, EV_HOLD_STORE_FULL);
	if (mry_ratelimit_ok(&e->rl_hold_full, e->now_ns, 10 * MRY_NS_PER_SEC, &sup))
		mry_log(MRY_LOG_WARNING, MOD,
			"hold store full (%" PRIu64 " bytes cap): message %s:%u #%u will be tempfailed (%" PRIu64 " more since last line)",
			e->cfg.hold_store_bytes, m->conn.src, m->conn.sport, m->index, sup);
}

static void hold_append(struct mry_engine *e, struct msg *m, const uint8_t *d, size_t len)
{
	const size_t room = HOLD_CHUNK - sizeof(struct hold_chunk);

	while (len > 0 && !m->store_full) {
		struct hold_chunk *c = m->chunk_tail;
		size_t n;

		if (c == NULL || c->len == room) {
			if (e->st.hold_bytes + HOLD_CHUNK > e->cfg.hold_store_bytes ||
			    (c = mry_pool_get(e->chunk_pool)) == NULL) {
				hold_store_full(e, m);
				return;
			}
			if (m->chunk_tail != NULL)
				m->chunk_tail->next = c;
			else
				m->chunks = c;
			m->chunk_tail = c;
			m->hold_bytes += HOLD_CHUNK;
			e->st.hold_bytes += HOLD_CHUNK;
		}
		n = MRY_MIN(len, room - c->len);
		memcpy(c->data + c->len, d, n);
		c->len += (uint32_t)n;
		d += n;
		len -= n;
	}
}

static void hold_ring_add(struct mry_engine *e, struct msg *m)
{
	m->hold_prev = e->hold_tail;
	m->hold_next = NULL;
	if (e->hold_tail != NULL)
		e->hold_tail->hold_next = m;
	else
		e->hold_head = m;
	e->hold_tail = m;
	e->st.hold_msgs++;
	m->sess->flow->flags |= MRY_FLOW_F_HELD;
}

static void hold_ring_del(struct mry_engine *e, struct msg *m)
{
	if (m->hold_prev != NULL)
		m->hold_prev->hold_next = m->hold_next;
	else
		e->hold_head = m->hold_next;
	if (m->hold_next != NULL)
		m->hold_next->hold_prev = m->hold_prev;
	else
		e->hold_tail = m->hold_prev;
	m->hold_next = m->hold_prev = NULL;
	e->st.hold_msgs--;
	m->sess->flow->flags &= (uint8_t)~MRY_FLOW_F_HELD;
}

/* ---- scanning a message ----------------------------------------------------- */

static void mime_header(void *user, uint32_t part_index, const uint8_t *d, size_t len)
{
	struct msg *m = user;

	(void)part_index;
	if (m->scan != NULL)
		mry_scan_msg_headers(m->scan, d, len);
}

static void mime_part_begin(void *user, const struct mry_mime_part_info *pi)
{
	struct msg *m = user;
	struct mry_engine *e = m->sess->e;

	if (m->scan != NULL)
		mry_scan_msg_part_begin(m->scan);
	if (e->io.part != NULL)
		e->io.part(e->io_ctx, &m->conn, m->index, pi, MRY_PART_BEGIN, NULL, 0);
}

static void mime_part_data(void *user, const uint8_t *d, size_t len)
{
	struct msg *m = user;
	struct mry_engine *e = m->sess->e;

	if (m->scan != NULL)
		mry_scan_msg_part_data(m->scan, d, len);
	if (e->io.part != NULL)
		e->io.part(e->io_ctx, &m->conn, m->index, NULL, MRY_PART_DATA, d,
			   (uint32_t)len);
}

static void mime_part_end(void *user, const struct mry_mime_part_info *pi)
{
	struct msg *m = user;
	struct mry_engine *e = m->sess->e;

	if (m->scan != NULL)
		mry_scan_msg_part_end(m->scan);
	if (e->io.part != NULL)
		e->io.part(e->io_ctx, &m->conn, m->index, pi, MRY_PART_END, NULL, 0);
}

static void mime_anomaly(void *user, enum mry_mime_anomaly an)
{
	struct msg *m = user;

	note_evasion(m->sess->e, m->sess, EV_MIME_BASE + (unsigned)an);
}

static const struct mry_mime_callbacks mime_cb = {
	.header_data = mime_header,
	.part_begin = mime_part_begin,
	.part_data = mime_part_data,
	.part_end = mime_part_end,
	.anomaly = mime_anomaly,
};

/* Open scanning (stream + MIME) with @g for message @m. false: no resources. */
static bool scan_open(struct mry_engine *e, struct msg *m, struct mry_sigdb_gen *g)
{
	/* scratch grows once per generation, on this worker, not per message */
	if (mry_sigdb_gen_number(g) != e->prepared_gen) {
		if (mry_scanner_prepare(e->scanner, g) != 0)
			return false;
		e->prepared_gen = mry_sigdb_gen_number(g);
	}
	m->scan = mry_scan_msg_begin(e->scanner, g);
	if (m->scan == NULL)
		return false;
	m->mime = mry_mime_begin(e->mime, m);
	/* without a MIME parser the raw stream is still scanned (counted by mime) */
	return true;
}

static void scan_feed(struct msg *m, const uint8_t *d, size_t len)
{
	if (m->scan != NULL)
		mry_scan_msg_raw(m->scan, d, len);
	if (m->mime != NULL)
		mry_mime_feed(m->mime, d, len);
}

static void scan_close(struct msg *m, struct mry_scan_result *res)
{
	memset(res, 0, sizeof(*res));
	if (m->mime != NULL) {
		mry_mime_end(m->mime);
		m->mime = NULL;
	}
	if (m->scan != NULL) {
		mry_scan_msg_end(m->scan, res);
		m->scan = NULL;
	} else {
		res->scan_error = true;
	}
}

static void scan_abort(struct msg *m)
{
	if (m->mime != NULL) {
		mry_mime_abort(m->mime);
		m->mime = NULL;
	}
	if (m->scan != NULL) {
		mry_scan_msg_abort(m->scan);
		m->scan = NULL;
	}
}

/* ---- message life ----------------------------------------------------------- */

static void msg_free(struct mry_engine *e, struct msg *m)
{
	scan_abort(m);
	if (m->state == MSG_HELD)
		hold_ring_del(e, m);
	hold_free_bytes(e, m);
	if (m->sess->msg == m)
		m->sess->msg = NULL;
	if (m->sess->pending == m)
		m->sess->pending = NULL;
	mry_pool_put(e->msg_pool, m);
}

static void copy_envelope(struct msg *m, const struct mry_smtp_msg_info *mi)
{
	size_t off = 0;
	uint32_t i;

	snprintf(m->mail_from, sizeof(m->mail_from), "%s",
		 mi->mail_from != NULL ? mi->mail_from : "");
	m->nb_rcpt = 0;
	for (i = 0; i < mi->nb_rcpt; i++) {
		size_t n = strlen(mi->rcpt[i]) + 1;

		if (off + n > sizeof(m->rcpt))
			break;
		memcpy(m->rcpt + off, mi->rcpt[i], n);
		off += n;
		m->nb_rcpt++;
	}
}

/* Decide a judged message: forward, or answer and reset. Returns the action name. */
static const char *apply_result(struct mry_engine *e, struct msg *m,
				const struct mry_scan_result *res, enum msg_verdict *v)
{
	struct session *s = m->sess;
	char reply[160];

	if (res->scan_error) {
		*v = V_TEMPFAIL;
	} else if (res->action == MRY_ACTION_REJECT) {
		*v = V_INFECTED;
	} else if (res->action == MRY_ACTION_TEMPFAIL) {
		*v = V_TEMPFAIL;
	} else {
		*v = V_CLEAN;
		return "forwarded";
	}
	if (*v == V_INFECTED) {
		snprintf(reply, sizeof(reply),
			 "554 5.7.1 Message rejected: %s found by moray\r\n",
			 res->nb_sigs > 0 ? res->sig_names[0] : "signature");
		e->st.msgs_infected++;
		answer_and_reset(e, s, reply, m->eom_off, m->eom_end);
		return "rejected";
	}
	snprintf(reply, sizeof(reply),
		 "451 4.7.1 Message could not be scanned, try again later\r\n");
	e->st.msgs_tempfail++;
	answer_and_reset(e, s, reply, m->eom_off, m->eom_end);
	return "tempfailed";
}

static void tempfail_msg(struct mry_engine *e, struct msg *m, const char *reason)
{
	struct session *s = m->sess;

	e->st.msgs_tempfail++;
	answer_and_reset(e, s, "451 4.7.1 Message could not be scanned, try again later\r\n",
			 m->eom_off, m->eom_end);
	if (m->hold)
		hold_event(e, m, "release", reason);
	message_event(e, m, "tempfail", "tempfailed", NULL, NULL);
}

/* The client is told to retry (451) and @m is freed (off the hold ring too). */
static void tempfail_free(struct mry_engine *e, struct msg *m, const char *why)
{
	tempfail_msg(e, m, why);
	msg_free(e, m);   /* also takes it off the hold ring */
}

/*
 * A message whose data ended without an end-of-message (connection closed,
 * chunk refused, RSET, shutdown): the server never completed it, so nothing
 * passed, but the operator sees it: verdict "unscanned", action "aborted".
 * Frees @m.
 */
static void msg_abort(struct mry_engine *e, struct msg *m, const char *why)
{
	e->st.msgs_aborted++;
	m->hold = false;
	message_event(e, m, "unscanned", "aborted", NULL, why);
	msg_free(e, m);
}

/* The session's messages go no further: the open one aborted, a held one 451. */
static void session_drop_msgs(struct mry_engine *e, struct session *s, const char *why)
{
	if (s->msg != NULL)
		msg_abort(e, s->msg, why);
	if (s->pending != NULL) {
		if (s->pending->state == MSG_HELD)
			tempfail_free(e, s->pending, why);
		else
			msg_free(e, s->pending);
	}
}

static void smtp_msg_begin(void *user, const struct mry_smtp_msg_info *mi)
{
	struct session *s = user;
	struct mry_engine *e = s->e;
	struct mry_sigdb_gen *g;
	struct msg *m;

	if (s->msg != NULL)       /* defensive: the SMTP layer ends one before the next */
		msg_free(e, s->msg);
	m = mry_pool_get(e->msg_pool);
	if (m == NULL) {
		/* no message context: withhold everything from now, tempfail at the end */
		e->st.msg_pool_empty++;
		s->withhold_off = mry_tcp_stream_delivered(&s->flow->stream[s->flow->client_side & 1u]);
		return;
	}
	m->sess = s;
	m->index = mi->msg_index;
	m->kind = (uint8_t)mi->kind;
	m->state = MSG_DATA;
	m->eom_off = NO_OFF;
	m->evasions = s->evasions;
	conn_of(s->flow, &m->conn);
	copy_envelope(m, mi);
	s->msg = m;
	s->nb_msgs++;
	e->st.msgs++;
	mry_flow_set_phase(e->flows, s->flow, MRY_FLOW_PHASE_DATA, e->now_ns);

	g = mry_sigdb_ctl_usable(e->ctl);
	if (g == NULL || e->cfg.hold_store_bytes == 0) {
		m->hold = true;
		m->held_ns = e->now_ns;
		if (e->st.hold_msgs >= e->cfg.hold_max_msgs)
			hold_store_full(e, m);
		return;
	}
	if (!scan_open(e, m, g)) {
		/* resources short: judged by no one, so it cannot pass */
		scan_abort(m);
		m->store_full = true;
		m->hold = false;
	}
}

static void smtp_msg_data(void *user, const uint8_t *d, size_t len)
{
	struct session *s = user;
	struct mry_engine *e = s->e;
	struct msg *m = s->msg;

	if (m == NULL)
		return;
	mry_flow_data_progress(e->flows, s->flow, len, e->now_ns);
	m->size += len;
	if (e->io.message != NULL)
		e->io.message(e->io_ctx, &m->conn, m->index, d, (uint32_t)len, false);
	if (m->hold) {
		if (!m->store_full)
			hold_append(e, m, d, len);
		return;
	}
	scan_feed(m, d, len);
}

static void smtp_msg_end(void *user, const struct mry_smtp_msg_info *mi, uint64_t eom_off)
{
	struct session *s = user;
	struct mry_engine *e = s->e;
	struct msg *m = s->msg;
	struct mry_scan_result res;
	enum msg_verdict v;
	const char *action;

	if (m == NULL) {
		/* message context was unavailable: never pass it */
		if (!(s->flags & SESS_CLOSED_BY_US)) {
			e->st.msgs_tempfail++;
			answer_and_reset(e, s, "451 4.7.1 Resources exhausted, try again later\r\n",
					 eom_off, NO_OFF);
		}
		return;
	}
	copy_envelope(m, mi);
	m->size = mi->size;
	m->eom_off = eom_off;
	m->eom_end = eom_end(s, m);
	s->msg = NULL;
	if (e->io.message != NULL)
		e->io.message(e->io_ctx, &m->conn, m->index, NULL, 0, true);
	mry_flow_set_phase(e->flows, s->flow, MRY_FLOW_PHASE_CMD, e->now_ns);

	if (m->store_full) {
		tempfail_free(e, m, "hold_store_full");
		return;
	}
	if (m->hold) {
		/* withhold from the end-of-message until a usable generation judges it */
		m->state = MSG_HELD;
		s->pending = m;
		s->withhold_off = eom_off;
		hold_ring_add(e, m);
		e->st.msgs_held++;
		if (e->st.hold_oldest_ns == 0)
			e->st.hold_oldest_ns = m->held_ns;
		hold_event(e, m, "hold", mry_sigdb_ctl_reason(e->ctl));
		message_event(e, m, "unscanned", "held", NULL, NULL);
		return;
	}
	scan_close(m, &res);
	action = apply_result(e, m, &res, &v);
	if (v == V_CLEAN) {
		e->st.msgs_clean++;
		e->st.last_clean_ns = e->now_ns;
	}
	message_event(e, m, verdict_name(v), action, &res, NULL);
	msg_free(e, m);
}

static void smtp_msg_reply(void *user, uint32_t msg_index, unsigned code,
			   const char *text, size_t text_len)
{
	struct session *s = user;

	(void)code;
	(void)text;
	(void)text_len;
	/*
	 * Inline, a server never answers an end that moray withholds; in a
	 * replayed capture (moray-scan) it does, and its close afterwards is
	 * the recorded session ending, not a server giving up on the hold.
	 */
	if (s->pending != NULL && s->pending->index == msg_index)
		s->pending->replayed_reply = true;
}

static void smtp_msg_abort(void *user, const struct mry_smtp_msg_info *mi,
			   enum mry_smtp_abort_reason why)
{
	struct session *s = user;
	struct mry_engine *e = s->e;
	struct msg *m = s->msg;

	static const char *const why_names[] = { "closed", "rejected", "rset", "tls" };

	if (m == NULL)
		return;
	copy_envelope(m, mi);
	if (e->io.message != NULL)
		e->io.message(e->io_ctx, &m->conn, m->index, NULL, 0, true);
	mry_flow_set_phase(e->flows, s->flow, MRY_FLOW_PHASE_CMD, e->now_ns);
	msg_abort(e, m, why_names[why <= MRY_SMTP_ABORT_TLS ? why : 0]);
}

static void smtp_starttls(void *user)
{
	struct session *s = user;
	struct mry_engine *e = s->e;
	struct mry_engine_conn c;
	struct mry_json j;

	s->flags |= SESS_ENCRYPTED;
	e->st.msgs_encrypted++;
	if (e->cfg.encrypted == MRY_ENCRYPTED_BLOCK)
		s->flags |= SESS_BLOCK_TLS;
	conn_of(s->flow, &c);
	event_begin(e, &j, "message", &c);
	mry_json_u64(&j, "msg_index", s->nb_msgs);
	mry_json_str(&j, "mail_from", NULL);
	mry_json_array_begin(&j, "rcpt_to");
	mry_json_array_end(&j);
	mry_json_u64(&j, "size", 0);
	mry_json_str(&j, "generation", NULL);
	mry_json_str(&j, "verdict", "encrypted");
	mry_json_str(&j, "action", e->cfg.encrypted == MRY_ENCRYPTED_BLOCK ?
		     "rejected" : "forwarded");
	mry_json_array_begin(&j, "signatures");
	mry_json_array_end(&j);
	mry_json_array_begin(&j, "evasions");
	mry_json_array_end(&j);
	emit_event(e, &j);
}

static void smtp_anomaly(void *user, enum mry_smtp_anomaly an)
{
	struct session *s = user;

	note_evasion(s->e, s, EV_SMTP_BASE + (unsigned)an);
}

static const struct mry_smtp_callbacks smtp_cb = {
	.msg_begin = smtp_msg_begin,
	.msg_data = smtp_msg_data,
	.msg_end = smtp_msg_end,
	.msg_reply = smtp_msg_reply,
	.msg_abort = smtp_msg_abort,
	.starttls = smtp_starttls,
	.anomaly = smtp_anomaly,
};

/* ---- held messages ------------------------------------------------------ */

/*
 * The frame that carried the end never arrived in order while the message
 * was held (it came out of order and was dropped, and the client has not
 * retransmitted yet): send the end-of-message bytes themselves, the same
 * bytes the client sent at that offset (".\r\n" for DATA, the last octet
 * of the LAST chunk for BDAT), so the release does not wait for the
 * client's retransmission back-off. Retransmissions then pass as usual.
 */
static void release_synthesized(struct mry_engine *e, struct msg *m)
{
	struct session *s = m->sess;
	const struct mry_tcp_stream *cst = &s->flow->stream[s->flow->client_side & 1u];
	uint32_t seq = cst->base_seq + (uint32_t)m->eom_off, n;
	char last[4];
	uint32_t plen;

	if (m->kind == MRY_SMTP_MSG_DATA) {
		memcpy(last, ".\r\n", 3);
		plen = 3;
	} else if (m->size > 0 && m->chunk_tail != NULL && m->chunk_tail->len > 0) {
		last[0] = (char)m->chunk_tail->data[m->chunk_tail->len - 1];
		plen = 1;
	} else {
		return;   /* BDAT 0 LAST: the client's retransmission carries it */
	}
	n = build_segment(e, s, false, seq, s->tmpl_ack, MRY_TCP_ACK | MRY_TCP_PSH, last, plen);
	emit(e, s, MRY_EMIT_TO_SERVER, e->txbuf, n);
}

static void release_held(struct mry_engine *e, struct msg *m, struct mry_sigdb_gen *g)
{
	struct session *s = m->sess;
	struct mry_scan_result res;
	struct hold_chunk *c;
	enum msg_verdict v;
	const char *action;

	hold_ring_del(e, m);
	m->state = MSG_DONE;
	if (!scan_open(e, m, g)) {
		tempfail_free(e, m, "scan_resources");
		return;
	}
	e->st.msgs_released++;
	for (c = m->chunks; c != NULL; c = c->next)
		scan_feed(m, c->data, c->len);
	scan_close(m, &res);
	action = apply_result(e, m, &res, &v);
	if (v == V_CLEAN) {
		/* the withheld end-of-message, byte-identical to what the client sent */
		if (m->eom_frame != NULL)
			emit(e, s, MRY_EMIT_TO_SERVER, m->eom_frame, m->eom_frame_len);
		else
			release_synthesized(e, m);
		s->withhold_off = NO_OFF;
		e->st.msgs_clean++;
		e->st.last_clean_ns = e->now_ns;
		action = "released";
	}
	hold_event(e, m, "release", verdict_name(v));
	message_event(e, m, verdict_name(v), action, &res, NULL);
	if (s->pending == m)
		s->pending = NULL;
	msg_free(e, m);
}

static void hold_tick(struct mry_engine *e)
{
	struct mry_sigdb_gen *g = e->hold_head != NULL ? mry_sigdb_ctl_usable(e->ctl) : NULL;
	unsigned budget = TICK_BUDGET;
	struct msg *m = e->hold_head;

	/* arrival order: the oldest first */
	while (m != NULL && budget-- > 0) {
		struct msg *next = m->hold_next;

		if (g != NULL) {
			release_held(e, m, g);
		} else if (e->now_ns - m->held_ns >= e->cfg.hold_timeout_ns) {
			e->st.hold_timeouts++;
			tempfail_free(e, m, "hold_timeout");
		}
		m = next;
	}
	e->st.hold_oldest_ns = e->hold_head != NULL ? e->hold_head->held_ns : 0;
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
	session_drop_msgs(e, s, why);
	s->flow->app = NULL;
	mry_pool_put(e->sess_pool, s);
}

static void flow_end(void *ctx, struct mry_flow *f, enum mry_flow_end_reason why)
{
	struct mry_engine *e = ctx;
	struct session *s = f->app;
	static const char *const names[] = { "closed", "timeout", "evicted", "shutdown" };

	if (why == MRY_FLOW_END_EVICTED)
		flow_event(e, f, "evicted");
	mry_tcp_stream_release(e->reasm, &f->stream[0]);
	mry_tcp_stream_release(e->reasm, &f->stream[1]);
	if (s != NULL)
		session_end(e, s, names[why <= MRY_FLOW_END_SHUTDOWN ? why : 0]);
}

static bool is_smtp_port(const struct mry_engine *e, uint16_t port)
{
	return (e->smtp_ports[port >> 3] >> (port & 7u)) & 1u;
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

		conn_of(s->flow, &c);
		e->io.stream(e->io_ctx, &c, dc->from_client, d, len);
	}
	if (s->smtp == NULL || (s->flags & (SESS_ENCRYPTED | SESS_MIDSTREAM)))
		return;
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

/* RST to both sides: toward the client at @cli_seq/@cli_ack, the server at @srv_seq/@srv_ack. */
static void reset_both(struct mry_engine *e, const struct session *s, uint32_t cli_seq,
		       uint32_t cli_ack, uint32_t srv_seq, uint32_t srv_ack)
{
	uint32_t n;

	n = build_segment(e, s, true, cli_seq, cli_ack, MRY_TCP_RST | MRY_TCP_ACK, NULL, 0);
	emit(e, s, MRY_EMIT_TO_CLIENT, e->txbuf, n);
	n = build_segment(e, s, false, srv_seq, srv_ack, MRY_TCP_RST | MRY_TCP_ACK, NULL, 0);
	emit(e, s, MRY_EMIT_TO_SERVER, e->txbuf, n);
	e->st.resets_injected += 2;
}

/* Reset both sides of a flow moray never saw start (it may not carry mail unscanned). */
static void midstream_reset(struct mry_engine *e, struct session *s, const struct mry_pkt *p)
{
	if (s->flags & SESS_CLOSED_BY_US)
		return;
	s->flags |= SESS_CLOSED_BY_US;
	e->st.midstream_resets++;
	note_evasion(e, s, EV_MIDSTREAM);
	flow_event(e, s->flow, "midstream_reset");
	save_template(s, p);
	/* @p is the client's: the client expects its ack, the server its seq */
	reset_both(e, s, p->ack, p->seq + p->payload_len, p->seq, p->ack);
}

/*
 * Flow deadlines from what the wire shows: the handshake's end leaves
 * HALF_OPEN, the first payload leaves GREETING, a client line ending
 * re-arms the per-command deadline (a partial line never does).
 */
static void flow_phase_from_pkt(struct mry_engine *e, struct mry_flow *f,
				const struct mry_pkt *p, bool from_client)
{
	if (f->phase == MRY_FLOW_PHASE_HALF_OPEN && !(p->tcp_flags & MRY_TCP_SYN))
		mry_flow_set_phase(e->flows, f, MRY_FLOW_PHASE_GREETING, e->now_ns);
	if (p->payload_len == 0)
		return;
	if (f->phase == MRY_FLOW_PHASE_GREETING)
		mry_flow_set_phase(e->flows, f, MRY_FLOW_PHASE_CMD, e->now_ns);
	else if (f->phase == MRY_FLOW_PHASE_CMD && from_client &&
		 memchr(p->payload, '\n', p->payload_len) != NULL)
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

		if (p->tcp_flags & MRY_TCP_RST)
			return smtp ? drop(e, NULL) : MRY_PKT_FORWARD;
		/* per-source limits count the client's address */
		f = mry_flow_create_client(e->flows, &key, hash,
					   client_side_of(e, p, side), e->now_ns);
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
	flow_phase_from_pkt(e, f, p, from_client);
	if (from_client)
		save_template(s, p);

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
		reset_both(e, s, p->seq, cst->next_seq, cst->base_seq + (uint32_t)s->fwd_end,
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
			if (m != NULL && m->state == MSG_HELD && m->eom_frame == NULL &&
			    p->frame_len <= EOM_FRAME_MAX) {
				m->eom_frame = mry_zalloc(e->a, p->frame_len);
				if (m->eom_frame != NULL) {
					memcpy(m->eom_frame, p->frame, p->frame_len);
					m->eom_frame_len = p->frame_len;
				}
			}
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
		tempfail_free(e, s->pending, "server_closed");
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
 * The shortest path (DESIGN.md: non-SMTP traffic forwarded untouched):
 * read just enough of the headers to see that a frame is an unfragmented
 * IPv4/IPv6 packet that is not TCP to or from an SMTP port. Anything it is
 * not sure about (fragments, extension headers, short frames, SMTP ports)
 * goes to the full decoder. Returns true when the frame can be forwarded.
 */
static bool fast_non_smtp(const struct mry_engine *e, const uint8_t *f, uint32_t len)
{
	uint32_t off = 12;
	uint16_t et;
	uint8_t proto;

	if (len < 14)
		return false;
	et = (uint16_t)(f[off] << 8 | f[off + 1]);
	while ((et == 0x8100 || et == 0x88a8 || et == 0x9100) && off < 20) {
		off += 4;
		if (len < off + 2)
			return false;
		et = (uint16_t)(f[off] << 8 | f[off + 1]);
	}
	off += 2;
	if (et == 0x0800) {
		uint32_t ihl;

		if (len < off + 20 || (f[off] >> 4) != 4)
			return false;
		ihl = (uint32_t)(f[off] & 0xfu) * 4u;
		/* MF or a fragment offset: reassembly decides */
		if ((f[off + 6] & 0x3fu) != 0 || f[off + 7] != 0)
			return false;
		proto = f[off + 9];
		off += ihl;
	} else if (et == 0x86dd) {
		if (len < off + 40)
			return false;
		proto = f[off + 6];
		off += 40;
		if (proto != 6 && proto != 17 && proto != 1 && proto != 58)
			return false;   /* extension headers: full decode */
	} else {
		return true;   /* ARP and other non-IP traffic */
	}
	if (proto != 6)
		return true;
	if (e->cfg.track_all_tcp || len < off + 4)
		return false;
	return !is_smtp_port(e, (uint16_t)(f[off] << 8 | f[off + 1])) &&
	       !is_smtp_port(e, (uint16_t)(f[off + 2] << 8 | f[off + 3]));
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
	bool tcp = fp->frag_next_proto == 6;
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
	if (r != MRY_DECODE_TCP)
		return drop(e, &e->st.drop_invalid);
	if (l2 + dlen > EOM_FRAME_MAX || l2 + dlen > e->cfg.max_frame)
		return drop(e, &e->st.frag_too_big);
	/* one frame: this fragment's link header + the whole datagram */
	memcpy(e->fragbuf, frame, l2);
	memcpy(e->fragbuf + l2, dg, dlen);
	r = mry_decode_frame(e->fragbuf, l2 + dlen, e->cfg.decode_flags, &p, &e->dst);
	if (r != MRY_DECODE_TCP)
		return drop(e, &e->st.drop_invalid);
	v = tcp_packet(e, &p, in_port);
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
	e->st.pkts++;
	e->st.bytes += len;
	if (fast_non_smtp(e, frame, len)) {
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

void mry_engine_set_decode_flags(struct mry_engine *e, unsigned flags)
{
	e->cfg.decode_flags = flags;
}

void mry_engine_tick(struct mry_engine *e, uint64_t now_ns)
{
	e->now_ns = now_ns;
	mry_flow_expire(e->flows, now_ns);
	mry_ipfrag_expire(e->frag, now_ns, TICK_BUDGET);
	if (e->hold_head != NULL)
		hold_tick(e);
}

static bool shutdown_one(void *ctx, struct mry_flow *f)
{
	struct mry_engine *e = ctx;
	struct session *s = f->app;

	/* a message in DATA never reaches the server; a held one gets 451 */
	if (s != NULL)
		session_drop_msgs(e, s, "shutdown");
	return true;
}

void mry_engine_shutdown(struct mry_engine *e, uint64_t now_ns)
{
	e->now_ns = now_ns;
	mry_flow_foreach(e->flows, shutdown_one, e);
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
	if (e->cfg.max_msgs == 0)
		e->cfg.max_msgs = 4096;
	chunks = (uint32_t)MRY_MIN(e->cfg.hold_store_bytes / HOLD_CHUNK, (uint64_t)UINT32_MAX);
	e->frag = mry_ipfrag_create(a, &cfg->ipfrag);
	e->flows = mry_flow_table_create(a, &cfg->flow, flow_end, e);
	e->reasm = mry_reasm_create(a, &cfg->reasm);
	e->smtp = mry_smtp_ctx_create(a, &cfg->smtp, &smtp_cb);
	e->mime = mry_mime_ctx_create(a, &cfg->mime, &mime_cb);
	e->scanner = mry_scanner_create(a, e->cfg.max_msgs);
	e->sess_pool = mry_pool_create(a, "session", sizeof(struct session),
				       cfg->flow.max_flows != 0 ? cfg->flow.max_flows : 65536);
	e->msg_pool = mry_pool_create(a, "message", sizeof(struct msg), e->cfg.max_msgs);
	e->chunk_pool = chunks > 0 ? mry_pool_create_ex(a, "hold", HOLD_CHUNK, chunks,
							       sizeof(struct hold_chunk)) : NULL;
	if (e->frag == NULL || e->flows == NULL || e->reasm == NULL || e->smtp == NULL ||
	    e->mime == NULL || e->scanner == NULL || e->sess_pool == NULL ||
	    e->msg_pool == NULL || (chunks > 0 && e->chunk_pool == NULL)) {
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

size_t mry_engine_conn_bytes(const struct mry_engine *e)
{
	return mry_flow_table_bytes_per_flow(e->flows) + sizeof(struct session) +
	       mry_smtp_session_bytes();
}

void mry_engine_get_stats(const struct mry_engine *e, struct mry_engine_stats *st)
{
	*st = e->st;
}

void mry_engine_foreach_counter(const struct mry_engine *e,
				void (*fn)(void *ctx, const char *module,
					   const char *name, uint64_t value),
				void *ctx)
{
	struct mry_flow_stats fs;
	struct mry_reasm_stats rs;
	struct mry_smtp_stats ss;
	struct mry_mime_stats ms;
	struct mry_scan_stats cs;
	struct mry_ipfrag_stats is;
	unsigned i;

#define C(mod, name, v) do { if ((v) != 0) fn(ctx, mod, name, (v)); } while (0)
	for (i = 0; i < MRY_DEV_MAX; i++)
		C("decode", mry_decode_event_name(i), e->dst.ev[i]);
	mry_ipfrag_get_stats(e->frag, &is);
	C("ipfrag", "fragments", is.fragments);
	C("ipfrag", "completed", is.completed);
	C("ipfrag", "timeouts", is.timeouts);
	C("ipfrag", "table_full", is.table_full);
	C("ipfrag", "too_big", is.too_big);
	C("ipfrag", "overlap_same", is.overlap_same);
	C("ipfrag", "overlap_conflict", is.overlap_conflict);
	mry_flow_get_stats(e->flows, &fs);
	C("flow", "created", fs.created);
	C("flow", "timeout_syn", fs.timeouts[MRY_FLOW_PHASE_HALF_OPEN]);
	C("flow", "timeout_cmd", fs.timeouts[MRY_FLOW_PHASE_CMD]);
	C("flow", "timeout_data", fs.timeouts[MRY_FLOW_PHASE_DATA]);
	C("flow", "timeout_closing", fs.timeouts[MRY_FLOW_PHASE_CLOSING]);
	C("flow", "evicted_pre_data", fs.evicted_pre_data);
	C("flow", "evicted_data", fs.evicted_data);
	C("flow", "table_full", fs.table_full);
	C("flow", "per_source_limit", fs.per_source_limit);
	mry_reasm_get_stats(e->reasm, &rs);
	C("tcp_reasm", "segments", rs.segments);
	C("tcp_reasm", "out_of_order", rs.out_of_order);
	C("tcp_reasm", "retransmit", rs.retransmit);
	C("tcp_reasm", "overlap_same", rs.overlap_same);
	C("tcp_reasm", "overlap_conflict", rs.overlap_conflict);
	C("tcp_reasm", "ooo_stream_cap", rs.ooo_stream_cap);
	C("tcp_reasm", "ooo_pool_empty", rs.ooo_pool_empty);
	C("tcp_reasm", "after_close", rs.after_close);
	C("tcp_reasm", "bytes_delivered", rs.bytes_delivered);
	mry_smtp_get_stats(e->smtp, &ss);
	C("smtp", "sessions", ss.sessions);
	C("smtp", "messages_begun", ss.messages_begun);
	C("smtp", "messages_ended", ss.messages_ended);
	C("smtp", "messages_aborted", ss.messages_aborted);
	C("smtp", "starttls", ss.starttls);
	for (i = 0; i < MRY_SMTP_AN_MAX; i++)
		C("smtp", mry_smtp_anomaly_name(i), ss.anomalies[i]);
	mry_mime_get_stats(e->mime, &ms);
	C("mime", "parts", ms.parts);
	C("mime", "bytes_decoded", ms.bytes_decoded);
	C("mime", "pool_empty", ms.pool_empty);
	for (i = 0; i < MRY_MIME_AN_MAX; i++)
		C("mime", mry_mime_anomaly_name(i), ms.anomalies[i]);
	mry_scan_get_stats(e->scanner, &cs);
	C("scan", "messages", cs.messages);
	C("scan", "bytes_raw", cs.bytes_raw);
	C("scan", "bytes_decoded", cs.bytes_decoded);
	C("scan", "matches", cs.matches);
	C("scan", "msg_pool_empty", cs.msg_pool_empty);
	C("scan", "stream_pool_empty", cs.stream_pool_empty);
	C("scan", "hs_errors", cs.hs_errors);
	for (i = EV_TCP_CONFLICT; i < EV_MAX; i++)
		C("engine", ev_name(i), e->ev_count[i]);
#undef C
}
