/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SMTP client and server state machines (RFC 5321, 2920, 3030, 3207, 4954):
 * the module's public entry points for setting up a context and its
 * sessions, closing them, and reading their state.
 *
 * The module is fed the two reassembled directions of one connection in any
 * relative order. Client commands are parsed as soon as their line is
 * complete and queued; the server's replies are matched to the queue in
 * order and confirm or undo what the command started (a refused RCPT leaves
 * the envelope, a refused MAIL cancels the transaction, a refused BDAT chunk
 * aborts its message). Everything else is zero-copy: message bytes are
 * handed to the consumer straight from the input, a run at a time, split
 * only where a stuffing dot is removed. One job per file, calls one way:
 *
 *   smtp.c          this glue: context, sessions, close, accessors
 *   smtp_server.c   server replies matched to the queue
 *   smtp_client.c   client commands, the gates (DATA, AUTH, STARTTLS) and
 *                   the bytes buffered behind them
 *   smtp_line.c     DATA body lines (dot-unstuffing, end of data, the vector
 *                   line scanner) and BDAT chunk octets
 *   smtp_session.c  what all of them share: anomalies, message events,
 *                   envelope end, the reply queue, ending a session
 *
 * smtp.c and smtp_server.c call smtp_client.c, which calls smtp_line.c;
 * each calls smtp_session.c, which calls none of them.
 *
 * Memory: the session is a few hundred bytes (mry_smtp_session_bytes()).
 * A command line split across segments keeps 32 bytes in the session and
 * moves to a 512-byte pooled buffer when longer (line_pool_empty: only the
 * 32-byte prefix is parsed); longer lines are parsed from their first 512
 * bytes whether they came whole or split. An envelope (max_rcpt addresses
 * of max_addr_len bytes) comes from the envelope pool for the life of one
 * transaction (envelope_pool_empty: the message is still reported, with an
 * empty envelope). Replies wait in a 16-run queue (smtp_session.c).
 */

#include "moray/common.h"
#include "moray/smtp.h"
#include "smtp_priv.h"

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
	[MRY_SMTP_AN_BARE_LF_END_OF_DATA] = "smtp_bare_lf_end_of_data",
	[MRY_SMTP_AN_BARE_CR_END_OF_DATA] = "smtp_bare_cr_end_of_data",
};

/* ---- lifecycle -------------------------------------------------------- */

struct mry_smtp_ctx *mry_smtp_ctx_create(const struct mry_alloc *a,
					 const struct mry_smtp_config *cfg,
					 const struct mry_smtp_callbacks *cb)
{
	struct mry_smtp_ctx *c;
	size_t env_size, big_size;
	uint32_t small;

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
	if (c->cfg.big_envelope_pool_count == 0)
		c->cfg.big_envelope_pool_count = MRY_MAX(c->cfg.envelope_pool_count / 4u, 1u);
	c->addr_cap = (size_t)c->cfg.max_addr_len + 1;
	small = MRY_MIN(c->cfg.max_rcpt, SMTP_ENV_SMALL_RCPT);
	env_size = sizeof(struct smtp_env) + c->addr_cap * (1 + (size_t)small) + small;
	big_size = sizeof(struct smtp_env) + c->addr_cap * (1 + (size_t)c->cfg.max_rcpt) +
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
					 sizeof(struct smtp_env) + small + 1);
	if (c->cfg.max_rcpt > small)
		c->env_big_pool = mry_pool_create_ex(&c->alloc, "smtp_env_big", big_size,
						     c->cfg.big_envelope_pool_count,
						     sizeof(struct smtp_env) + c->cfg.max_rcpt + 1);
	c->line_pool = mry_pool_create_ex(&c->alloc, "smtp_line", MRY_SMTP_LINE_KEEP,
					  c->cfg.line_pool_count, 0);
	c->rcpt_view = mry_zalloc(&c->alloc, sizeof(*c->rcpt_view) * c->cfg.max_rcpt);
	if (c->sess_pool == NULL || c->pend_pool == NULL || c->env_pool == NULL ||
	    (c->cfg.max_rcpt > small && c->env_big_pool == NULL) ||
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
	mry_pool_destroy(c->env_big_pool);
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
	mry_smtp_q_push(c, s, SMTP_Q_GREETING, 0, 0);
	return s;
}

void mry_smtp_session_free(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	if (s == NULL)
		return;
	mry_smtp_pend_release(c, s);
	mry_pool_put(c->line_pool, s->lbig);
	smtp_env_put(c, s->env);
	smtp_env_put(c, s->env_saved);
	smtp_env_put(c, s->env_done);
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
		mry_smtp_gate_decide(c, s);
	mry_smtp_session_stop(c, s);
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

bool mry_smtp_holds_envelope(const struct mry_smtp_session *s)
{
	return s->env != NULL || s->env_saved != NULL || s->env_done != NULL;
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
