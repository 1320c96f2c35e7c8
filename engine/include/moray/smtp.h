/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SMTP: client and server state machines driven by the two reassembled
 * directions of one connection (RFC 5321, RFC 2920 PIPELINING, RFC 3030
 * CHUNKING/BDAT, RFC 3207 STARTTLS, RFC 4954 AUTH). The server's replies
 * confirm state changes: commands wait in a pipeline queue until their reply
 * arrives. Message bytes reach the consumer dot-unstuffed (DATA) or joined
 * (BDAT), zero-copy wherever the wire bytes are already right.
 *
 * Nothing here assumes the two directions arrive in order relative to each
 * other: client bytes after DATA are buffered (capped) until the server's
 * reply to DATA decides whether they are a message or more commands.
 */
#ifndef MORAY_SMTP_H
#define MORAY_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moray/common.h"

enum mry_smtp_msg_kind {
	MRY_SMTP_MSG_DATA = 0,
	MRY_SMTP_MSG_BDAT,
};

/* One entry per anomaly; each is counted and reported by name. */
enum mry_smtp_anomaly {
	MRY_SMTP_AN_BARE_LF = 0,          /* LF without CR in commands or DATA */
	MRY_SMTP_AN_BARE_CR,              /* CR not followed by LF */
	MRY_SMTP_AN_CMD_LINE_TOO_LONG,    /* > 512 octets (RFC 5321 §4.5.3.1.4) */
	MRY_SMTP_AN_DATA_LINE_TOO_LONG,   /* > 1000 octets (RFC 5321 §4.5.3.1.6) */
	MRY_SMTP_AN_REPLY_LINE_TOO_LONG,
	MRY_SMTP_AN_REPLY_MALFORMED,      /* not "ddd[ -]..." */
	MRY_SMTP_AN_UNKNOWN_COMMAND,
	MRY_SMTP_AN_UNEXPECTED_REPLY,     /* a reply with no command waiting */
	MRY_SMTP_AN_PIPELINE_AFTER_DATA,  /* client bytes after DATA before its reply (RFC 2920 §3.1) */
	MRY_SMTP_AN_PENDING_DATA_FULL,    /* that buffer hit its cap */
	MRY_SMTP_AN_BDAT_BAD_SIZE,        /* BDAT argument not a number / too big */
	MRY_SMTP_AN_BDAT_AFTER_DATA_MIX,  /* BDAT and DATA in one transaction */
	MRY_SMTP_AN_NUL_IN_COMMAND,
	MRY_SMTP_AN_DATA_WITHOUT_RCPT,
	MRY_SMTP_AN_MAIL_NESTED,          /* MAIL FROM inside a transaction */
	MRY_SMTP_AN_TOO_MANY_RCPT,        /* more than the envelope cap */
	MRY_SMTP_AN_ENVELOPE_TRUNCATED,   /* address longer than stored */
	MRY_SMTP_AN_DATA_AFTER_TLS,       /* cleartext after STARTTLS 220 */
	MRY_SMTP_AN_MSG_UNTERMINATED,     /* connection ended inside a message */
	MRY_SMTP_AN_PIPELINE_OVERFLOW,    /* more distinct pipelined commands than the reply queue holds */
	MRY_SMTP_AN_REPLY_OUT_OF_STEP,    /* replies did not match commands: no greeting, or 354 not to DATA; resynchronised */
	/* SMTP smuggling (CVE-2023-51764/51765/51766): inside DATA, a "." line
	 * that is not CRLF.CRLF but that some server takes as the end of data */
	MRY_SMTP_AN_BARE_LF_END_OF_DATA,  /* "\n.\n", "\n.\r\n", "\r\n.\n" */
	MRY_SMTP_AN_BARE_CR_END_OF_DATA,  /* "\r\n.\r" not followed by LF, "\r\n.\r\r\n" */
	MRY_SMTP_AN_MAX,
};

struct mry_smtp_config {
	uint32_t max_sessions;            /* per worker pool, default 65536 */
	uint32_t max_pending_data;        /* client bytes buffered awaiting the DATA reply, default 64 KiB */
	uint32_t pending_pool_count;      /* such buffers per worker, default 256 */
	uint32_t max_rcpt;                /* recipients kept per transaction, default 100 (RFC 5321 §4.5.3.1.8) */
	uint32_t max_addr_len;            /* bytes kept per address, default 256 */
	/* additions (0 = default) */
	uint32_t envelope_pool_count;     /* envelopes per worker (one per open transaction, up to
					   * 4 recipients each), default 1024 */
	uint32_t big_envelope_pool_count; /* envelopes of max_rcpt recipients, for transactions
					   * with more than 4; default envelope_pool_count / 4 */
	uint32_t line_pool_count;         /* 512-byte buffers for command lines split across segments, default 1024 */
};

struct mry_smtp_stats {
	uint64_t sessions;
	uint64_t session_pool_empty;
	uint64_t commands;
	uint64_t replies;
	uint64_t messages_begun;
	uint64_t messages_ended;
	uint64_t messages_accepted;       /* final 2xx */
	uint64_t messages_refused;        /* final 4xx/5xx */
	uint64_t messages_aborted;
	uint64_t starttls;
	uint64_t anomalies[MRY_SMTP_AN_MAX];
	/* additions */
	uint64_t pending_pool_empty;      /* no buffer for bytes awaiting a reply: decided speculatively */
	uint64_t envelope_pool_empty;     /* transaction without a stored envelope */
	uint64_t line_pool_empty;         /* split command line kept only as a 32-byte prefix */
};

/* Envelope as known when the callback runs (pointers valid during it). */
struct mry_smtp_msg_info {
	enum mry_smtp_msg_kind kind;
	uint32_t msg_index;               /* 0-based within the connection */
	const char *mail_from;            /* NUL-terminated, without <> ; "" for null sender */
	const char *const *rcpt;          /* recipients not refused so far */
	uint32_t nb_rcpt;
	uint64_t size;                    /* message bytes delivered so far (after unstuffing) */
	uint64_t declared_size;           /* MAIL FROM SIZE=, 0 if absent */
	bool body_8bit;                   /* BODY=8BITMIME */
	bool body_binary;                 /* BODY=BINARYMIME */
	bool smtputf8;
	bool has_envelope;                /* the envelope was stored (pool not empty) */
	bool envelope_lost;               /* MAIL found the envelope pool empty: the
					   * envelope of this transaction is unknown */
};

enum mry_smtp_abort_reason {
	MRY_SMTP_ABORT_CLOSED = 0,        /* connection ended inside the message */
	MRY_SMTP_ABORT_REJECTED,          /* server refused a BDAT chunk / the transaction */
	MRY_SMTP_ABORT_RSET,              /* RSET between BDAT chunks */
	MRY_SMTP_ABORT_TLS,               /* (not used for DATA; for completeness) */
};

/*
 * Whose turn it is, as the parser sees it: the consumer arms its deadlines
 * from these (the engine: flow.h, enum mry_flow_phase). Each is fired once
 * per occurrence, in stream order; bytes replayed from behind a gate fire
 * theirs when replayed.
 */
enum mry_smtp_phase_event {
	MRY_SMTP_PH_GREETING = 0,         /* the server's first reply (its greeting, or
					   * the reply to a first command when the
					   * greeting was never seen) */
	MRY_SMTP_PH_COMMAND,              /* a complete command line with a known verb
					   * was parsed (unknown ones: anomaly only) */
	MRY_SMTP_PH_REPLY,                /* any later reply (last line) matched to a
					   * command other than an unknown one: the
					   * server answered, the client's turn */
	MRY_SMTP_PH_DATA_SENT,            /* DATA parsed: the client waits for 354 */
	MRY_SMTP_PH_DATA_REFUSED,         /* DATA answered other than 354 */
	MRY_SMTP_PH_BDAT_CHUNK,           /* BDAT with octets to follow: they are data */
	MRY_SMTP_PH_BDAT_CHUNK_END,       /* a chunk other than LAST ended: commands again
					   * (the message stays open until LAST) */
	MRY_SMTP_PH_MAX,
};

/*
 * Callbacks, all with the user pointer given to mry_smtp_session_new().
 * Every pointer argument is valid only during the call.
 */
struct mry_smtp_callbacks {
	/* 354 to DATA, or the first BDAT chunk's bytes */
	void (*msg_begin)(void *user, const struct mry_smtp_msg_info *mi);
	/* message bytes, in order, as the server stores them */
	void (*msg_data)(void *user, const uint8_t *data, size_t len);
	/*
	 * End of message seen in the client stream. @eom_off is the client
	 * stream offset of the first byte that lets the server complete the
	 * message (the '.' of CRLF.CRLF; the last byte of the BDAT LAST chunk;
	 * the final LF of "BDAT 0 LAST"): the withholding point.
	 */
	void (*msg_end)(void *user, const struct mry_smtp_msg_info *mi, uint64_t eom_off);
	/*
	 * The server's final reply to the message (after msg_end). @mi has the
	 * message index and the envelope as the replies left it: recipients
	 * the server refused after the end (pipelined RCPT with BDAT LAST) are
	 * no longer listed; mi->size is 0.
	 */
	void (*msg_reply)(void *user, const struct mry_smtp_msg_info *mi, unsigned code,
			  const char *text, size_t text_len);
	/* message data ended without an end-of-message */
	void (*msg_abort)(void *user, const struct mry_smtp_msg_info *mi,
			  enum mry_smtp_abort_reason why);
	/* a 220 answered STARTTLS: the rest of the connection is encrypted */
	void (*starttls)(void *user);
	void (*anomaly)(void *user, enum mry_smtp_anomaly an);
	/*
	 * Inside DATA, a line some server would take as the end of data although
	 * RFC 5321 does not (@an says which kind; counted and reported through
	 * @anomaly as well). The message goes on to the real CRLF.CRLF; @off is
	 * the client offset of the line's '.', from which nothing may reach the
	 * server before the message is judged.
	 */
	void (*msg_ambiguous_end)(void *user, enum mry_smtp_anomaly an, uint64_t off);
	/* the exchange moved (see enum mry_smtp_phase_event); the REPLY, GREETING
	 * or DATA_REFUSED of a reply comes before the callbacks that reply causes */
	void (*phase)(void *user, enum mry_smtp_phase_event ev);
	/*
	 * MAIL found the envelope pool empty: the user may end another
	 * connection that holds one (never this one) and return true, and the
	 * parser tries the pool once more. Otherwise the transaction goes on
	 * without a stored envelope (mry_smtp_msg_info.envelope_lost).
	 */
	bool (*envelope_wanted)(void *user);
};

struct mry_smtp_ctx;       /* per worker: pools, config, callbacks, stats */
struct mry_smtp_session;   /* per connection */

struct mry_smtp_ctx *mry_smtp_ctx_create(const struct mry_alloc *a,
					 const struct mry_smtp_config *cfg,
					 const struct mry_smtp_callbacks *cb);
void mry_smtp_ctx_destroy(struct mry_smtp_ctx *c);

/** From the pool; NULL when empty (counted). */
struct mry_smtp_session *mry_smtp_session_new(struct mry_smtp_ctx *c, void *user);
void mry_smtp_session_free(struct mry_smtp_ctx *c, struct mry_smtp_session *s);

/** In-order client bytes; @off is the client stream offset of data[0]. */
void mry_smtp_client_data(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			  const uint8_t *data, size_t len, uint64_t off);
/** In-order server bytes. */
void mry_smtp_server_data(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			  const uint8_t *data, size_t len, uint64_t off);
/** The client (or server) side ended (FIN/RST/timeout): flush and abort an open message. */
void mry_smtp_close(struct mry_smtp_ctx *c, struct mry_smtp_session *s);

/**
 * Client stream offset from which bytes must not reach the server yet
 * because the reply to DATA has not been seen (UINT64_MAX when nothing is
 * pending). Inline, such bytes are withheld until the reply decides.
 */
uint64_t mry_smtp_withhold_from(const struct mry_smtp_session *s);

/** true once STARTTLS succeeded. */
bool mry_smtp_encrypted(const struct mry_smtp_session *s);
/** true while a message is between msg_begin and msg_end/abort. */
bool mry_smtp_in_message(const struct mry_smtp_session *s);
/** true while the session holds an envelope from the envelope pool. */
bool mry_smtp_holds_envelope(const struct mry_smtp_session *s);

const char *mry_smtp_anomaly_name(enum mry_smtp_anomaly an);
void mry_smtp_get_stats(const struct mry_smtp_ctx *c, struct mry_smtp_stats *st);
size_t mry_smtp_session_bytes(void);

#endif /* MORAY_SMTP_H */
