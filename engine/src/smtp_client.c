/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The client side of an SMTP session: command lines (RFC 5321 §4.1, RFC
 * 1870 SIZE, RFC 3030 BDAT, RFC 6531), the envelope they build, and the
 * bytes that follow a command whose reply decides how they are read.
 *
 * Three commands are such a "gate": DATA (message or more commands), AUTH
 * (SASL responses or commands) and STARTTLS (TLS or commands). After a gate
 * the client bytes are copied into a pooled, capped buffer until the reply
 * arrives (smtp_server.c then calls mry_smtp_pend_replay()), and replayed
 * through the same parser. When that buffer hits max_pending_data (or no
 * buffer is free) the module decides before the reply, by the likelier
 * reading, and counts PENDING_DATA_FULL: behind DATA the bytes are a message
 * (msg_begin, replay as message data); behind AUTH or STARTTLS they are
 * commands. Nothing is ever skipped unparsed. If the reply later disagrees,
 * an open speculative DATA message is aborted (REJECTED) and parsing goes
 * back to commands at that point; the stream may be out of step after that.
 *
 * Message bytes go to smtp_line.c; shared state to smtp_session.c.
 */
#include <string.h>

#include "moray/common.h"
#include "moray/smtp.h"
#include "smtp_priv.h"

/* ---- small helpers ---------------------------------------------------- */

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

/* From @pool, or from a connection the user ends to free one. */
static struct smtp_env *env_take(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
				 struct mry_pool *pool, uint32_t cap)
{
	struct smtp_env *e = mry_pool_get(pool);

	if (e == NULL && c->cb.envelope_wanted != NULL && c->cb.envelope_wanted(s->user))
		e = mry_pool_get(pool);
	if (e == NULL) {
		c->st.envelope_pool_empty++;
		s->env_lost = true;
		return NULL;
	}
	e->cap = cap;
	return e;
}

static struct smtp_env *env_get(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	if (s->env == NULL)
		s->env = env_take(c, s, c->env_pool, MRY_MIN(c->cfg.max_rcpt, SMTP_ENV_SMALL_RCPT));
	return s->env;
}

/*
 * The small envelope is full: the transaction moves to a max_rcpt one.
 * Without one its recipients cannot all be known, so the envelope is lost
 * (its message is refused, never logged with part of its recipients).
 */
static struct smtp_env *env_grow(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	struct smtp_env *e = s->env, *big;
	size_t a = c->addr_cap;

	if (e->nb_slots < e->cap || e->cap >= c->cfg.max_rcpt)
		return e;
	big = env_take(c, s, c->env_big_pool, c->cfg.max_rcpt);
	if (big == NULL)
		return NULL;
	memcpy(big, e, offsetof(struct smtp_env, cap));
	memcpy(smtp_env_refused(c, big), smtp_env_refused(c, e), e->nb_slots);
	memcpy(smtp_env_from(c, big), smtp_env_from(c, e), a * (1 + (size_t)e->nb_slots));
	smtp_env_put(c, e);
	s->env = big;
	return big;
}

static uint32_t env_live_rcpt(const struct mry_smtp_ctx *c, struct smtp_env *e)
{
	const uint8_t *ref;
	uint32_t i, n = 0;

	if (e == NULL)
		return 0;
	ref = smtp_env_refused(c, e);
	for (i = 0; i < e->nb_slots; i++)
		if (ref[i] == 0)
			n++;
	return n;
}

/* ---- bytes behind a gate ---------------------------------------------- */

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
void mry_smtp_pend_replay(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	uint8_t *buf = s->pend;
	uint32_t len = s->pend_len;
	uint64_t off = s->pend_off;
	size_t n;

	if (buf == NULL || len == 0) {
		mry_smtp_pend_release(c, s);
		return;
	}
	s->pend_len = 0;
	n = client_feed(c, s, buf, len, off);
	if (s->gate != SMTP_GATE_NONE && s->pend == buf && n < len) {
		memmove(buf, buf + n, len - n);
		s->pend_len = (uint32_t)(len - n);
		s->pend_off = off + n;
	} else if (s->gate == SMTP_GATE_NONE || s->closed || s->encrypted) {
		mry_smtp_pend_release(c, s);
	}
}

/*
 * The buffer is full (or none was free): decide before the reply, by the
 * likelier reading. DATA -> message; AUTH, STARTTLS -> commands.
 */
void mry_smtp_gate_decide(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	struct smtp_qent *t;

	if (s->q_len > 0) {
		t = smtp_q_at(s, s->q_len - 1u);
		t->flags |= SMTP_QF_SPEC;
	}
	if (s->gate == SMTP_GATE_DATA) {
		mry_smtp_msg_begin(c, s, false);
		s->cstate = SMTP_CS_DATA;
		s->dstate = SMTP_DS_LINE_START;
		s->dline_len = 0;
		s->held_cr = 0;
		s->d_prev_crlf = true;
	}
	s->gate = SMTP_GATE_NONE;
	mry_smtp_pend_replay(c, s);
}

/* Append client bytes behind the gate; returns how many were taken. */
static size_t pend_append(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			  const uint8_t *p, size_t len)
{
	size_t room, take;

	if (s->gate == SMTP_GATE_DATA && !s->pipe_reported) {
		/* RFC 2920 §3.1: the client waits for 354 before the message */
		s->pipe_reported = true;
		mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_PIPELINE_AFTER_DATA);
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
		mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_ENVELOPE_TRUNCATED);
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
		mry_smtp_txn_end(c, s);
	}
	if (s->env != NULL && s->env->has_mail) {
		/* Postfix: 503 nested MAIL command; the first one stands */
		mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_MAIL_NESTED);
		mry_smtp_q_push(c, s, SMTP_Q_MAIL, SMTP_QF_NESTED, s->txn);
		return;
	}
	mry_smtp_q_push(c, s, SMTP_Q_MAIL, 0, s->txn);
	e = env_get(c, s);
	if (e == NULL)
		return;
	while (i < n && l[i] == ' ')
		i++;
	if (ci_prefix(l + i, n - i, "from:"))
		i += 5;
	i = parse_path(l, n, i, &a, &alen);
	addr_store(c, s, smtp_env_from(c, e), a, alen);
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
		mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_TOO_MANY_RCPT);
	else if (e != NULL)
		e = env_grow(c, s);
	if (e != NULL && e->nb_slots < c->cfg.max_rcpt) {
		while (i < n && l[i] == ' ')
			i++;
		if (ci_prefix(l + i, n - i, "to:"))
			i += 3;
		parse_path(l, n, i, &a, &alen);
		slot = e->nb_slots++;
		addr_store(c, s, smtp_env_rcpt(c, e, slot), a, alen);
	}
	mry_smtp_q_push(c, s, SMTP_Q_RCPT, 0, (uint32_t)s->txn << 16 | slot);
}

/* RSET, EHLO, HELO: RFC 5321 §4.1.1.1, §4.1.1.5 clear the transaction */
static void txn_reset(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	if (s->in_msg && s->msg_bdat)
		mry_smtp_msg_abort(c, s, MRY_SMTP_ABORT_RSET);
	s->bdat_discard = false;
	mry_smtp_txn_end(c, s);
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
		mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_BDAT_BAD_SIZE);
		mry_smtp_q_push(c, s, SMTP_Q_OTHER, 0, 0);
		return;
	}
	if (s->env != NULL) {
		if (s->env->used_data)
			mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_BDAT_AFTER_DATA_MIX);
		s->env->used_bdat = true;
	}
	if (!s->in_msg && !s->bdat_discard) {
		if (env_live_rcpt(c, s->env) == 0)
			mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_DATA_WITHOUT_RCPT);
		mry_smtp_msg_begin(c, s, true);
	}
	mry_smtp_q_push(c, s, SMTP_Q_BDAT, last ? SMTP_QF_LAST : 0,
	       s->bdat_discard ? s->bdat_abort_idx : s->cur_msg);
	s->bdat_left = v;
	s->bdat_last = last;
	if (v == 0) {
		mry_smtp_bdat_done(c, s, lf_off);
	} else {
		s->cstate = SMTP_CS_BDAT;
		mry_smtp_phase(c, s, MRY_SMTP_PH_BDAT_CHUNK);
	}
}

static void cmd_data(struct mry_smtp_ctx *c, struct mry_smtp_session *s, uint64_t next)
{
	if ((s->in_msg && s->msg_bdat) || (s->env != NULL && s->env->used_bdat))
		mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_BDAT_AFTER_DATA_MIX);
	if (env_live_rcpt(c, s->env) == 0)
		mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_DATA_WITHOUT_RCPT);
	mry_smtp_q_push(c, s, SMTP_Q_DATA, 0, 0);
	gate_set(s, SMTP_GATE_DATA, next);
	s->withhold = next;
	mry_smtp_phase(c, s, MRY_SMTP_PH_DATA_SENT);
}

/* The command verbs the parser tells apart (RFC 5321 §4.1 and extensions). */
enum smtp_verb {
	VERB_UNKNOWN = 0,
	VERB_MAIL, VERB_RCPT, VERB_DATA, VERB_BDAT, VERB_RSET, VERB_HELO,
	VERB_AUTH, VERB_STARTTLS,
	VERB_OTHER,       /* known, its reply changes nothing tracked */
};

static enum smtp_verb verb_of(const char *l, size_t v)
{
	static const struct { const char *w; enum smtp_verb vb; } verbs[] = {
		{ "mail", VERB_MAIL }, { "rcpt", VERB_RCPT }, { "data", VERB_DATA },
		{ "bdat", VERB_BDAT }, { "rset", VERB_RSET }, { "ehlo", VERB_HELO },
		{ "helo", VERB_HELO }, { "auth", VERB_AUTH },
		{ "starttls", VERB_STARTTLS }, { "noop", VERB_OTHER },
		{ "vrfy", VERB_OTHER }, { "expn", VERB_OTHER }, { "help", VERB_OTHER },
		{ "quit", VERB_OTHER }, { "etrn", VERB_OTHER },
		{ "xclient", VERB_OTHER }, { "xforward", VERB_OTHER },
	};

	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (ci_equal(l, v, verbs[i].w))
			return verbs[i].vb;
	return VERB_UNKNOWN;
}

/*
 * One complete command line, without LF and trailing CRs. @lf_off is the
 * client offset of its LF. A line with a verb the parser knows is a
 * COMMAND phase event; an unknown one is not (nor is the server's reply to
 * it), so lines of garbage do not re-arm a deadline.
 */
static void cmd_line(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		     const char *l, size_t n, uint64_t lf_off)
{
	enum smtp_verb vb;
	size_t v = 0;

	c->st.commands++;
	if (memchr(l, '\0', n) != NULL)
		mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_NUL_IN_COMMAND);
	while (v < n && l[v] != ' ')
		v++;
	vb = verb_of(l, v);
	if (vb != VERB_UNKNOWN)
		mry_smtp_phase(c, s, MRY_SMTP_PH_COMMAND);
	switch (vb) {
	case VERB_MAIL:
		cmd_mail(c, s, l, n, v);
		break;
	case VERB_RCPT:
		cmd_rcpt(c, s, l, n, v);
		break;
	case VERB_DATA:
		cmd_data(c, s, lf_off + 1);
		break;
	case VERB_BDAT:
		cmd_bdat(c, s, l, n, v, lf_off);
		break;
	case VERB_RSET:
		txn_reset(c, s);
		mry_smtp_q_push(c, s, SMTP_Q_OTHER, 0, 0);
		break;
	case VERB_HELO:
		/*
		 * RFC 5321 §4.1.4: a successful EHLO/HELO clears the transaction;
		 * a refused one (501 "ehlo" without a name) leaves it (Postfix).
		 * Cleared now, so commands after it start afresh, and kept aside
		 * until the reply says which it was.
		 */
		if (s->in_msg && s->msg_bdat)
			mry_smtp_msg_abort(c, s, MRY_SMTP_ABORT_RSET);
		s->bdat_discard = false;
		smtp_env_put(c, s->env_saved);
		s->env_saved = s->env;
		s->txn_saved = s->txn;
		s->env = NULL;
		s->env_lost = false;
		s->txn++;
		mry_smtp_q_push(c, s, SMTP_Q_HELO, 0, s->nb_mail);
		break;
	case VERB_AUTH:
		mry_smtp_q_push(c, s, SMTP_Q_AUTH, 0, 0);
		gate_set(s, SMTP_GATE_AUTH, lf_off + 1);
		break;
	case VERB_STARTTLS:
		mry_smtp_q_push(c, s, SMTP_Q_STARTTLS, 0, 0);
		gate_set(s, SMTP_GATE_STARTTLS, lf_off + 1);
		break;
	case VERB_OTHER:
		mry_smtp_q_push(c, s, SMTP_Q_OTHER, 0, 0);
		break;
	case VERB_UNKNOWN:
		/* the server still answers (500 5.5.2) */
		mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_UNKNOWN_COMMAND);
		mry_smtp_q_push(c, s, SMTP_Q_OTHER, SMTP_QF_UNKNOWN, 0);
		break;
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
	if (take < n && !smtp_all_cr(p + take, n - take))
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

static size_t cmd_feed(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		       const uint8_t *p, size_t len, uint64_t off)
{
	const uint8_t *lf = memchr(p, '\n', len);
	const char *l;
	size_t k, n;
	bool cr_before;

	if (lf == NULL) {
		mry_smtp_check_bare_cr(c, s, p, smtp_strip_cr(p, len));
		if (s->cline_len + len > MRY_SMTP_CMD_LINE_MAX && !s->c_long) {
			s->c_long = true;
			mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_CMD_LINE_TOO_LONG);
		}
		line_append(c, s, p, len);
		s->cline_len = smtp_sat_add(s->cline_len, len);
		return len;
	}
	k = (size_t)(lf - p);
	/* CRs right before LF end the line (Postfix strips them) */
	n = smtp_strip_cr(p, k);
	mry_smtp_check_bare_cr(c, s, p, n);
	cr_before = k > 0 ? p[k - 1] == '\r' : s->c_prev_cr;
	if (!cr_before)
		mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_BARE_LF);
	if (s->cline_len + k + 1 > MRY_SMTP_CMD_LINE_MAX && !s->c_long)
		mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_CMD_LINE_TOO_LONG);
	if (s->cline_len == 0) {
		l = (const char *)p;
		n = smtp_line_eff(p, k, MRY_SMTP_LINE_KEEP, false);
	} else {
		line_append(c, s, p, k);
		l = s->lbig != NULL ? s->lbig : s->lbuf;
		n = smtp_line_eff((const uint8_t *)l, s->lbuf_len, MRY_SMTP_LINE_KEEP,
			     s->c_dropped);
	}
	s->c_prev_cr = false;
	cmd_line(c, s, l, n, off + k);
	line_done(c, s);
	return k + 1;
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
			i += mry_smtp_data_feed(c, s, p + i, len - i, off + i);
			break;
		case SMTP_CS_BDAT:
			i += mry_smtp_bdat_feed(c, s, p + i, len - i, off + i);
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
					mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_DATA_AFTER_TLS);
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
				mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_PENDING_DATA_FULL);
				mry_smtp_gate_decide(c, s);
				continue;
			}
		}
		data += n;
		len -= n;
		off += n;
	}
}
