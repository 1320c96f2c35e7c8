/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Streaming MIME parser (RFC 5322, RFC 2045-2049, RFC 2231): headers,
 * nested multipart, message/rfc822, and decoders for base64,
 * quoted-printable and uuencode. It never needs the whole message: state is
 * a bounded boundary stack, one partial-line buffer and decoder carries.
 */
#ifndef MORAY_MIME_H
#define MORAY_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moray/common.h"

enum mry_mime_encoding {
	MRY_MIME_ENC_7BIT = 0,
	MRY_MIME_ENC_8BIT,
	MRY_MIME_ENC_BINARY,
	MRY_MIME_ENC_BASE64,
	MRY_MIME_ENC_QP,
	MRY_MIME_ENC_UUENCODE,     /* x-uuencode CTE, or "begin nnn name" found in a text body */
	MRY_MIME_ENC_UNKNOWN,      /* passed through undecoded */
};

/* One entry per anomaly ("evasions" in the verdict log). */
enum mry_mime_anomaly {
	MRY_MIME_AN_B64_INVALID_CHAR = 0, /* characters outside the alphabet skipped */
	MRY_MIME_AN_B64_BAD_PADDING,      /* data after '=', or impossible tail */
	MRY_MIME_AN_B64_UNPADDED,         /* tail without padding */
	MRY_MIME_AN_QP_INVALID_ESCAPE,    /* '=' not followed by two hex digits */
	MRY_MIME_AN_QP_LOWERCASE_HEX,
	MRY_MIME_AN_CTE_CONFLICT,         /* several Content-Transfer-Encoding headers that differ */
	MRY_MIME_AN_CTE_UNKNOWN,
	MRY_MIME_AN_CT_DUPLICATE,         /* several Content-Type headers */
	MRY_MIME_AN_BOUNDARY_MISSING,     /* multipart without boundary parameter */
	MRY_MIME_AN_BOUNDARY_INVALID,     /* too long (> 70), or illegal characters */
	MRY_MIME_AN_BOUNDARY_NO_END,      /* missing final boundary */
	MRY_MIME_AN_DEPTH_EXCEEDED,       /* nesting deeper than max_depth: rest scanned as one leaf */
	MRY_MIME_AN_HEADER_TOO_LONG,      /* header block or field over cap */
	MRY_MIME_AN_HEADER_MALFORMED,     /* a line without a field name ended a header block */
	MRY_MIME_AN_LINE_TOO_LONG,        /* over max_line (still decoded) */
	MRY_MIME_AN_PART_TOO_BIG,         /* decoded bytes over the per-part cap */
	MRY_MIME_AN_MSG_TOO_BIG,          /* decoded bytes over the per-message cap */
	MRY_MIME_AN_TOO_MANY_PARTS,
	MRY_MIME_AN_UU_MALFORMED,
	MRY_MIME_AN_NUL_IN_HEADER,
	MRY_MIME_AN_BOUNDARY_NOT_FOUND,   /* a multipart's boundary never appeared: body is one text part */
	MRY_MIME_AN_MESSAGE_ENCODED,      /* message/rfc822 with base64/QP/uuencode CTE (RFC 2046 forbids it): decoded and parsed */
	MRY_MIME_AN_MAX,
};

/*
 * Caps (0 in a field means the default). Each is counted as an anomaly:
 *  - max_depth: a multipart or message/rfc822 that would nest deeper is
 *    delivered as one leaf of its own content type (DEPTH_EXCEEDED).
 *  - max_parts: every entity (container, leaf, embedded uuencoded file)
 *    takes an index; past the cap nothing more of the message is parsed
 *    or delivered (TOO_MANY_PARTS); the caller still scans the raw stream.
 *  - max_header_bytes: fields after the cap in a header block are not
 *    parsed (still passed to header_data); a single unfolded field keeps
 *    at most 4 KiB (HEADER_TOO_LONG).
 *  - max_line: at least 264 bytes (a delimiter must fit); a longer line is
 *    passed on in pieces, still decoded, and cannot be a delimiter.
 *  - max_part_bytes / max_msg_bytes: decoded bytes beyond the cap are not
 *    delivered (PART_TOO_BIG / MSG_TOO_BIG); parsing continues.
 *  - max_preamble: a multipart's body before its first delimiter is held
 *    up to this many bytes (complete lines), because it is either a
 *    preamble (not a part) or, when the boundary never comes, the only
 *    content (one text/plain part, BOUNDARY_NOT_FOUND). A body that
 *    outgrows the buffer first is delivered as that text part at once
 *    (counted in stats.preamble_spills); if the delimiter comes later the
 *    multipart's parts follow it as usual.
 *  - nested_pool_count: an encoded message/rfc822 (MESSAGE_ENCODED) is
 *    parsed by a second parser from a pool of this many kept for nesting
 *    (so it never takes a new message's parser), counted against
 *    max_depth, max_parts and max_msg_bytes like an unencoded one; with
 *    no nested parser free it is one decoded leaf, as before
 *    (stats.encoded_msg_no_parser).
 */
struct mry_mime_config {
	uint32_t max_depth;          /* default 20 */
	uint32_t max_parts;          /* per message, default 1000 */
	uint32_t max_header_bytes;   /* per header block kept for parsing, default 64 KiB */
	uint32_t max_line;           /* line buffer, default 8 KiB: longer lines go through in pieces */
	uint64_t max_part_bytes;     /* decoded bytes per part, default 64 MiB */
	uint64_t max_msg_bytes;      /* decoded bytes per message, default 256 MiB */
	uint32_t pool_count;         /* parsers per worker, default 1024 */
	uint32_t max_preamble;       /* multipart body held before its first delimiter, default 4 KiB */
	uint32_t nested_pool_count;  /* parsers for encoded message/rfc822 layers, default pool_count / 8 + 4 */
};

struct mry_mime_part_info {
	uint32_t index;              /* 0-based, in order of appearance, leaves and containers */
	uint32_t depth;              /* 0 = top level */
	enum mry_mime_encoding encoding;
	const char *content_type;    /* lower-case "type/subtype", NUL-terminated */
	const char *filename;        /* decoded (RFC 2047/2231) name or NULL */
	const char *charset;         /* or NULL */
	bool attachment;             /* Content-Disposition: attachment */
};

struct mry_mime_stats {
	uint64_t messages;
	uint64_t parts;
	uint64_t bytes_in;
	uint64_t bytes_decoded;
	uint64_t pool_empty;
	uint64_t preamble_spills;        /* preambles over max_preamble delivered as a text part */
	uint64_t encoded_msgs;           /* encoded message/rfc822 bodies parsed as messages */
	uint64_t encoded_msg_no_parser;  /* ... left as one leaf: no nested parser free */
	uint64_t anomalies[MRY_MIME_AN_MAX];
};

/*
 * Callbacks, all optional, called from mry_mime_feed()/mry_mime_end().
 * Leaves are reported in order, never nested: part_begin, part_data*,
 * part_end. A non-multipart message is one leaf. A "begin NNN name" line
 * (or "begin-base64 NNN name", uuencode -m)
 * in a 7bit/8bit text/plain leaf ends that leaf and opens a uuencoded leaf
 * (application/octet-stream, filename from the begin line); text after
 * its "end" line continues as a new text/plain leaf (ClamAV does the same).
 * The part_info and its strings live until part_end returns.
 */
struct mry_mime_callbacks {
	/* raw bytes of each header block (top level and every part), in pieces */
	void (*header_data)(void *user, uint32_t part_index, const uint8_t *data, size_t len);
	/* a leaf part's body starts */
	void (*part_begin)(void *user, const struct mry_mime_part_info *pi);
	/* decoded body bytes of the current leaf */
	void (*part_data)(void *user, const uint8_t *data, size_t len);
	void (*part_end)(void *user, const struct mry_mime_part_info *pi);
	void (*anomaly)(void *user, enum mry_mime_anomaly an);
};

struct mry_mime_ctx;   /* per worker: config, pool of parsers, stats */
struct mry_mime;       /* one message being parsed */

struct mry_mime_ctx *mry_mime_ctx_create(const struct mry_alloc *a,
					 const struct mry_mime_config *cfg,
					 const struct mry_mime_callbacks *cb);
void mry_mime_ctx_destroy(struct mry_mime_ctx *c);

/** Start a message; NULL when the pool is empty (counted; caller scans raw only). */
struct mry_mime *mry_mime_begin(struct mry_mime_ctx *c, void *user);
/** Feed message bytes in any chunking. Fast-path safe. */
void mry_mime_feed(struct mry_mime *m, const uint8_t *data, size_t len);
/** End of message: flush decoders, close open parts, release to the pool. */
void mry_mime_end(struct mry_mime *m);
/** Release without flushing (message aborted). */
void mry_mime_abort(struct mry_mime *m);

const char *mry_mime_anomaly_name(enum mry_mime_anomaly an);
const char *mry_mime_encoding_name(enum mry_mime_encoding e);
void mry_mime_get_stats(const struct mry_mime_ctx *c, struct mry_mime_stats *st);

/*
 * Decoders with carried state, exposed for tests, fuzzing and bench. Feed
 * any chunking; the output is the same as for one call. Each *_decode()
 * returns the bytes written to @out; capacity must be at least the bound
 * given by the matching MRY_*_DEC_BOUND(len). *_finish() flushes the tail
 * (at most 3 bytes for base64/QP, MRY_UU_LINE_MAX for uu).
 * Event counters in the structs are cumulative and only grow.
 */

/*
 * base64 (RFC 2045 §6.8). Whitespace anywhere is skipped silently; other
 * bytes outside the alphabet are skipped and counted in @invalid. '=' ends
 * the current quantum (its 1 or 2 bytes are emitted); alphabet data after
 * padding starts a new quantum and is decoded (counted in @bad_padding),
 * because real clients (Thunderbird, GMime) keep decoding and a scanner
 * that stopped would be blind to what the user sees. finish() decodes an
 * unpadded tail of 2 or 3 characters (@unpadded) and drops a lone
 * character (@bad_padding).
 */
struct mry_b64_dec {
	uint32_t acc;           /* pending sextets, most recent in the low bits */
	uint8_t nchars;         /* sextets in @acc: 0..3 */
	uint8_t pad_state;      /* 0 none, 1 '=' after 2 chars (one more expected), 2 quantum closed by '=' */
	uint32_t invalid;       /* bytes outside alphabet and whitespace */
	uint32_t bad_padding;   /* '=' where it cannot be, data after '=', lone tail char */
	uint32_t unpadded;      /* tails decoded without '=' */
};
#define MRY_B64_DEC_BOUND(len) ((len) / 4 * 3 + 3)
void mry_b64_init(struct mry_b64_dec *d);
size_t mry_b64_decode(struct mry_b64_dec *d, const uint8_t *in, size_t len, uint8_t *out);
size_t mry_b64_finish(struct mry_b64_dec *d, uint8_t *out);

/*
 * quoted-printable (RFC 2045 §6.7), decoding as GMime does: "=\r\n" and
 * "=\n" are soft line breaks; hex digits of either case (lower case counted
 * in @lowercase); an invalid escape is passed through literally ("=" and
 * the two bytes after it) and counted in @invalid; trailing whitespace on a
 * line is kept (GMime and Thunderbird keep it; RFC 2045 says strip it, but
 * a scanner must see what the client shows). At the end of the input a
 * trailing "=" (soft break before a boundary) is dropped, and so is "=X"
 * (counted in @invalid), as GMime does.
 */
struct mry_qp_dec {
	uint8_t state;          /* 0 text, 1 after '=', 2 after '=' and one byte */
	uint8_t save;
	uint32_t invalid;
	uint32_t lowercase;
};
#define MRY_QP_DEC_BOUND(len) ((len) + 3)
void mry_qp_init(struct mry_qp_dec *d);
size_t mry_qp_decode(struct mry_qp_dec *d, const uint8_t *in, size_t len, uint8_t *out);
size_t mry_qp_finish(struct mry_qp_dec *d, uint8_t *out);

/*
 * uuencode (POSIX uuencode, both formats). Line based: lines before a
 * "begin NNN name" or "begin-base64 NNN name" line are skipped when
 * @seek_begin is set at init. Historical format: data lines are decoded by
 * their length character, "end" stops decoding (@done). Base64 format
 * (uuencode -m): lines are base64 until a "====" line (@done). The rest
 * is ignored. Lines longer than MRY_UU_LINE_MAX, bytes
 * outside ' '..'`' and lines shorter than their length character are
 * counted in @malformed (short lines yield only their complete groups).
 */
#define MRY_UU_LINE_MAX 128
struct mry_uu_dec {
	uint8_t state;          /* 0 seeking "begin", 1 data, 2 done */
	uint8_t overflow;       /* current line exceeded the buffer */
	uint16_t len;
	bool b64;               /* "begin-base64": lines are base64 */
	uint32_t malformed;
	struct mry_b64_dec b64d;
	uint8_t line[MRY_UU_LINE_MAX];
};
#define MRY_UU_DEC_BOUND(len) ((len) / 4 * 3 + 100)  /* a buffered line may complete */
void mry_uu_init(struct mry_uu_dec *d, bool seek_begin);
size_t mry_uu_decode(struct mry_uu_dec *d, const uint8_t *in, size_t len, uint8_t *out);
size_t mry_uu_finish(struct mry_uu_dec *d, uint8_t *out);
/** True when @line (without EOL) is "begin NNN name" or "begin-base64 NNN name" (3 or 4 octal digits); copies the name. */
bool mry_uu_is_begin(const uint8_t *line, size_t len, char *name, size_t name_cap);

#endif /* MORAY_MIME_H */
