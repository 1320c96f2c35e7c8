/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SMTP client and server state machines (RFC 5321, 2920, 3030, 3207, 4954).
 *
 * The module is fed the two reassembled directions of one connection in any
 * relative order. Client commands are parsed as soon as their line is
 * complete and queued; the server's replies are matched to the queue in
 * order and confirm or undo what the command started (a refused RCPT leaves
 * the envelope, a refused MAIL cancels the transaction, a refused BDAT chunk
 * aborts its message). Three commands decide how the bytes after them are
 * read: DATA (message or more commands), AUTH (SASL responses or commands)
 * and STARTTLS (TLS or commands). After such a "gate" the client bytes are
 * copied into a pooled, capped buffer until the reply arrives, then replayed
 * through the same parser. Everything else is zero-copy: message bytes are
 * handed to the consumer straight from the input, a run at a time, split
 * only where a stuffing dot is removed.
 *
 * End of DATA follows what Postfix 3.7 does (smtpd_forbid_bare_newline=no,
 * smtp_get()): a line ends at LF, CRs before that LF are stripped, and a
 * line that is then "." ends the message. So "\n.\n", "\r\n.\r\n" and
 * "\n.\r\r\n" all end it; "\r.\r" does not. Bare LF and bare CR are counted
 * as anomalies (at most one of each per line) and the wire bytes are
 * delivered unchanged (no LF -> CRLF rewriting: zero copy wins; the message
 * as delivered ends with the line end before the terminator, which is what
 * Postfix stores for CRLF input). Postfix splits lines longer than
 * line_length_limit (2048) into continuation records and does not look for
 * a dot at the start of a continuation; that is the same as looking for the
 * dot only after a line end, which is what this parser does.
 *
 * When the buffer for bytes behind a gate hits max_pending_data (or no
 * buffer is free) the module decides before the reply, by the likelier
 * reading, and counts PENDING_DATA_FULL: behind DATA the bytes are a message
 * (msg_begin, replay as message data); behind AUTH or STARTTLS they are
 * commands. Nothing is ever skipped unparsed. If the reply later disagrees,
 * an open speculative DATA message is aborted (REJECTED) and parsing goes
 * back to commands at that point; the stream may be out of step after that.
 *
 * Replies are expected after the commands they answer (a capture point or
 * an inline box always sees it that way); a reply with nothing waiting is
 * UNEXPECTED_REPLY and changes nothing. The greeting is queued at session
 * start; a first reply other than 220/421/554 means it was never seen and
 * goes to the first command. A 354 always answers the waiting DATA, even
 * when replies before it were lost or merged (REPLY_OUT_OF_STEP). A 421
 * reply closes the session. mry_smtp_close() first reads bytes still held
 * behind a gate the likelier way, so a capture that lost the server side
 * still shows what the client sent.
 *
 * Memory: the session is a few hundred bytes (mry_smtp_session_bytes()).
 * A command line split across segments keeps 32 bytes in the session and
 * moves to a 512-byte pooled buffer when longer (line_pool_empty: only the
 * 32-byte prefix is parsed); longer lines are parsed from their first 512
 * bytes whether they came whole or split. An envelope (max_rcpt addresses
 * of max_addr_len bytes) comes from the envelope pool for the life of one
 * transaction (envelope_pool_empty: the message is still reported, with an
 * empty envelope). Replies wait in a 16-run queue; runs of RCPT, OTHER and
 * BDAT chunks coalesce, and beyond 16 distinct runs the newest two fold
 * into one whose replies change nothing (PIPELINE_OVERFLOW), which keeps
 * replies in step at the cost of what those replies would have confirmed.
 */
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "moray/common.h"
#include "moray/smtp.h"
#include "smtp_priv.h"

struct mry_smtp_ctx {
	struct mry_alloc alloc;
	struct mry_smtp_config cfg;
	struct mry_smtp_callbacks cb;
	struct mry_pool *sess_pool;
	struct mry_pool *pend_pool;
	struct mry_pool *env_pool;
	struct mry_pool *line_pool;
	const char **rcpt_view;
	size_t addr_cap;          /* max_addr_len + NUL */
	struct mry_smtp_stats st;
};

static const char *const anomaly_names[MRY_SMTP_AN_MAX] = {
	[MRY_SMTP_AN_BARE_LF] = "smtp_bare_lf",
	[MRY_SMTP_AN_BARE_CR] = "smtp_bare_cr",
	[MRY_SMTP_AN_CMD_LINE_TOO_LONG] = "smtp_cmd_line_too_long",
	[MRY_SMTP_AN_DATA_LINE_TOO_LONG] = "smtp_data_line_too_long",
	[MRY_SMTP_AN_REPLY_LINE_TOO_LONG] = "smtp_reply_line_too_long",
	[MRY_SMTP_AN_REPLY_MALFORMED] = "smtp_reply_malformed",
	[MRY_SMTP_AN_UNKNOWN_COMMAND] = "smtp_unknown_command",
	[MRY_SMTP_AN_UNEXPECTED_REPLY] = "smtp_unexpected_reply",
	[MRY_SMTP_AN_PIPELINE_AFTER_DATA] = "smtp_pipeline_after_data",
	[MRY_SMTP_AN_PENDING_DATA_FULL] = "smtp_pending_data_full",
	[MRY_SMTP_AN_BDAT_BAD_SIZE] = "smtp_bdat_bad_size",
	[MRY_SMTP_AN_BDAT_AFTER_DATA_MIX] = "smtp_bdat_data_mix",
	[MRY_SMTP_AN_NUL_IN_COMMAND] = "smtp_nul_in_command",
	[MRY_SMTP_AN_DATA_WITHOUT_RCPT] = "smtp_data_without_rcpt",
	[MRY_SMTP_AN_MAIL_NESTED] = "smtp_mail_nested",
	[MRY_SMTP_AN_TOO_MANY_RCPT] = "smtp_too_many_rcpt",
	[MRY_SMTP_AN_ENVELOPE_TRUNCATED] = "smtp_envelope_truncated",
	[MRY_SMTP_AN_DATA_AFTER_TLS] = "smtp_data_after_tls",
	[MRY_SMTP_AN_MSG_UNTERMINATED] = "smtp_msg_unterminated",
	[MRY_SMTP_AN_PIPELINE_OVERFLOW] = "smtp_pipeline_overflow",
	[MRY_SMTP_AN_REPLY_OUT_OF_STEP] = "smtp_reply_out_of_step",
};

#define SMTP_SLOT_NONE 0xffffu
#define SMTP_BDAT_SIZE_MAX (1ULL << 62)

/* ---- small helpers ---------------------------------------------------- */

static void anomaly(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		    enum mry_smtp_anomaly an)
{
	c->st.anomalies[an]++;
	if (c->cb.anomaly != NULL)
		c->cb.anomaly(s->user, an);
}

static inline char lower(char ch)
{
	return (ch >= 'A' && ch <= 'Z') ? (char)(ch + ('a' - 'A')) : ch;
}

/* case-insensitive: does [p, p+n) start with the lower-case word @w? */
static bool ci_prefix(const char *p, size_t n, const char *w)
{
	size_t i;

	for (i = 0; w[i] != '\0'; i++)
		if (i >= n || lower(p[i]) != w[i])
			return false;
	return true;
}

static bool ci_equal(const char *p, size_t n, const char *w)
{
	return strlen(w) == n && ci_prefix(p, n, w);
}

/* ---- envelope --------------------------------------------------------- */

static char *env_from(const struct mry_smtp_ctx *c, struct smtp_env *e)
{
	return (char *)e->mem + c->cfg.max_rcpt;
}

static char *env_rcpt(const struct mry_smtp_ctx *c, struct smtp_env *e, uint32_t i)
{
	return (char *)e->mem + c->cfg.max_rcpt + c->addr_cap * (1 + (size_t)i);
}

static uint8_t *env_refused(const struct mry_smtp_ctx *c, struct smtp_env *e)
{
	(void)c;
	return e->mem;
}

static struct smtp_env *env_get(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	if (s->env == NULL) {
		s->env = mry_pool_get(c->env_pool);
		if (s->env == NULL)
			c->st.envelope_pool_empty++;
	}
	return s->env;
}

/* The transaction is over (end of message, RSET, refused MAIL, EHLO). */
static void txn_end(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	mry_pool_put(c->env_pool, s->env);
	s->env = NULL;
	s->txn++;
}

static uint32_t env_live_rcpt(const struct mry_smtp_ctx *c, struct smtp_env *e)
{
	const uint8_t *ref;
	uint32_t i, n = 0;

	if (e == NULL)
		return 0;
	ref = env_refused(c, e);
	for (i = 0; i < e->nb_slots; i++)
		if (ref[i] == 0)
			n++;
	return n;
}

static void mi_build(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		     struct mry_smtp_msg_info *mi)
{
	struct smtp_env *e = s->env;

	memset(mi, 0, sizeof(*mi));
	mi->kind = s->msg_bdat ? MRY_SMTP_MSG_BDAT : MRY_SMTP_MSG_DATA;
	mi->msg_index = s->cur_msg;
	mi->mail_from = "";
	mi->rcpt = c->rcpt_view;
	mi->size = s->msg_size;
	if (e != NULL) {
		const uint8_t *ref = env_refused(c, e);
		uint32_t i;

		mi->mail_from = env_from(c, e);
		for (i = 0; i < e->nb_slots; i++)
			if (ref[i] == 0)
				c->rcpt_view[mi->nb_rcpt++] = env_rcpt(c, e, i);
		mi->declared_size = e->declared_size;
		mi->body_8bit = e->body_8bit;
		mi->body_binary = e->body_binary;
		mi->smtputf8 = e->smtputf8;
	}
}

/* ---- message events --------------------------------------------------- */

static void msg_begin(struct mry_smtp_ctx *c, struct mry_smtp_session *s, bool bdat)
{
	struct mry_smtp_msg_info mi;

	s->in_msg = true;
	s->msg_bdat = bdat;
	s->cur_msg = s->msg_count++;
	s->msg_size = 0;
	c->st.messages_begun++;
	if (c->cb.msg_begin != NULL) {
		mi_build(c, s, &mi);
		c->cb.msg_begin(s->user, &mi);
	}
}

static void deliver(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		    const uint8_t *p, size_t n)
{
	if (n == 0)
		return;
	s->msg_size += n;
	if (c->cb.msg_data != NULL)
		c->cb.msg_data(s->user, p, n);
}

static void msg_end(struct mry_smtp_ctx *c, struct mry_smtp_session *s, uint64_t eom_off)
{
	struct mry_smtp_msg_info mi;

	s->in_msg = false;
	c->st.messages_ended++;
	if (c->cb.msg_end != NULL) {
		mi_build(c, s, &mi);
		c->cb.msg_end(s->user, &mi, eom_off);
	}
}

static void msg_abort(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		      enum mry_smtp_abort_reason why)
{
	struct mry_smtp_msg_info mi;

	s->in_msg = false;
	c->st.messages_aborted++;
	if (c->cb.msg_abort != NULL) {
		mi_build(c, s, &mi);
		c->cb.msg_abort(s->user, &mi, why);
	}
}

static void msg_reply(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		      uint32_t idx, unsigned code, const char *text, size_t tlen)
{
	if (code >= 200 && code < 300)
		c->st.messages_accepted++;
	else
		c->st.messages_refused++;
	if (c->cb.msg_reply != NULL)
		c->cb.msg_reply(s->user, idx, code, text, tlen);
}

/* ---- reply queue ------------------------------------------------------ */

static struct smtp_qent *q_at(struct mry_smtp_session *s, unsigned i)
{
	return &s->q[(s->q_head + i) % MRY_SMTP_QUEUE_CAP];
}

static bool q_can_merge(const struct smtp_qent *t, const struct smtp_qent *n)
{
	if (t->type != n->type || t->flags != n->flags || t->count == UINT16_MAX)
		return false;
	switch (t->type) {
	case SMTP_Q_OTHER:
		return true;
	case SMTP_Q_RCPT:
		if ((t->arg >> 16) != (n->arg >> 16))
			return false;
		if ((t->arg & 0xffff) == SMTP_SLOT_NONE)
			return (n->arg & 0xffff) == SMTP_SLOT_NONE;
		return (t->arg & 0xffff) + t->count == (n->arg & 0xffff);
	case SMTP_Q_BDAT:
		/* chunks of one message before LAST: only the count matters */
		return t->arg == n->arg && !(t->flags & SMTP_QF_LAST);
	default:
		return false;
	}
}

static void q_push(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		   uint8_t type, uint8_t flags, uint32_t arg)
{
	struct smtp_qent n = { .type = type, .flags = flags, .count = 1, .arg = arg };
	struct smtp_qent *t;

	if (s->q_len > 0) {
		t = q_at(s, s->q_len - 1u);
		if (q_can_merge(t, &n)) {
			t->count++;
			return;
		}
	}
	if (s->q_len == MRY_SMTP_QUEUE_CAP) {
		/*
		 * Only a client pipelining many different commands without
		 * reading replies gets here. Keep replies in step by folding
		 * the two newest runs into one whose replies change nothing.
		 */
		struct smtp_qent *a = q_at(s, s->q_len - 2u);
		uint32_t sum;

		t = q_at(s, s->q_len - 1u);
		anomaly(c, s, MRY_SMTP_AN_PIPELINE_OVERFLOW);
		if (a->type == SMTP_Q_DATA || t->type == SMTP_Q_DATA)
			s->withhold = UINT64_MAX;
		sum = (uint32_t)a->count + t->count;
		a->type = SMTP_Q_OTHER;
		a->flags = 0;
		a->arg = 0;
		a->count = (uint16_t)MRY_MIN(sum, (uint32_t)UINT16_MAX);
		s->q_len--;
	}
	*q_at(s, s->q_len) = n;
	s->q_len++;
}

static void q_pop(struct mry_smtp_session *s)
{
	struct smtp_qent *h = &s->q[s->q_head];

	if (h->type == SMTP_Q_RCPT && (h->arg & 0xffff) != SMTP_SLOT_NONE)
		h->arg++;
	if (--h->count == 0) {
		s->q_head = (uint8_t)((s->q_head + 1u) % MRY_SMTP_QUEUE_CAP);
		s->q_len--;
	}
}

/* Drop the runs before a waiting DATA; false when there is none. */
static bool q_resync_data(struct mry_smtp_session *s)
{
	unsigned i;

	for (i = 0; i < s->q_len; i++)
		if (q_at(s, i)->type == SMTP_Q_DATA && !(q_at(s, i)->flags & SMTP_QF_SPEC))
			break;
	if (i == s->q_len)
		return false;
	s->q_head = (uint8_t)((s->q_head + i) % MRY_SMTP_QUEUE_CAP);
	s->q_len = (uint8_t)(s->q_len - i);
	return true;
}

/* ---- bytes behind a gate ---------------------------------------------- */

static void pend_release(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	mry_pool_put(c->pend_pool, s->pend);
	s->pend = NULL;
	s->pend_len = 0;
}

static void gate_set(struct mry_smtp_session *s, uint8_t gate, uint64_t next_off)
{
	s->gate = gate;
	s->pend_len = 0;
	s->pend_off = next_off;
	s->sasl_skip = false;
	s->pipe_reported = false;
}

static size_t client_feed(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			  const uint8_t *p, size_t len, uint64_t off);

/*
 * The gate opened: run the buffered bytes through the parser. They may
 * close another gate part way; the rest stays buffered for that one.
 */
static void pend_replay(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	uint8_t *buf = s->pend;
	uint32_t len = s->pend_len;
	uint64_t off = s->pend_off;
	size_t n;

	if (buf == NULL || len == 0) {
		pend_release(c, s);
		return;
	}
	s->pend_len = 0;
	n = client_feed(c, s, buf, len, off);
	if (s->gate != SMTP_GATE_NONE && s->pend == buf && n < len) {
		memmove(buf, buf + n, len - n);
		s->pend_len = (uint32_t)(len - n);
		s->pend_off = off + n;
	} else if (s->gate == SMTP_GATE_NONE || s->closed || s->encrypted) {
		pend_release(c, s);
	}
}

/*
 * The buffer is full (or none was free): decide before the reply, by the
 * likelier reading. DATA -> message; AUTH, STARTTLS -> commands.
 */
static void gate_decide(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	struct smtp_qent *t;

	if (s->q_len > 0) {
		t = q_at(s, s->q_len - 1u);
		t->flags |= SMTP_QF_SPEC;
	}
	if (s->gate == SMTP_GATE_DATA) {
		msg_begin(c, s, false);
		s->cstate = SMTP_CS_DATA;
		s->dstate = SMTP_DS_LINE_START;
		s->dline_len = 0;
		s->held_cr = 0;
	}
	s->gate = SMTP_GATE_NONE;
	pend_replay(c, s);
}

/* Append client bytes behind the gate; returns how many were taken. */
static size_t pend_append(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			  const uint8_t *p, size_t len)
{
	size_t room, take;

	if (s->gate == SMTP_GATE_DATA && !s->pipe_reported) {
		/* RFC 2920 §3.1: the client waits for 354 before the message */
		s->pipe_reported = true;
		anomaly(c, s, MRY_SMTP_AN_PIPELINE_AFTER_DATA);
	}
	if (s->pend == NULL) {
		s->pend = mry_pool_get(c->pend_pool);
		if (s->pend == NULL) {
			c->st.pending_pool_empty++;
			return 0;
		}
	}
	room = c->cfg.max_pending_data - s->pend_len;
	take = MRY_MIN(room, len);
	memcpy(s->pend + s->pend_len, p, take);
	s->pend_len += (uint32_t)take;
	return take;
}

/* 334: the next client line is a SASL response, not a command */
static void sasl_consume(struct mry_smtp_session *s)
{
	uint8_t *lf = NULL;
	size_t k;

	if (s->pend != NULL && s->pend_len > 0)
		lf = memchr(s->pend, '\n', s->pend_len);
	if (lf == NULL) {
		s->pend_off += s->pend_len;
		s->pend_len = 0;
		s->sasl_skip = true;
		return;
	}
	k = (size_t)(lf - s->pend) + 1;
	memmove(s->pend, s->pend + k, s->pend_len - k);
	s->pend_len -= (uint32_t)k;
	s->pend_off += k;
}

/* ---- connection end --------------------------------------------------- */

static void session_stop(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	if (s->in_msg) {
		anomaly(c, s, MRY_SMTP_AN_MSG_UNTERMINATED);
		msg_abort(c, s, MRY_SMTP_ABORT_CLOSED);
	}
	s->closed = true;
	s->gate = SMTP_GATE_NONE;
	s->withhold = UINT64_MAX;
	pend_release(c, s);
	mry_pool_put(c->line_pool, s->lbig);
	s->lbig = NULL;
	s->lbuf_len = 0;
	txn_end(c, s);
}

static void go_encrypted(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	s->encrypted = true;
	s->gate = SMTP_GATE_NONE;
	c->st.starttls++;
	/* a TLS client speaks first with a handshake record (0x16) */
	if (s->pend != NULL && s->pend_len > 0) {
		if (s->pend[0] != 0x16)
			anomaly(c, s, MRY_SMTP_AN_DATA_AFTER_TLS);
	} else {
		s->tls_check = true;
	}
	pend_release(c, s);
	if (c->cb.starttls != NULL)
		c->cb.starttls(s->user);
}

/* ---- server replies --------------------------------------------------- */

static void txn_reset(struct mry_smtp_ctx *c, struct mry_smtp_session *s);

static void reply_dispatch(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			   unsigned code, const char *text, size_t tlen)
{
	struct smtp_qent *h;
	uint32_t arg;
	uint8_t flags;
	bool refused = code >= 400;

	c->st.replies++;
	if (s->q_len == 0) {
		anomaly(c, s, MRY_SMTP_AN_UNEXPECTED_REPLY);
		goto out;
	}
	h = &s->q[s->q_head];
	if (h->type == SMTP_Q_GREETING && code != 220 && code != 421 &&
	    code != 554 && s->q_len > 1) {
		/* RFC 5321 §4.3.2: greeting is 220/554; this one was not seen */
		anomaly(c, s, MRY_SMTP_AN_REPLY_OUT_OF_STEP);
		q_pop(s);
		h = &s->q[s->q_head];
	}
	if (code == 354 && h->type != SMTP_Q_DATA && q_resync_data(s)) {
		/* only DATA is answered 354: replies were lost or merged */
		anomaly(c, s, MRY_SMTP_AN_REPLY_OUT_OF_STEP);
		h = &s->q[s->q_head];
	}
	arg = h->arg;
	flags = h->flags;
	switch ((enum smtp_qtype)h->type) {
	case SMTP_Q_GREETING:
	case SMTP_Q_OTHER:
		q_pop(s);
		break;
	case SMTP_Q_HELO:
		q_pop(s);
		/* refused, and no MAIL since: the transaction it cleared stands */
		if (refused && s->nb_mail == (uint16_t)arg && s->env == NULL &&
		    s->env_saved != NULL) {
			s->env = s->env_saved;
			s->txn = s->txn_saved;
		} else {
			mry_pool_put(c->env_pool, s->env_saved);
		}
		s->env_saved = NULL;
		break;
	case SMTP_Q_MAIL:
		q_pop(s);
		if (refused && !(flags & SMTP_QF_NESTED) && s->txn == (uint16_t)arg)
			txn_end(c, s);
		break;
	case SMTP_Q_RCPT:
		q_pop(s);
		if (refused && s->env != NULL && (uint16_t)(arg >> 16) == s->txn &&
		    (arg & 0xffff) < s->env->nb_slots)
			env_refused(c, s->env)[arg & 0xffff] = 1;
		break;
	case SMTP_Q_DATA:
		q_pop(s);
		s->withhold = UINT64_MAX;
		if (flags & SMTP_QF_SPEC) {
			if (code != 354 && s->in_msg && !s->msg_bdat &&
			    s->cstate == SMTP_CS_DATA) {
				msg_abort(c, s, MRY_SMTP_ABORT_REJECTED);
				s->cstate = SMTP_CS_CMD;
			}
			break;
		}
		if (code != 354 && s->env != NULL)
			s->env->data_refused = true;
		if (code == 354) {
			msg_begin(c, s, false);
			s->cstate = SMTP_CS_DATA;
			s->dstate = SMTP_DS_LINE_START;
			s->dline_len = 0;
			s->held_cr = 0;
			if (s->env != NULL)
				s->env->used_data = true;
		}
		s->gate = SMTP_GATE_NONE;
		pend_replay(c, s);
		break;
	case SMTP_Q_EOM:
		q_pop(s);
		msg_reply(c, s, arg, code, text, tlen);
		break;
	case SMTP_Q_BDAT:
		q_pop(s);
		if (refused && s->in_msg && s->msg_bdat && s->cur_msg == arg) {
			/* RFC 3030 §2: the server discards the message */
			msg_abort(c, s, MRY_SMTP_ABORT_REJECTED);
			s->bdat_discard = true;
			s->bdat_aborted = true;
			s->bdat_abort_idx = arg;
		} else if ((flags & SMTP_QF_LAST) &&
			   !(s->bdat_aborted && s->bdat_abort_idx == arg)) {
			msg_reply(c, s, arg, code, text, tlen);
		}
		break;
	case SMTP_Q_AUTH:
		if (code == 334) {
			/* RFC 4954 §4: a challenge; one client line answers it */
			if (!(flags & SMTP_QF_SPEC) && s->gate == SMTP_GATE_AUTH)
				sasl_consume(s);
			break;
		}
		q_pop(s);
		if (!(flags & SMTP_QF_SPEC) && s->gate == SMTP_GATE_AUTH) {
			s->gate = SMTP_GATE_NONE;
			pend_replay(c, s);
		}
		break;
	case SMTP_Q_STARTTLS:
		q_pop(s);
		if (code == 220) {
			go_encrypted(c, s);
			return;
		}
		if (!(flags & SMTP_QF_SPEC) && s->gate == SMTP_GATE_STARTTLS) {
			s->gate = SMTP_GATE_NONE;
			pend_replay(c, s);
		}
		break;
	}
out:
	/* RFC 5321 §3.8: 421, the server closes the transmission channel */
	if (code == 421 && !s->closed)
		session_stop(c, s);
}

static bool all_cr(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != '\r')
			return false;
	return true;
}

static size_t strip_cr(const uint8_t *p, size_t n)
{
	while (n > 0 && p[n - 1] == '\r')
		n--;
	return n;
}

/*
 * How much of a line to parse: at most @keep bytes, less the CRs that end
 * it (Postfix strips CRs before LF). The same answer whether the line came
 * whole or in pieces of which only a prefix was kept (@dropped: a byte
 * other than CR was not kept).
 */
static size_t line_eff(const uint8_t *l, size_t n, size_t keep, bool dropped)
{
	if (n > keep) {
		dropped = dropped || !all_cr(l + keep, n - keep);
		n = keep;
	}
	return dropped ? n : strip_cr(l, n);
}

static uint32_t sat_add(uint32_t a, size_t b)
{
	return b >= (size_t)(UINT32_MAX - a) ? UINT32_MAX : a + (uint32_t)b;
}

/* One reply line, @n bytes kept without the LF; @total counts every octet. */
static void reply_line(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		       const uint8_t *raw, size_t n, size_t total, bool dropped)
{
	const char *l = (const char *)raw;
	unsigned code;

	if (total > MRY_SMTP_REPLY_LINE_MAX)
		anomaly(c, s, MRY_SMTP_AN_REPLY_LINE_TOO_LONG);
	n = line_eff(raw, n, MRY_SMTP_SLINE_KEEP, dropped);
	if (n < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' ||
	    l[2] < '0' || l[2] > '9' || (n > 3 && l[3] != ' ' && l[3] != '-')) {
		anomaly(c, s, MRY_SMTP_AN_REPLY_MALFORMED);
		return;
	}
	if (n > 3 && l[3] == '-')
		return;         /* continuation of a multi-line reply */
	code = (unsigned)(l[0] - '0') * 100u + (unsigned)(l[1] - '0') * 10u +
	       (unsigned)(l[2] - '0');
	reply_dispatch(c, s, code, n > 4 ? l + 4 : "", n > 4 ? n - 4 : 0);
}

static void sline_append(struct mry_smtp_session *s, const uint8_t *p, size_t n)
{
	size_t take = MRY_MIN(n, (size_t)(MRY_SMTP_SLINE_KEEP - s->sline_len));

	memcpy(s->sline + s->sline_len, p, take);
	s->sline_len = (uint8_t)(s->sline_len + take);
	if (take < n && !all_cr(p + take, n - take))
		s->s_dropped = true;
	s->sline_total = sat_add(s->sline_total, n);
}

void mry_smtp_server_data(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			  const uint8_t *data, size_t len, uint64_t off)
{
	size_t i = 0;

	(void)off;
	while (i < len && !s->closed && !s->encrypted) {
		const uint8_t *lf = memchr(data + i, '\n', len - i);
		size_t k;

		if (lf == NULL) {
			sline_append(s, data + i, len - i);
			return;
		}
		k = (size_t)(lf - data);
		if (s->sline_total == 0) {
			reply_line(c, s, data + i, k - i, k - i + 1, false);
		} else {
			sline_append(s, data + i, k - i);
			reply_line(c, s, (const uint8_t *)s->sline, s->sline_len,
				   (size_t)s->sline_total + 1, s->s_dropped);
		}
		s->sline_len = 0;
		s->sline_total = 0;
		s->s_dropped = false;
		i = k + 1;
	}
}

/* ---- client commands -------------------------------------------------- */

/*
 * Address after "FROM:" / "TO:" (RFC 5321 §4.1.2): optional spaces, then
 * <path> (quoted local parts may hold '>' and spaces) or a bare token.
 * Returns the index just past it; *a, *alen give the address without <>.
 */
static size_t parse_path(const char *p, size_t n, size_t i,
			 const char **a, size_t *alen)
{
	size_t st;
	bool q = false;

	while (i < n && p[i] == ' ')
		i++;
	if (i < n && p[i] == '<') {
		st = ++i;
		for (; i < n; i++) {
			if (q && p[i] == '\\' && i + 1 < n) {
				i++;
				continue;
			}
			if (p[i] == '"')
				q = !q;
			else if (p[i] == '>' && !q)
				break;
		}
		*a = p + st;
		*alen = i - st;
		return i < n ? i + 1 : i;
	}
	st = i;
	while (i < n && p[i] != ' ')
		i++;
	*a = p + st;
	*alen = i - st;
	return i;
}

static void addr_store(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		       char *dst, const char *a, size_t alen)
{
	size_t keep = MRY_MIN(alen, c->addr_cap - 1);

	if (keep < alen)
		anomaly(c, s, MRY_SMTP_AN_ENVELOPE_TRUNCATED);
	memcpy(dst, a, keep);
	dst[keep] = '\0';
}

/* MAIL FROM parameters (RFC 1870 SIZE, RFC 6152/3030 BODY, RFC 6531) */
static void mail_params(struct smtp_env *e, const char *p, size_t n, size_t i)
{
	while (i < n) {
		size_t st;

		while (i < n && p[i] == ' ')
			i++;
		st = i;
		while (i < n && p[i] != ' ')
			i++;
		if (i == st)
			break;
		if (ci_prefix(p + st, i - st, "size=")) {
			uint64_t v = 0;
			size_t j;

			for (j = st + 5; j < i && p[j] >= '0' && p[j] <= '9'; j++)
				if (v < SMTP_BDAT_SIZE_MAX)
					v = v * 10u + (uint64_t)(p[j] - '0');
			e->declared_size = v;
		} else if (ci_equal(p + st, i - st, "body=8bitmime")) {
			e->body_8bit = true;
		} else if (ci_equal(p + st, i - st, "body=binarymime")) {
			e->body_binary = true;
		} else if (ci_equal(p + st, i - st, "smtputf8")) {
			e->smtputf8 = true;
		}
	}
}

static void cmd_mail(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		     const char *l, size_t n, size_t i)
{
	struct smtp_env *e;
	const char *a;
	size_t alen;

	s->nb_mail++;
	if (s->env != NULL && s->env->has_mail && s->env->data_refused) {
		/*
		 * DATA was refused: a client starting over with MAIL begins a new
		 * transaction as far as it knows; if the server disagrees (Postfix:
		 * 503 nested MAIL) its refusal ends this one, so the replies keep
		 * the envelope right either way.
		 */
		txn_end(c, s);
	}
	if (s->env != NULL && s->env->has_mail) {
		/* Postfix: 503 nested MAIL command; the first one stands */
		anomaly(c, s, MRY_SMTP_AN_MAIL_NESTED);
		q_push(c, s, SMTP_Q_MAIL, SMTP_QF_NESTED, s->txn);
		return;
	}
	q_push(c, s, SMTP_Q_MAIL, 0, s->txn);
	e = env_get(c, s);
	if (e == NULL)
		return;
	while (i < n && l[i] == ' ')
		i++;
	if (ci_prefix(l + i, n - i, "from:"))
		i += 5;
	i = parse_path(l, n, i, &a, &alen);
	addr_store(c, s, env_from(c, e), a, alen);
	e->has_mail = true;
	mail_params(e, l, n, i);
}

static void cmd_rcpt(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		     const char *l, size_t n, size_t i)
{
	struct smtp_env *e = env_get(c, s);
	uint32_t slot = SMTP_SLOT_NONE;
	const char *a;
	size_t alen;

	if (e != NULL && e->nb_slots >= c->cfg.max_rcpt)
		anomaly(c, s, MRY_SMTP_AN_TOO_MANY_RCPT);
	if (e != NULL && e->nb_slots < c->cfg.max_rcpt) {
		while (i < n && l[i] == ' ')
			i++;
		if (ci_prefix(l + i, n - i, "to:"))
			i += 3;
		parse_path(l, n, i, &a, &alen);
		slot = e->nb_slots++;
		addr_store(c, s, env_rcpt(c, e, slot), a, alen);
	}
	q_push(c, s, SMTP_Q_RCPT, 0, (uint32_t)s->txn << 16 | slot);
}

/* RSET, EHLO, HELO: RFC 5321 §4.1.1.1, §4.1.1.5 clear the transaction */
static void txn_reset(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	if (s->in_msg && s->msg_bdat)
		msg_abort(c, s, MRY_SMTP_ABORT_RSET);
	s->bdat_discard = false;
	txn_end(c, s);
}

static void bdat_done(struct mry_smtp_ctx *c, struct mry_smtp_session *s, uint64_t eom_off)
{
	s->cstate = SMTP_CS_CMD;
	if (!s->bdat_last)
		return;
	if (s->bdat_discard)
		s->bdat_discard = false;
	else if (s->in_msg)
		msg_end(c, s, eom_off);
	txn_end(c, s);
}

static void cmd_bdat(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		     const char *l, size_t n, size_t i, uint64_t lf_off)
{
	uint64_t v = 0;
	size_t st, digits = 0;
	bool last = false, bad = false;

	while (i < n && l[i] == ' ')
		i++;
	for (st = i; i < n && l[i] >= '0' && l[i] <= '9'; i++, digits++)
		if (v <= SMTP_BDAT_SIZE_MAX)
			v = v * 10u + (uint64_t)(l[i] - '0');
	if (digits == 0 || v > SMTP_BDAT_SIZE_MAX || (i < n && l[i] != ' '))
		bad = true;
	while (i < n && l[i] == ' ')
		i++;
	if (!bad && i < n) {
		st = i;
		while (i < n && l[i] != ' ')
			i++;
		if (!ci_equal(l + st, i - st, "last"))
			bad = true;
		last = true;
		while (i < n && l[i] == ' ')
			i++;
		if (i < n)
			bad = true;
	}
	if (bad) {
		/* no octet count we can trust: the bytes after are commands */
		anomaly(c, s, MRY_SMTP_AN_BDAT_BAD_SIZE);
		q_push(c, s, SMTP_Q_OTHER, 0, 0);
		return;
	}
	if (s->env != NULL) {
		if (s->env->used_data)
			anomaly(c, s, MRY_SMTP_AN_BDAT_AFTER_DATA_MIX);
		s->env->used_bdat = true;
	}
	if (!s->in_msg && !s->bdat_discard) {
		if (env_live_rcpt(c, s->env) == 0)
			anomaly(c, s, MRY_SMTP_AN_DATA_WITHOUT_RCPT);
		msg_begin(c, s, true);
	}
	q_push(c, s, SMTP_Q_BDAT, last ? SMTP_QF_LAST : 0,
	       s->bdat_discard ? s->bdat_abort_idx : s->cur_msg);
	s->bdat_left = v;
	s->bdat_last = last;
	if (v == 0)
		bdat_done(c, s, lf_off);
	else
		s->cstate = SMTP_CS_BDAT;
}

static void cmd_data(struct mry_smtp_ctx *c, struct mry_smtp_session *s, uint64_t next)
{
	if ((s->in_msg && s->msg_bdat) || (s->env != NULL && s->env->used_bdat))
		anomaly(c, s, MRY_SMTP_AN_BDAT_AFTER_DATA_MIX);
	if (env_live_rcpt(c, s->env) == 0)
		anomaly(c, s, MRY_SMTP_AN_DATA_WITHOUT_RCPT);
	q_push(c, s, SMTP_Q_DATA, 0, 0);
	gate_set(s, SMTP_GATE_DATA, next);
	s->withhold = next;
}

/*
 * One complete command line, without LF and trailing CRs. @lf_off is the
 * client offset of its LF.
 */
static void cmd_line(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		     const char *l, size_t n, uint64_t lf_off)
{
	size_t v = 0;

	c->st.commands++;
	if (memchr(l, '\0', n) != NULL)
		anomaly(c, s, MRY_SMTP_AN_NUL_IN_COMMAND);
	while (v < n && l[v] != ' ')
		v++;
	if (ci_equal(l, v, "mail")) {
		cmd_mail(c, s, l, n, v);
	} else if (ci_equal(l, v, "rcpt")) {
		cmd_rcpt(c, s, l, n, v);
	} else if (ci_equal(l, v, "data")) {
		cmd_data(c, s, lf_off + 1);
	} else if (ci_equal(l, v, "bdat")) {
		cmd_bdat(c, s, l, n, v, lf_off);
	} else if (ci_equal(l, v, "rset")) {
		txn_reset(c, s);
		q_push(c, s, SMTP_Q_OTHER, 0, 0);
	} else if (ci_equal(l, v, "ehlo") || ci_equal(l, v, "helo")) {
		/*
		 * RFC 5321 §4.1.4: a successful EHLO/HELO clears the transaction;
		 * a refused one (501 "ehlo" without a name) leaves it (Postfix).
		 * Cleared now, so commands after it start afresh, and kept aside
		 * until the reply says which it was.
		 */
		if (s->in_msg && s->msg_bdat)
			msg_abort(c, s, MRY_SMTP_ABORT_RSET);
		s->bdat_discard = false;
		mry_pool_put(c->env_pool, s->env_saved);
		s->env_saved = s->env;
		s->txn_saved = s->txn;
		s->env = NULL;
		s->txn++;
		q_push(c, s, SMTP_Q_HELO, 0, s->nb_mail);
	} else if (ci_equal(l, v, "auth")) {
		q_push(c, s, SMTP_Q_AUTH, 0, 0);
		gate_set(s, SMTP_GATE_AUTH, lf_off + 1);
	} else if (ci_equal(l, v, "starttls")) {
		q_push(c, s, SMTP_Q_STARTTLS, 0, 0);
		gate_set(s, SMTP_GATE_STARTTLS, lf_off + 1);
	} else if (ci_equal(l, v, "noop") || ci_equal(l, v, "vrfy") ||
		   ci_equal(l, v, "expn") || ci_equal(l, v, "help") ||
		   ci_equal(l, v, "quit") || ci_equal(l, v, "etrn") ||
		   ci_equal(l, v, "xclient") || ci_equal(l, v, "xforward")) {
		q_push(c, s, SMTP_Q_OTHER, 0, 0);
	} else {
		/* the server still answers (500 5.5.2) */
		anomaly(c, s, MRY_SMTP_AN_UNKNOWN_COMMAND);
		q_push(c, s, SMTP_Q_OTHER, 0, 0);
	}
}

/* Keep a bounded prefix of a command line split across segments. */
static void line_append(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			const uint8_t *p, size_t n)
{
	size_t cap, take;
	char *dst;

	if (n == 0)
		return;
	s->c_prev_cr = p[n - 1] == '\r';
	if (s->lbig == NULL && s->lbuf_len + n > MRY_SMTP_LINE_INLINE &&
	    !s->c_pooled_miss) {
		s->lbig = mry_pool_get(c->line_pool);
		if (s->lbig == NULL) {
			c->st.line_pool_empty++;
			s->c_pooled_miss = true;
		} else {
			memcpy(s->lbig, s->lbuf, s->lbuf_len);
		}
	}
	dst = s->lbig != NULL ? s->lbig : s->lbuf;
	cap = s->lbig != NULL ? MRY_SMTP_LINE_KEEP : MRY_SMTP_LINE_INLINE;
	take = MRY_MIN(n, cap - s->lbuf_len);
	memcpy(dst + s->lbuf_len, p, take);
	s->lbuf_len = (uint16_t)(s->lbuf_len + take);
	if (take < n && !all_cr(p + take, n - take))
		s->c_dropped = true;
}

static void line_done(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	mry_pool_put(c->line_pool, s->lbig);
	s->lbig = NULL;
	s->lbuf_len = 0;
	s->cline_len = 0;
	s->c_long = false;
	s->c_pooled_miss = false;
	s->c_bare_cr = false;
	s->c_dropped = false;
}

/*
 * Bare CR (RFC 5321 §2.3.8) in [p, p+n): the caller leaves out the CRs
 * right before the line end (Postfix strips them) or at the end of the
 * piece (an LF may still follow). At most one per line.
 */
static void check_bare_cr(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			  const uint8_t *p, size_t n)
{
	if (s->c_bare_cr || n == 0)
		return;
	if (s->c_prev_cr || memchr(p, '\r', n) != NULL) {
		s->c_bare_cr = true;
		anomaly(c, s, MRY_SMTP_AN_BARE_CR);
	}
}

static size_t cmd_feed(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		       const uint8_t *p, size_t len, uint64_t off)
{
	const uint8_t *lf = memchr(p, '\n', len);
	const char *l;
	size_t k, n;
	bool cr_before;

	if (lf == NULL) {
		check_bare_cr(c, s, p, strip_cr(p, len));
		if (s->cline_len + len > MRY_SMTP_CMD_LINE_MAX && !s->c_long) {
			s->c_long = true;
			anomaly(c, s, MRY_SMTP_AN_CMD_LINE_TOO_LONG);
		}
		line_append(c, s, p, len);
		s->cline_len = sat_add(s->cline_len, len);
		return len;
	}
	k = (size_t)(lf - p);
	/* CRs right before LF end the line (Postfix strips them) */
	n = strip_cr(p, k);
	check_bare_cr(c, s, p, n);
	cr_before = k > 0 ? p[k - 1] == '\r' : s->c_prev_cr;
	if (!cr_before)
		anomaly(c, s, MRY_SMTP_AN_BARE_LF);
	if (s->cline_len + k + 1 > MRY_SMTP_CMD_LINE_MAX && !s->c_long)
		anomaly(c, s, MRY_SMTP_AN_CMD_LINE_TOO_LONG);
	if (s->cline_len == 0) {
		l = (const char *)p;
		n = line_eff(p, k, MRY_SMTP_LINE_KEEP, false);
	} else {
		line_append(c, s, p, k);
		l = s->lbig != NULL ? s->lbig : s->lbuf;
		n = line_eff((const uint8_t *)l, s->lbuf_len, MRY_SMTP_LINE_KEEP,
			     s->c_dropped);
	}
	s->c_prev_cr = false;
	cmd_line(c, s, l, n, off + k);
	line_done(c, s);
	return k + 1;
}

/* ---- DATA message body (RFC 5321 §4.5.2) ------------------------------ */

static const uint8_t crs[64] = {
	'\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r',
	'\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r',
	'\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r',
	'\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r',
	'\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r',
};

static void data_line_len(struct mry_smtp_ctx *c, struct mry_smtp_session *s, size_t add)
{
	uint32_t before = s->dline_len;

	s->dline_len += (uint32_t)MRY_MIN(add, (size_t)UINT32_MAX / 2);
	if (s->dline_len < before)
		s->dline_len = UINT32_MAX;
	if (before <= MRY_SMTP_DATA_LINE_MAX && s->dline_len > MRY_SMTP_DATA_LINE_MAX)
		anomaly(c, s, MRY_SMTP_AN_DATA_LINE_TOO_LONG);
}

/*
 * Where the plain lines that follow @i end: lines that end in CRLF, hold no
 * bare CR, are not longer than MRY_SMTP_DATA_LINE_MAX and after which no
 * line starts with '.'. Returns the offset just past the last such line's
 * LF, or @i when there is none (the per-line code then takes over). The
 * line at @i already holds @line_len bytes. Needs p[i - 1] (@i >= 1).
 * Message bodies are almost all such lines: 64 bytes per step, one bit per
 * byte (SSE2, or AVX2 where the CPU has it), instead of two memchr() calls
 * and their bookkeeping per line.
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SMTP_BLOCK_SCAN 1

struct masks64 {
	uint64_t lf, cr, dot;
};

static inline __attribute__((always_inline)) void masks_sse2(const uint8_t *p,
							       struct masks64 *m)
{
	const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n');
	const __m128i dot = _mm_set1_epi8('.');
	__m128i v0 = _mm_loadu_si128((const __m128i *)p);
	__m128i v1 = _mm_loadu_si128((const __m128i *)(p + 16));
	__m128i v2 = _mm_loadu_si128((const __m128i *)(p + 32));
	__m128i v3 = _mm_loadu_si128((const __m128i *)(p + 48));

#define SMTP_M16(v, c) ((uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, c)))
#define SMTP_M64(c) (SMTP_M16(v0, c) | SMTP_M16(v1, c) << 16 | SMTP_M16(v2, c) << 32 | \
		     SMTP_M16(v3, c) << 48)
	m->lf = SMTP_M64(lf);
	m->cr = SMTP_M64(cr);
	m->dot = SMTP_M64(dot);
#undef SMTP_M64
#undef SMTP_M16
}

static inline __attribute__((always_inline, target("avx2"))) void
masks_avx2(const uint8_t *p, struct masks64 *m)
{
	const __m256i cr = _mm256_set1_epi8('\r'), lf = _mm256_set1_epi8('\n');
	const __m256i dot = _mm256_set1_epi8('.');
	__m256i v0 = _mm256_loadu_si256((const __m256i *)p);
	__m256i v1 = _mm256_loadu_si256((const __m256i *)(p + 32));

#define SMTP_M32(v, c) ((uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, c)))
	m->lf = SMTP_M32(v0, lf) | SMTP_M32(v1, lf) << 32;
	m->cr = SMTP_M32(v0, cr) | SMTP_M32(v1, cr) << 32;
	m->dot = SMTP_M32(v0, dot) | SMTP_M32(v1, dot) << 32;
#undef SMTP_M32
}

#define SMTP_PLAIN_LINES(name, attr, masks)						\
static attr size_t name(const uint8_t *p, size_t i, size_t len, uint32_t line_len)	\
{											\
	/* position of the LF before the line at @i (may lie before @p) */		\
	int64_t last_lf = (int64_t)i - 1 - (int64_t)line_len;				\
	size_t b;									\
											\
	if (line_len > MRY_SMTP_DATA_LINE_MAX)						\
		return i;								\
	/* p[b - 1] and p[b + 64] are the neighbours the edge bits need */		\
	for (b = i; b + 65 <= len; b += 64) {						\
		struct masks64 m;							\
		uint8_t after = p[b + 64];						\
		uint64_t ev;								\
											\
		masks(p + b, &m);							\
		/* bare CR: followed by neither CR nor LF; bare LF: not after	\
		 * CR; a line that starts with '.' (stuffing or the end) */	\
		ev = m.cr & ~((m.cr | m.lf) >> 1 |					\
			      (uint64_t)(after == '\r' || after == '\n') << 63);	\
		ev |= m.lf & ~(m.cr << 1 | (uint64_t)(p[b - 1] == '\r'));		\
		ev |= m.lf & (m.dot >> 1 | (uint64_t)(after == '.') << 63);		\
		if (ev != 0)								\
			break;	/* per line from the last plain line end */		\
		if (m.lf == 0) {							\
			if ((int64_t)(b + 64) - last_lf > MRY_SMTP_DATA_LINE_MAX)	\
				break;							\
			continue;							\
		}									\
		if ((int64_t)b + __builtin_ctzll(m.lf) - last_lf > MRY_SMTP_DATA_LINE_MAX) \
			break;								\
		last_lf = (int64_t)b + 63 - __builtin_clzll(m.lf);			\
	}										\
	return last_lf >= (int64_t)i ? (size_t)last_lf + 1 : i;				\
}

SMTP_PLAIN_LINES(plain_lines_sse2, , masks_sse2)
SMTP_PLAIN_LINES(plain_lines_avx2, __attribute__((target("avx2"))), masks_avx2)

static size_t plain_lines(const uint8_t *p, size_t i, size_t len, uint32_t line_len)
{
	return mry_cpu_avx2() ? plain_lines_avx2(p, i, len, line_len)
			      : plain_lines_sse2(p, i, len, line_len);
}
#endif

/*
 * Message bytes of one segment; returns how many were consumed (less than
 * @len only when the terminator was found: the rest are commands).
 */
static size_t data_feed(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			const uint8_t *p, size_t len, uint64_t off)
{
	size_t i = 0, run = 0;

	while (i < len) {
		switch ((enum smtp_dstate)s->dstate) {
		case SMTP_DS_LINE_START:
			s->dline_len = 0;
			s->c_bare_cr = false;
			if (p[i] == '.') {
				deliver(c, s, p + run, i - run);
				s->dot_off = off + i;
				i++;
				run = i;
				s->dstate = SMTP_DS_DOT;
				break;
			}
			s->dstate = SMTP_DS_MID;
			/* FALLTHROUGH */
		case SMTP_DS_MID: {
			const uint8_t *lf;
			size_t k;

#ifdef SMTP_BLOCK_SCAN
			if (i > 0 && len - i >= 65) {
				k = plain_lines(p, i, len, s->dline_len);
				if (k > i) {
					/* whole lines, nothing to note: the next starts at k */
					i = k;
					s->c_prev_cr = false;
					s->dstate = SMTP_DS_LINE_START;
					break;
				}
			}
#endif
			lf = memchr(p + i, '\n', len - i);

			if (lf == NULL) {
				check_bare_cr(c, s, p + i, strip_cr(p + i, len - i));
				data_line_len(c, s, len - i);
				s->c_prev_cr = p[len - 1] == '\r';
				i = len;
				break;
			}
			k = (size_t)(lf - p);
			check_bare_cr(c, s, p + i, strip_cr(p + i, k - i));
			if (!(k > 0 ? p[k - 1] == '\r' : s->c_prev_cr))
				anomaly(c, s, MRY_SMTP_AN_BARE_LF);
			data_line_len(c, s, k - i + 1);
			s->c_prev_cr = false;
			i = k + 1;
			s->dstate = SMTP_DS_LINE_START;
			break;
		}
		case SMTP_DS_DOT:
			if (p[i] == '\n') {
				anomaly(c, s, MRY_SMTP_AN_BARE_LF);
				goto eom;
			}
			if (p[i] == '\r') {
				s->dstate = SMTP_DS_DOT_CR;
				s->held_cr = 0;
				i++;
				break;
			}
			/* a stuffing dot: the line goes on without it */
			data_line_len(c, s, 1);
			s->dstate = SMTP_DS_MID;
			break;
		case SMTP_DS_DOT_CR:
			if (p[i] == '\r') {
				i++;
				break;
			}
			if (p[i] == '\n')
				goto eom;
			/* ".\r" then more: the CRs are message bytes */
			anomaly(c, s, MRY_SMTP_AN_BARE_CR);
			s->c_bare_cr = true;
			while (s->held_cr > 0) {
				uint32_t m = MRY_MIN(s->held_cr, (uint32_t)sizeof(crs));

				deliver(c, s, crs, m);
				s->held_cr -= m;
			}
			s->dstate = SMTP_DS_MID;
			break;
		}
	}
	if (s->dstate == SMTP_DS_DOT_CR) {
		/* CRs after the dot may still belong to the terminator */
		s->held_cr += (uint32_t)(len - run);
		s->c_prev_cr = true;
		return len;
	}
	deliver(c, s, p + run, len - run);
	return len;
eom:
	/* the line end before the '.' belongs to the message, ".\r\n" not */
	s->held_cr = 0;
	s->cstate = SMTP_CS_CMD;
	s->c_prev_cr = false;
	s->c_bare_cr = false;
	msg_end(c, s, s->dot_off);
	q_push(c, s, SMTP_Q_EOM, 0, s->cur_msg);
	txn_end(c, s);
	return i + 1;
}

/* ---- BDAT chunk octets (RFC 3030 §2) ---------------------------------- */

static size_t bdat_feed(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			const uint8_t *p, size_t len, uint64_t off)
{
	size_t m = (size_t)MRY_MIN((uint64_t)len, s->bdat_left);

	if (s->in_msg && !s->bdat_discard)
		deliver(c, s, p, m);
	s->bdat_left -= m;
	if (s->bdat_left == 0)
		bdat_done(c, s, off + m - 1);
	return m;
}

/*
 * Parse client bytes until they end or a gate closes; returns the number
 * consumed. Bytes after a gate are the caller's to buffer.
 */
static size_t client_feed(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			  const uint8_t *p, size_t len, uint64_t off)
{
	size_t i = 0;

	while (i < len && s->gate == SMTP_GATE_NONE && !s->closed && !s->encrypted) {
		switch ((enum smtp_cstate)s->cstate) {
		case SMTP_CS_CMD:
			i += cmd_feed(c, s, p + i, len - i, off + i);
			break;
		case SMTP_CS_DATA:
			i += data_feed(c, s, p + i, len - i, off + i);
			break;
		case SMTP_CS_BDAT:
			i += bdat_feed(c, s, p + i, len - i, off + i);
			break;
		}
	}
	return i;
}

void mry_smtp_client_data(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			  const uint8_t *data, size_t len, uint64_t off)
{
	while (len > 0 && !s->closed) {
		size_t n;

		if (s->encrypted) {
			if (s->tls_check) {
				s->tls_check = false;
				if (data[0] != 0x16)
					anomaly(c, s, MRY_SMTP_AN_DATA_AFTER_TLS);
			}
			return;
		}
		if (s->gate == SMTP_GATE_NONE) {
			n = client_feed(c, s, data, len, off);
		} else if (s->gate == SMTP_GATE_AUTH && s->sasl_skip) {
			/* the SASL response to a 334 already seen */
			const uint8_t *lf = memchr(data, '\n', len);

			n = lf == NULL ? len : (size_t)(lf - data) + 1;
			if (lf != NULL)
				s->sasl_skip = false;
			s->pend_off = off + n;
		} else {
			n = pend_append(c, s, data, len);
			if (n < len && s->gate != SMTP_GATE_NONE) {
				data += n;
				len -= n;
				off += n;
				anomaly(c, s, MRY_SMTP_AN_PENDING_DATA_FULL);
				gate_decide(c, s);
				continue;
			}
		}
		data += n;
		len -= n;
		off += n;
	}
}

/* ---- lifecycle -------------------------------------------------------- */

struct mry_smtp_ctx *mry_smtp_ctx_create(const struct mry_alloc *a,
					 const struct mry_smtp_config *cfg,
					 const struct mry_smtp_callbacks *cb)
{
	struct mry_smtp_ctx *c;
	size_t env_size;

	if (a == NULL)
		a = mry_alloc_default();
	c = mry_zalloc(a, sizeof(*c));
	if (c == NULL) {
		mry_log(MRY_LOG_ERR, "smtp", "smtp ctx: out of memory");
		return NULL;
	}
	c->alloc = *a;
	if (cfg != NULL)
		c->cfg = *cfg;
	if (cb != NULL)
		c->cb = *cb;
	if (c->cfg.max_sessions == 0)
		c->cfg.max_sessions = MRY_SMTP_MAX_SESSIONS_DEFAULT;
	if (c->cfg.max_pending_data == 0)
		c->cfg.max_pending_data = MRY_SMTP_MAX_PENDING_DEFAULT;
	if (c->cfg.pending_pool_count == 0)
		c->cfg.pending_pool_count = MRY_SMTP_PENDING_POOL_DEFAULT;
	if (c->cfg.max_rcpt == 0)
		c->cfg.max_rcpt = MRY_SMTP_MAX_RCPT_DEFAULT;
	if (c->cfg.max_rcpt >= SMTP_SLOT_NONE)
		c->cfg.max_rcpt = SMTP_SLOT_NONE - 1;
	if (c->cfg.max_addr_len == 0)
		c->cfg.max_addr_len = MRY_SMTP_MAX_ADDR_DEFAULT;
	if (c->cfg.max_addr_len > 4096)
		c->cfg.max_addr_len = 4096;
	if (c->cfg.envelope_pool_count == 0)
		c->cfg.envelope_pool_count = MRY_SMTP_ENV_POOL_DEFAULT;
	if (c->cfg.line_pool_count == 0)
		c->cfg.line_pool_count = MRY_SMTP_LINE_POOL_DEFAULT;
	c->addr_cap = (size_t)c->cfg.max_addr_len + 1;
	env_size = sizeof(struct smtp_env) + c->addr_cap * (1 + (size_t)c->cfg.max_rcpt) +
		   c->cfg.max_rcpt;
	c->sess_pool = mry_pool_create(&c->alloc, "smtp_sess", sizeof(struct mry_smtp_session),
				       c->cfg.max_sessions);
	/* buffers with their length kept in the session: nothing to zero */
	c->pend_pool = mry_pool_create_ex(&c->alloc, "smtp_pend", c->cfg.max_pending_data,
					  c->cfg.pending_pool_count, 0);
	/* the header, the refused flags and the reverse-path's first byte
	 * are read before written; recipient slots only once recorded */
	c->env_pool = mry_pool_create_ex(&c->alloc, "smtp_env", env_size,
					 c->cfg.envelope_pool_count,
					 sizeof(struct smtp_env) + c->cfg.max_rcpt + 1);
	c->line_pool = mry_pool_create_ex(&c->alloc, "smtp_line", MRY_SMTP_LINE_KEEP,
					  c->cfg.line_pool_count, 0);
	c->rcpt_view = mry_zalloc(&c->alloc, sizeof(*c->rcpt_view) * c->cfg.max_rcpt);
	if (c->sess_pool == NULL || c->pend_pool == NULL || c->env_pool == NULL ||
	    c->line_pool == NULL || c->rcpt_view == NULL) {
		mry_log(MRY_LOG_ERR, "smtp", "smtp ctx: cannot create pools");
		mry_smtp_ctx_destroy(c);
		return NULL;
	}
	return c;
}

void mry_smtp_ctx_destroy(struct mry_smtp_ctx *c)
{
	struct mry_alloc a;

	if (c == NULL)
		return;
	a = c->alloc;
	mry_pool_destroy(c->sess_pool);
	mry_pool_destroy(c->pend_pool);
	mry_pool_destroy(c->env_pool);
	mry_pool_destroy(c->line_pool);
	mry_free(&a, c->rcpt_view);
	mry_free(&a, c);
}

struct mry_smtp_session *mry_smtp_session_new(struct mry_smtp_ctx *c, void *user)
{
	struct mry_smtp_session *s = mry_pool_get(c->sess_pool);

	if (s == NULL) {
		c->st.session_pool_empty++;
		return NULL;
	}
	c->st.sessions++;
	s->user = user;
	s->withhold = UINT64_MAX;
	/* the 220 greeting precedes everything (RFC 5321 §3.1) */
	q_push(c, s, SMTP_Q_GREETING, 0, 0);
	return s;
}

void mry_smtp_session_free(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	if (s == NULL)
		return;
	pend_release(c, s);
	mry_pool_put(c->line_pool, s->lbig);
	mry_pool_put(c->env_pool, s->env);
	mry_pool_put(c->env_pool, s->env_saved);
	mry_pool_put(c->sess_pool, s);
}

void mry_smtp_close(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	if (s->closed)
		return;
	/*
	 * Flush: bytes still waiting for a reply that will not come are read
	 * the likelier way (as when the buffer fills), so whatever the client
	 * sent is reported, e.g. a capture that lost the server's replies.
	 */
	while (s->gate != SMTP_GATE_NONE && s->pend_len > 0 && !s->closed &&
	       !s->encrypted)
		gate_decide(c, s);
	session_stop(c, s);
}

uint64_t mry_smtp_withhold_from(const struct mry_smtp_session *s)
{
	return s->withhold;
}

bool mry_smtp_encrypted(const struct mry_smtp_session *s)
{
	return s->encrypted;
}

bool mry_smtp_in_message(const struct mry_smtp_session *s)
{
	return s->in_msg;
}

const char *mry_smtp_anomaly_name(enum mry_smtp_anomaly an)
{
	if ((unsigned)an >= MRY_SMTP_AN_MAX)
		return "smtp_unknown_anomaly";
	return anomaly_names[an];
}

void mry_smtp_get_stats(const struct mry_smtp_ctx *c, struct mry_smtp_stats *st)
{
	*st = c->st;
}

size_t mry_smtp_session_bytes(void)
{
	return sizeof(struct mry_smtp_session);
}
