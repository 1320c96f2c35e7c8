/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The server side of an SMTP session: reply lines (RFC 5321 §4.2), matched
 * in order to the queue of commands waiting for them, confirming or undoing
 * what each command started, and opening the gates the client side waits
 * behind.
 *
 * Replies are expected after the commands they answer (a capture point or
 * an inline box always sees it that way); a reply with nothing waiting is
 * UNEXPECTED_REPLY and changes nothing. The greeting is queued at session
 * start; a first reply other than 220/421/554 means it was never seen and
 * goes to the first command. A 354 always answers the waiting DATA, even
 * when replies before it were lost or merged (REPLY_OUT_OF_STEP). A 421
 * reply closes the session. Calls smtp_client.c (to replay the bytes held
 * behind a gate) and smtp_session.c.
 */
#include <string.h>

#include "moray/common.h"
#include "moray/smtp.h"
#include "smtp_priv.h"

/* ---- reply queue ------------------------------------------------------ */

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
		if (smtp_q_at(s, i)->type == SMTP_Q_DATA && !(smtp_q_at(s, i)->flags & SMTP_QF_SPEC))
			break;
	if (i == s->q_len)
		return false;
	s->q_head = (uint8_t)((s->q_head + i) % MRY_SMTP_QUEUE_CAP);
	s->q_len = (uint8_t)(s->q_len - i);
	return true;
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

static void go_encrypted(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	s->encrypted = true;
	s->gate = SMTP_GATE_NONE;
	c->st.starttls++;
	/* a TLS client speaks first with a handshake record (0x16) */
	if (s->pend != NULL && s->pend_len > 0) {
		if (s->pend[0] != 0x16)
			mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_DATA_AFTER_TLS);
	} else {
		s->tls_check = true;
	}
	mry_smtp_pend_release(c, s);
	if (c->cb.starttls != NULL)
		c->cb.starttls(s->user);
}

/* ---- server replies --------------------------------------------------- */

static void reply_dispatch(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			   unsigned code, const char *text, size_t tlen)
{
	struct smtp_qent *h;
	uint32_t arg;
	uint8_t flags;
	bool refused = code >= 400;

	c->st.replies++;
	if (s->q_len == 0) {
		mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_UNEXPECTED_REPLY);
		goto out;
	}
	h = &s->q[s->q_head];
	if (h->type == SMTP_Q_GREETING)
		mry_smtp_phase(c, s, MRY_SMTP_PH_GREETING);
	else if (!(h->flags & SMTP_QF_UNKNOWN))
		mry_smtp_phase(c, s, MRY_SMTP_PH_REPLY);
	if (h->type == SMTP_Q_GREETING && code != 220 && code != 421 &&
	    code != 554 && s->q_len > 1) {
		/* RFC 5321 §4.3.2: greeting is 220/554; this one was not seen */
		mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_REPLY_OUT_OF_STEP);
		q_pop(s);
		h = &s->q[s->q_head];
	}
	if (code == 354 && h->type != SMTP_Q_DATA && q_resync_data(s)) {
		/* only DATA is answered 354: replies were lost or merged */
		mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_REPLY_OUT_OF_STEP);
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
			smtp_env_put(c, s->env_saved);
		}
		s->env_saved = NULL;
		break;
	case SMTP_Q_MAIL:
		q_pop(s);
		if (refused && !(flags & SMTP_QF_NESTED) && s->txn == (uint16_t)arg)
			mry_smtp_txn_end(c, s);
		break;
	case SMTP_Q_RCPT:
		q_pop(s);
		if (refused && s->env != NULL && (uint16_t)(arg >> 16) == s->txn &&
		    (arg & 0xffff) < s->env->nb_slots)
			smtp_env_refused(c, s->env)[arg & 0xffff] = 1;
		/* pipelined past the end of its message (BDAT LAST in the same run) */
		else if (refused && s->env_done != NULL &&
			 (uint16_t)(arg >> 16) == s->txn_done &&
			 (arg & 0xffff) < s->env_done->nb_slots)
			smtp_env_refused(c, s->env_done)[arg & 0xffff] = 1;
		break;
	case SMTP_Q_DATA:
		q_pop(s);
		s->withhold = UINT64_MAX;
		if (code != 354)
			mry_smtp_phase(c, s, MRY_SMTP_PH_DATA_REFUSED);
		if (flags & SMTP_QF_SPEC) {
			if (code != 354 && s->in_msg && !s->msg_bdat &&
			    s->cstate == SMTP_CS_DATA) {
				mry_smtp_msg_abort(c, s, MRY_SMTP_ABORT_REJECTED);
				s->cstate = SMTP_CS_CMD;
			}
			break;
		}
		if (code != 354 && s->env != NULL)
			s->env->data_refused = true;
		if (code == 354) {
			mry_smtp_msg_begin(c, s, false);
			s->cstate = SMTP_CS_DATA;
			s->dstate = SMTP_DS_LINE_START;
			s->dline_len = 0;
			s->held_cr = 0;
			s->d_prev_crlf = true;
			if (s->env != NULL)
				s->env->used_data = true;
		}
		s->gate = SMTP_GATE_NONE;
		mry_smtp_pend_replay(c, s);
		break;
	case SMTP_Q_EOM:
		q_pop(s);
		mry_smtp_msg_reply(c, s, arg, code, text, tlen);
		break;
	case SMTP_Q_BDAT:
		q_pop(s);
		if (refused && s->in_msg && s->msg_bdat && s->cur_msg == arg) {
			/* RFC 3030 §2: the server discards the message */
			mry_smtp_msg_abort(c, s, MRY_SMTP_ABORT_REJECTED);
			s->bdat_discard = true;
			s->bdat_aborted = true;
			s->bdat_abort_idx = arg;
		} else if ((flags & SMTP_QF_LAST) &&
			   !(s->bdat_aborted && s->bdat_abort_idx == arg)) {
			mry_smtp_msg_reply(c, s, arg, code, text, tlen);
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
			mry_smtp_pend_replay(c, s);
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
			mry_smtp_pend_replay(c, s);
		}
		break;
	}
out:
	/* RFC 5321 §3.8: 421, the server closes the transmission channel */
	if (code == 421 && !s->closed)
		mry_smtp_session_stop(c, s);
}

/* One reply line, @n bytes kept without the LF; @total counts every octet. */
static void reply_line(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		       const uint8_t *raw, size_t n, size_t total, bool dropped)
{
	const char *l = (const char *)raw;
	unsigned code;

	if (total > MRY_SMTP_REPLY_LINE_MAX)
		mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_REPLY_LINE_TOO_LONG);
	n = smtp_line_eff(raw, n, MRY_SMTP_SLINE_KEEP, dropped);
	if (n < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' ||
	    l[2] < '0' || l[2] > '9' || (n > 3 && l[3] != ' ' && l[3] != '-')) {
		mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_REPLY_MALFORMED);
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
	if (take < n && !smtp_all_cr(p + take, n - take))
		s->s_dropped = true;
	s->sline_total = smtp_sat_add(s->sline_total, n);
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
