/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Private to the MIME parser (mime*.c) and its unit tests. Dependencies run
 * one way: mime.c (the body parser) drives the header-block reader and the
 * header-field parser of mime_hdr.c, which return results and never call
 * back; both use the decoders (mime_b64.c, mime_qp.c, mime_uu.c).
 */
#ifndef MORAY_MIME_PRIV_H
#define MORAY_MIME_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moray/mime.h"

#define MRY_MIME_CT_MAX 96          /* "type/subtype", lower case */
#define MRY_MIME_CHARSET_MAX 48
#define MRY_MIME_NAME_MAX 256       /* decoded filename, truncated beyond */
#define MRY_MIME_BOUNDARY_MAX 200   /* RFC 2046 allows 70; longer is an anomaly */
#define MRY_MIME_FIELD_MAX 4096     /* one unfolded header field kept for parsing */

/* What the parser keeps from one entity's header block. */
struct mry_mime_hdr {
	char ct[MRY_MIME_CT_MAX];
	char charset[MRY_MIME_CHARSET_MAX];
	char filename[MRY_MIME_NAME_MAX];   /* Content-Disposition filename */
	char name[MRY_MIME_NAME_MAX];       /* Content-Type name */
	char boundary[MRY_MIME_BOUNDARY_MAX + 1];
	uint16_t boundary_len;
	bool have_ct;
	bool have_cte;
	bool have_boundary;
	bool boundary_too_long;
	bool attachment;
	enum mry_mime_encoding enc;
	uint32_t anomalies;                 /* bit per enum mry_mime_anomaly */
};

/**
 * Parse one unfolded header field. @name is the field name (any case),
 * @value its body after the colon. Content-Type, Content-Transfer-Encoding
 * and Content-Disposition update @h; other names are ignored.
 */
void mry_mime_hdr_field(struct mry_mime_hdr *h, const char *name, size_t name_len,
			const char *value, size_t value_len);

/*
 * One header block read line by line: fields are unfolded into a bounded
 * buffer (@field, MRY_MIME_FIELD_MAX bytes, owned by the caller) and each
 * complete field is parsed into @hdr. Pure: no callbacks; anomalies are
 * left as bits in hdr.anomalies for the caller to report.
 */
struct mry_mime_hdr_block {
	struct mry_mime_hdr hdr;
	char *field;
	uint32_t field_len;
	uint32_t bytes;                     /* raw bytes seen in this block */
	uint32_t max_bytes;                 /* past it, fields are not parsed */
	uint32_t lines;                     /* lines that belong to the block */
	bool capped;
};

/* What one line of a header block turned out to be. */
enum mry_mime_hdr_line {
	MRY_MIME_HL_FIELD = 0,   /* a field, a continuation, or a piece of a long line */
	MRY_MIME_HL_END,         /* the empty line that ends the block */
	MRY_MIME_HL_NOT_FIELD,   /* not a header line: no field name before a colon */
};

/** Start a block; @field is the caller's unfolding buffer. */
void mry_mime_hdr_block_init(struct mry_mime_hdr_block *b, char *field, uint32_t max_bytes);

/**
 * Account one line of the block (or a piece of a line longer than the
 * caller's line buffer: @line_start false). @n counts the line end, @clen
 * does not. A NOT_FIELD line is not taken into the block (lines unchanged);
 * the field before it is complete.
 */
enum mry_mime_hdr_line mry_mime_hdr_block_line(struct mry_mime_hdr_block *b,
					       const uint8_t *p, size_t n,
					       size_t clen, bool line_start);

/** Parse the field still being unfolded (the block ends). */
void mry_mime_hdr_block_finish(struct mry_mime_hdr_block *b);

/**
 * Decode RFC 2047 encoded-words in @in (NUL-terminated) into @out, UTF-8
 * for utf-8/us-ascii/iso-8859-1 (latin1 converted), raw bytes otherwise.
 * Always NUL-terminates; truncates at @cap - 1.
 */
void mry_mime_decode_2047(const char *in, char *out, size_t cap);

#endif /* MORAY_MIME_PRIV_H */
