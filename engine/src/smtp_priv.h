/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SMTP module internals: the context, the per-connection session (kept
 * small: partial lines beyond a 32-byte prefix, bytes awaiting a reply and
 * envelopes live in per-worker pools), the reply queue entries, and the
 * functions the smtp files (smtp.c, smtp_session.c, smtp_line.c,
 * smtp_client.c, smtp_server.c) share. Unit tests may include this header;
 * nothing else should.
 */
#ifndef MORAY_SMTP_PRIV_H
#define MORAY_SMTP_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moray/common.h"
#include "moray/smtp.h"

#define MRY_SMTP_MAX_SESSIONS_DEFAULT 65536u
#define MRY_SMTP_MAX_PENDING_DEFAULT (64u * 1024u)
#define MRY_SMTP_PENDING_POOL_DEFAULT 256u
#define MRY_SMTP_MAX_RCPT_DEFAULT 100u
#define MRY_SMTP_MAX_ADDR_DEFAULT 256u
#define MRY_SMTP_ENV_POOL_DEFAULT 1024u
/*
 * Recipients a small envelope holds: most mail has one to a few; the
 * transaction moves to a max_rcpt envelope from the big pool at the next.
 */
#define SMTP_ENV_SMALL_RCPT 4u
#define MRY_SMTP_LINE_POOL_DEFAULT 1024u

/* RFC 5321 §4.5.3.1.4 command line, §4.5.3.1.6 text line, §4.5.3.1.5 reply */
#define MRY_SMTP_CMD_LINE_MAX 512u
#define MRY_SMTP_DATA_LINE_MAX 1000u
#define MRY_SMTP_REPLY_LINE_MAX 512u

/* bytes of a split command line kept in the session itself */
#define MRY_SMTP_LINE_INLINE 32u
/* bytes of a command line kept at most (the pooled line buffer) */
#define MRY_SMTP_LINE_KEEP MRY_SMTP_CMD_LINE_MAX
/* bytes of a split reply line kept (code and start of text) */
#define MRY_SMTP_SLINE_KEEP 80u
/* distinct runs of commands awaiting replies */
#define MRY_SMTP_QUEUE_CAP 16u

/* what a pending reply answers */
enum smtp_qtype {
	SMTP_Q_GREETING = 0,
	SMTP_Q_OTHER,     /* reply changes nothing we track */
	SMTP_Q_MAIL,      /* arg: txn */
	SMTP_Q_RCPT,      /* arg: txn << 16 | first slot (0xffff: not stored) */
	SMTP_Q_DATA,
	SMTP_Q_EOM,       /* final reply to a DATA message; arg: msg index */
	SMTP_Q_BDAT,      /* arg: msg index */
	SMTP_Q_AUTH,
	SMTP_Q_STARTTLS,
	SMTP_Q_HELO,      /* EHLO/HELO; arg: nb_mail when sent */
};

#define SMTP_QF_LAST 0x01     /* BDAT ... LAST */
#define SMTP_QF_SPEC 0x02     /* decided before the reply (buffer cap) */
#define SMTP_QF_NESTED 0x04   /* MAIL inside a transaction */
#define SMTP_QF_UNKNOWN 0x08  /* unknown command: its reply is no phase event */

struct smtp_qent {
	uint8_t type;
	uint8_t flags;
	uint16_t count;           /* replies this run still expects */
	uint32_t arg;
};

/* client side parser state */
enum smtp_cstate {
	SMTP_CS_CMD = 0,
	SMTP_CS_DATA,             /* DATA message body */
	SMTP_CS_BDAT,             /* inside a BDAT chunk */
};

/* DATA body line state (RFC 5321 §4.5.2) */
enum smtp_dstate {
	SMTP_DS_LINE_START = 0,
	SMTP_DS_MID,
	SMTP_DS_DOT,              /* '.' at line start skipped */
	SMTP_DS_DOT_CR,           /* ".\r..." : CRs held back */
};

/* a command whose reply decides how the following client bytes are read */
enum smtp_gate {
	SMTP_GATE_NONE = 0,
	SMTP_GATE_DATA,
	SMTP_GATE_AUTH,
	SMTP_GATE_STARTTLS,
};

/* per-transaction envelope, from the ctx's envelope pool */
struct smtp_env {
	uint64_t declared_size;
	uint32_t nb_slots;        /* recipients recorded (refused ones included) */
	bool has_mail;
	bool body_8bit;
	bool body_binary;
	bool smtputf8;
	bool used_data;
	bool used_bdat;
	bool data_refused;        /* DATA answered 4xx/5xx: the client may start over */
	uint32_t cap;             /* recipient slots: SMTP_ENV_SMALL_RCPT or max_rcpt */
	/* refused[cap], mail_from[addr_cap], rcpt[cap][addr_cap] */
	uint8_t mem[];
};

struct mry_smtp_session {
	void *user;
	struct smtp_env *env;
	struct smtp_env *env_saved; /* transaction an EHLO/HELO awaiting its reply cleared */
	struct smtp_env *env_done;  /* ended message's envelope until its final reply */
	uint16_t txn_saved;
	uint16_t txn_done;          /* transaction of env_done */
	uint32_t done_msg;          /* message index of env_done */
	uint8_t *pend;            /* bytes awaiting the gate's reply */
	char *lbig;               /* pooled command line buffer */
	uint64_t pend_off;        /* client offset of pend[0] */
	uint64_t withhold;        /* UINT64_MAX when no DATA reply is pending */
	uint64_t bdat_left;       /* chunk octets still to come */
	uint64_t dot_off;         /* offset of the '.' that may end the message */
	uint64_t msg_size;
	uint32_t pend_len;
	uint32_t msg_count;       /* messages begun */
	uint32_t cur_msg;         /* index of the open (or last) message */
	uint32_t bdat_abort_idx;
	uint32_t held_cr;         /* ".\r\r" CRs of earlier segments held back */
	uint32_t dline_len;
	uint32_t cline_len;       /* octets of the current command line so far */
	uint16_t lbuf_len;        /* bytes kept of it */
	uint16_t txn;             /* transaction generation */
	uint16_t nb_mail;         /* MAIL commands seen (EHLO replies check it) */
	uint8_t cstate;
	uint8_t dstate;
	uint8_t gate;
	uint8_t q_head;
	uint8_t q_len;
	uint8_t sline_len;
	uint32_t sline_total;     /* octets of the current reply line so far */
	bool in_msg;
	bool env_lost;            /* this transaction's MAIL found the envelope pool empty */
	bool msg_bdat;            /* open message is BDAT */
	bool bdat_last;
	bool bdat_discard;        /* chunks of a rejected BDAT message */
	bool bdat_aborted;        /* bdat_abort_idx valid */
	bool sasl_skip;           /* drop client bytes up to LF (SASL response) */
	bool encrypted;
	bool closed;
	bool c_prev_cr;           /* last client byte seen was CR */
	bool c_long;              /* current line already reported too long */
	bool c_pooled_miss;       /* line pool was empty for this line */
	bool c_dropped;           /* a non-CR byte of this command line was not kept */
	bool s_dropped;           /* same for the reply line */
	bool pipe_reported;       /* PIPELINE_AFTER_DATA once per DATA */
	bool tls_check;           /* first client byte after 220 not seen yet */
	bool c_bare_cr;           /* BARE_CR already reported for this line */
	bool d_prev_crlf;         /* the DATA line before this one ended in CRLF (or none) */
	struct smtp_qent q[MRY_SMTP_QUEUE_CAP];
	char lbuf[MRY_SMTP_LINE_INLINE];
	char sline[MRY_SMTP_SLINE_KEEP];
};

#define SMTP_SLOT_NONE 0xffffu
#define SMTP_BDAT_SIZE_MAX (1ULL << 62)

struct mry_smtp_ctx {
	struct mry_alloc alloc;
	struct mry_smtp_config cfg;
	struct mry_smtp_callbacks cb;
	struct mry_pool *sess_pool;
	struct mry_pool *pend_pool;
	struct mry_pool *env_pool;      /* small envelopes, one per open transaction */
	struct mry_pool *env_big_pool;  /* max_rcpt envelopes, for more recipients */
	struct mry_pool *line_pool;
	const char **rcpt_view;
	size_t addr_cap;          /* max_addr_len + NUL */
	struct mry_smtp_stats st;
};

/* ---- small helpers used by more than one file -------------------------- */

static inline char *smtp_env_from(const struct mry_smtp_ctx *c, struct smtp_env *e)
{
	(void)c;
	return (char *)e->mem + e->cap;
}

static inline char *smtp_env_rcpt(const struct mry_smtp_ctx *c, struct smtp_env *e, uint32_t i)
{
	return (char *)e->mem + e->cap + c->addr_cap * (1 + (size_t)i);
}

/* An envelope back to the pool it came from (NULL: nothing). */
static inline void smtp_env_put(struct mry_smtp_ctx *c, struct smtp_env *e)
{
	if (e != NULL)
		mry_pool_put(e->cap > SMTP_ENV_SMALL_RCPT ? c->env_big_pool : c->env_pool, e);
}

static inline uint8_t *smtp_env_refused(const struct mry_smtp_ctx *c, struct smtp_env *e)
{
	(void)c;
	return e->mem;
}

static inline struct smtp_qent *smtp_q_at(struct mry_smtp_session *s, unsigned i)
{
	return &s->q[(s->q_head + i) % MRY_SMTP_QUEUE_CAP];
}

static inline bool smtp_all_cr(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != '\r')
			return false;
	return true;
}

static inline size_t smtp_strip_cr(const uint8_t *p, size_t n)
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
static inline size_t smtp_line_eff(const uint8_t *l, size_t n, size_t keep, bool dropped)
{
	if (n > keep) {
		dropped = dropped || !smtp_all_cr(l + keep, n - keep);
		n = keep;
	}
	return dropped ? n : smtp_strip_cr(l, n);
}

static inline uint32_t smtp_sat_add(uint32_t a, size_t b)
{
	return b >= (size_t)(UINT32_MAX - a) ? UINT32_MAX : a + (uint32_t)b;
}

/*
 * ---- functions shared between the smtp files ----------------------------
 * Calls run one way: smtp.c and smtp_server.c use smtp_client.c, which uses
 * smtp_line.c, and all use smtp_session.c. Nothing outside these files
 * calls them.
 */

/* smtp_session.c: count @an and tell the consumer */
void mry_smtp_flag_anomaly(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			   enum mry_smtp_anomaly an);
/* smtp_session.c: the transaction is over; its envelope goes back to the pool */
void mry_smtp_txn_end(struct mry_smtp_ctx *c, struct mry_smtp_session *s);
/* smtp_session.c: a message ended; its envelope is kept until the final reply
 * (pipelined RCPT replies may still refuse recipients) */
void mry_smtp_txn_done(struct mry_smtp_ctx *c, struct mry_smtp_session *s);
/* smtp_session.c: message events, each reported with the current envelope */
void mry_smtp_msg_begin(struct mry_smtp_ctx *c, struct mry_smtp_session *s, bool bdat);
void mry_smtp_msg_end(struct mry_smtp_ctx *c, struct mry_smtp_session *s, uint64_t eom_off);
void mry_smtp_msg_abort(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			enum mry_smtp_abort_reason why);
void mry_smtp_msg_reply(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			uint32_t idx, unsigned code, const char *text, size_t tlen);
/* smtp_session.c: a line some server would take as end of data (@off: its '.') */
void mry_smtp_phase(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		    enum mry_smtp_phase_event ev);
void mry_smtp_ambiguous_end(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			    enum mry_smtp_anomaly an, uint64_t off);
/* smtp_session.c: queue a command's expected reply (merging runs) */
void mry_smtp_q_push(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		     uint8_t type, uint8_t flags, uint32_t arg);
/* smtp_session.c: give back the buffer of bytes behind a gate */
void mry_smtp_pend_release(struct mry_smtp_ctx *c, struct mry_smtp_session *s);
/* smtp_session.c: the connection is over (421, close); aborts an open message */
void mry_smtp_session_stop(struct mry_smtp_ctx *c, struct mry_smtp_session *s);

/* smtp_line.c: BARE_CR in [p, p+n), at most once per line */
void mry_smtp_check_bare_cr(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			    const uint8_t *p, size_t n);
/* smtp_line.c: DATA message bytes; returns how many were consumed (fewer
 * than @len only when the terminator was found: the rest are commands) */
size_t mry_smtp_data_feed(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			  const uint8_t *p, size_t len, uint64_t off);
/* smtp_line.c: BDAT chunk octets; returns how many belonged to the chunk */
size_t mry_smtp_bdat_feed(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			  const uint8_t *p, size_t len, uint64_t off);
/* smtp_line.c: a chunk is complete; after LAST the message ends at @eom_off */
void mry_smtp_bdat_done(struct mry_smtp_ctx *c, struct mry_smtp_session *s, uint64_t eom_off);

/* smtp_client.c: the gate opened; parse the bytes buffered behind it */
void mry_smtp_pend_replay(struct mry_smtp_ctx *c, struct mry_smtp_session *s);
/* smtp_client.c: decide a gate before its reply, by the likelier reading */
void mry_smtp_gate_decide(struct mry_smtp_ctx *c, struct mry_smtp_session *s);

#endif /* MORAY_SMTP_PRIV_H */
