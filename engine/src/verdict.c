/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * From scan results to actions and events: the scan glue (stream scan and
 * the MIME parser fed the same bytes), the verdict applied to a judged
 * message (forward, or answer and reset), tempfails and aborts, message
 * teardown, and the verdict-log events the engine writes.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "moray/event.h"

#include "engine_priv.h"

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

void mry_verdict_conn_of(const struct mry_flow *f, struct mry_engine_conn *c)
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

/*
 * Hand the event formatted in e->evbuf (length @n) to the I/O layer. Every
 * field of every event is bounded, and test_event's largest_event_* tests
 * build each kind with every field at its bound and show it fits
 * EVENT_BUF, so @n is never 0; if a change broke that bound, say so loudly
 * rather than lose verdicts silently.
 */
void mry_verdict_emit(struct mry_engine *e, size_t n)
{
	if (n == 0) {
		mry_log(MRY_LOG_ERR, MOD,
			"BUG: a verdict-log event did not fit the %d-byte event buffer and was lost (the bound in test_event is wrong)",
			EVENT_BUF);
		return;
	}
	e->st.events++;
	if (e->io.event != NULL)
		e->io.event(e->io_ctx, e->evbuf, n);
}

const char *mry_verdict_name(enum msg_verdict v)
{
	switch (v) {
	case V_CLEAN: return "clean";
	case V_INFECTED: return "infected";
	case V_TEMPFAIL: return "tempfail";
	case V_EVASION: return "evasion";
	default: return "unscanned";
	}
}

void mry_verdict_message_event(struct mry_engine *e, struct msg *m, const char *verdict,
			       const char *action, const struct mry_scan_result *res,
			       const char *reason)
{
	const char *names[EV_MAX];
	struct mry_event_msg em = {
		.conn = &m->conn,
		.msg_index = m->index,
		.mail_from = m->mail_from,
		.rcpt = m->rcpt,
		.nb_rcpt = m->nb_rcpt,
		.size = m->size,
		.generation = res != NULL ? res->generation : 0,
		.verdict = verdict,
		.action = action,
		.res = res,
		.evasions = names,
		.held = m->hold,
		.held_ms = m->hold ? (e->now_ns - m->held_ns) / MRY_NS_PER_MS : 0,
		.reason = reason,
		.server_reply = m->server_reply,
	};
	unsigned i;

	for (i = 0; i < EV_MAX; i++) {
		const char *n;

		if ((m->evasions & (1ULL << i)) != 0 && (n = ev_name(i)) != NULL)
			names[em.nb_evasions++] = n;
	}
	mry_verdict_emit(e, mry_event_message(e->evbuf, sizeof(e->evbuf), e->now_ns, &em));
}

void mry_verdict_encrypted_event(struct mry_engine *e, struct session *s)
{
	struct mry_engine_conn c;
	struct mry_event_msg em = {
		.conn = &c,
		.msg_index = s->nb_msgs,
		.verdict = "encrypted",
		.action = e->cfg.encrypted == MRY_ENCRYPTED_BLOCK ? "rejected" : "forwarded",
	};

	mry_verdict_conn_of(s->flow, &c);
	mry_verdict_emit(e, mry_event_message(e->evbuf, sizeof(e->evbuf), e->now_ns, &em));
}

void mry_verdict_hold_event(struct mry_engine *e, struct msg *m, const char *what,
			    const char *reason)
{
	mry_verdict_emit(e, mry_event_hold(e->evbuf, sizeof(e->evbuf), e->now_ns, what, &m->conn,
				     m->index, m->size, reason));
}

void mry_verdict_flow_event(struct mry_engine *e, struct mry_flow *f, const char *reason)
{
	struct mry_engine_conn c;

	mry_verdict_conn_of(f, &c);
	mry_verdict_emit(e, mry_event_flow(e->evbuf, sizeof(e->evbuf), e->now_ns, &c, reason));
}

void mry_verdict_session_anomalies(struct mry_engine *e, struct session *s)
{
	const char *names[EV_MAX];
	struct mry_engine_conn c;
	uint32_t n = 0;
	unsigned i;

	if (s->evasions == 0 || s->flow == NULL)
		return;
	for (i = 0; i < EV_MAX; i++) {
		const char *nm;

		if ((s->evasions & (1ULL << i)) != 0 && (nm = ev_name(i)) != NULL)
			names[n++] = nm;
	}
	s->evasions = 0;
	mry_verdict_conn_of(s->flow, &c);
	mry_verdict_emit(e, mry_event_flow_evasions(e->evbuf, sizeof(e->evbuf), e->now_ns, &c,
					      "anomalies", names, n));
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
	struct mry_engine *e = m->sess->e;
	unsigned bit = EV_MIME_BASE + (unsigned)an;

	/* this message's, even when it is parsed after its end (a held one) */
	e->ev_count[bit]++;
	e->st.evasions++;
	m->evasions |= 1ULL << bit;
	if (m->sess->flow != NULL)
		m->sess->flow->flags |= MRY_FLOW_F_EVASION;
}

const struct mry_mime_callbacks mry_verdict_mime_cb = {
	.header_data = mime_header,
	.part_begin = mime_part_begin,
	.part_data = mime_part_data,
	.part_end = mime_part_end,
	.anomaly = mime_anomaly,
};

/* Open scanning (stream + MIME) with @g for message @m. false: no resources. */
bool mry_verdict_scan_open(struct mry_engine *e, struct msg *m, struct mry_sigdb_gen *g)
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

void mry_verdict_scan_feed(struct msg *m, const uint8_t *d, size_t len)
{
	if (m->scan != NULL)
		mry_scan_msg_raw(m->scan, d, len);
	if (m->mime != NULL)
		mry_mime_feed(m->mime, d, len);
}

void mry_verdict_scan_close(struct msg *m, struct mry_scan_result *res)
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

void mry_verdict_scan_abort(struct msg *m)
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

void mry_verdict_msg_free(struct mry_engine *e, struct msg *m)
{
	mry_verdict_scan_abort(m);
	if (m->state == MSG_HELD)
		mry_hold_queue_del(e, m);
	mry_hold_free_bytes(e, m);
	if (m->sess->msg == m)
		m->sess->msg = NULL;
	if (m->sess->pending == m)
		m->sess->pending = NULL;
	for (struct msg **w = &m->sess->wait_head; *w != NULL; w = &(*w)->wait_next) {
		if (*w == m) {
			*w = m->wait_next;
			break;
		}
	}
	mry_pool_put(e->msg_pool, m);
	e->st.msgs_open--;
}

/*
 * A judged message is logged with the server's final reply to its end
 * (server_reply): a message moray forwarded waits for that reply (or the
 * end of the session: null); one moray answered itself, or whose reply
 * already came (a replayed hold), is logged now; one moray answered is
 * logged with null even when a replayed capture shows the server's reply
 * (inline the server was reset and never answers). Frees @m either way,
 * now or when it is logged.
 */
void mry_verdict_msg_done(struct mry_engine *e, struct msg *m, const char *verdict,
			  const char *action, const struct mry_scan_result *res)
{
	struct session *s = m->sess;
	bool forwarded = strcmp(action, "forwarded") == 0 || strcmp(action, "released") == 0;
	struct msg **w;

	if (!forwarded)
		m->server_reply = 0;   /* moray's answer stands in for the server's */
	if (!forwarded || m->server_reply != 0 || s->smtp == NULL) {
		mry_verdict_message_event(e, m, verdict, action, res, NULL);
		mry_verdict_msg_free(e, m);
		return;
	}
	m->verdict_name = verdict;
	m->action_name = action;
	m->has_res = res != NULL;
	if (res != NULL)
		m->res = *res;
	mry_verdict_scan_abort(m);
	if (m->state == MSG_HELD)
		mry_hold_queue_del(e, m);
	m->state = MSG_DONE;
	mry_hold_free_bytes(e, m);
	if (s->msg == m)
		s->msg = NULL;
	if (s->pending == m)
		s->pending = NULL;
	/* arrival order: replies come in the order the ends were sent */
	m->wait_next = NULL;
	for (w = &s->wait_head; *w != NULL; w = &(*w)->wait_next)
		;
	*w = m;
}

static void waiting_event(struct mry_engine *e, struct msg *m)
{
	mry_verdict_message_event(e, m, m->verdict_name, m->action_name,
				  m->has_res ? &m->res : NULL, NULL);
	mry_verdict_msg_free(e, m);
}

void mry_verdict_server_reply(struct mry_engine *e, struct session *s,
			      const struct mry_smtp_msg_info *mi, unsigned code)
{
	struct msg *m;

	for (m = s->wait_head; m != NULL; m = m->wait_next)
		if (m->index == mi->msg_index)
			break;
	if (m == NULL)
		return;
	m->server_reply = (uint16_t)code;
	/* the replies to pipelined RCPTs may have refused recipients since */
	if (mi->has_envelope)
		mry_verdict_copy_envelope(m, mi);
	waiting_event(e, m);
}

void mry_verdict_flush_waiting(struct mry_engine *e, struct session *s)
{
	while (s->wait_head != NULL)
		waiting_event(e, s->wait_head);
}

void mry_verdict_copy_envelope(struct msg *m, const struct mry_smtp_msg_info *mi)
{
	const char *from = mi->mail_from != NULL ? mi->mail_from : "";
	size_t fl = strnlen(from, sizeof(m->mail_from) - 1), off = 0;
	uint32_t i;

	memcpy(m->mail_from, from, fl);         /* truncated as snprintf did */
	m->mail_from[fl] = '\0';
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

/*
 * A message that cannot be scanned (Hyperscan refused a scan or a stream,
 * or stream state ran out) is answered 451, never passed: one ERR line
 * says so, the first time and then at most every 10 s with the count since.
 */
void mry_verdict_log_scan_error(struct mry_engine *e, const struct msg *m)
{
	struct mry_scan_stats st;
	uint64_t sup;

	if (!mry_ratelimit_ok(&e->rl_scan_error, e->now_ns, 10 * MRY_NS_PER_SEC, &sup))
		return;
	mry_scan_get_stats(e->scanner, &st);
	mry_log(MRY_LOG_ERR, MOD,
		"message %u from %s:%u could not be scanned and will not pass: 451 (Hyperscan errors %" PRIu64
		", stream pool empty %" PRIu64 "; %" PRIu64 " more such messages since last line)",
		m->index, m->conn.src, m->conn.sport, st.hs_errors, st.stream_pool_empty, sup);
}

/* Decide a judged message: forward, or answer and reset. Returns the action name. */
const char *mry_verdict_apply(struct mry_engine *e, struct msg *m,
			      const struct mry_scan_result *res, enum msg_verdict *v)
{
	struct session *s = m->sess;
	char reply[160];

	if (res->action == MRY_ACTION_REJECT && !res->scan_error) {
		*v = V_INFECTED;
	} else if (m->ambiguous_end && e->cfg.bare_lf == MRY_BARE_LF_REJECT) {
		/* never acceptable, scanned or not */
		*v = V_EVASION;
	} else if (res->scan_error) {
		/* not judged, so it cannot pass */
		*v = V_TEMPFAIL;
		mry_verdict_log_scan_error(e, m);
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
		mry_inject_answer_and_reset(e, s, reply, m->eom_off, m->eom_end);
		return "rejected";
	}
	if (*v == V_EVASION) {
		/* SMTP smuggling: the server side never sees any of its ends */
		e->st.msgs_evasion++;
		mry_inject_answer_and_reset(e, s,
			"554 5.5.2 Message rejected: ambiguous end of data (bare LF or CR around \".\")\r\n",
			m->eom_off, m->eom_end);
		return "rejected";
	}
	snprintf(reply, sizeof(reply),
		 "451 4.7.1 Message could not be scanned, try again later\r\n");
	e->st.msgs_tempfail++;
	mry_inject_answer_and_reset(e, s, reply, m->eom_off, m->eom_end);
	return "tempfailed";
}

static void tempfail_msg(struct mry_engine *e, struct msg *m, const char *reason)
{
	struct session *s = m->sess;

	e->st.msgs_tempfail++;
	mry_inject_answer_and_reset(e, s, "451 4.7.1 Message could not be scanned, try again later\r\n",
			 m->eom_off, m->eom_end);
	if (m->hold)
		mry_verdict_hold_event(e, m, "release", reason);
	mry_verdict_message_event(e, m, "tempfail", "tempfailed", NULL, NULL);
}

/* The client is told to retry (451) and @m is freed (off the hold ring too). */
void mry_verdict_tempfail_free(struct mry_engine *e, struct msg *m, const char *why)
{
	tempfail_msg(e, m, why);
	mry_verdict_msg_free(e, m);   /* also takes it off the hold ring */
}

/*
 * A message whose data ended without an end-of-message (connection closed,
 * chunk refused, RSET, shutdown): the server never completed it, so nothing
 * passed, but the operator sees it: verdict "unscanned", action "aborted".
 * Frees @m.
 */
void mry_verdict_msg_abort(struct mry_engine *e, struct msg *m, const char *why)
{
	e->st.msgs_aborted++;
	m->hold = false;
	mry_verdict_message_event(e, m, "unscanned", "aborted", NULL, why);
	mry_verdict_msg_free(e, m);
}

/*
 * Stop (SIGINT/SIGTERM, or the end of moray-scan's captures): DESIGN.md
 * promises a 4xx to every unfinished message. The message in DATA gets
 * 421 (RFC 5321 §3.8: the service closes the channel) and its server side
 * a reset, so neither side waits for a message that will not be judged; a
 * held one gets 451 as before; forwarded ones still waiting for the
 * server's reply are logged with server_reply null.
 */
void mry_verdict_session_shutdown(struct mry_engine *e, struct session *s)
{
	struct msg *m = s->msg;

	if (m != NULL && !(s->flags & SESS_CLOSED_BY_US)) {
		e->st.msgs_tempfail++;
		e->st.msgs_shutdown_tempfail++;
		mry_inject_answer_and_reset(e, s,
			"421 4.3.2 Service shutting down, try again later\r\n",
			s->fwd_end, NO_OFF);
		m->hold = false;
		mry_verdict_message_event(e, m, "tempfail", "tempfailed", NULL, "shutdown");
		mry_verdict_msg_free(e, m);
	}
	mry_verdict_session_drop_msgs(e, s, "shutdown");
}

/* The session's messages go no further: the open one aborted, a held one 451. */
void mry_verdict_session_drop_msgs(struct mry_engine *e, struct session *s, const char *why)
{
	mry_verdict_flush_waiting(e, s);
	if (s->msg != NULL)
		mry_verdict_msg_abort(e, s->msg, why);
	if (s->pending != NULL) {
		if (s->pending->state == MSG_HELD)
			mry_verdict_tempfail_free(e, s->pending, why);
		else
			mry_verdict_msg_free(e, s->pending);
	}
}
