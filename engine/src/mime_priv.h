/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Private to the MIME parser (mime*.c) and its unit tests: header-value
 * helpers that are worth testing on their own.
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

/**
 * Decode RFC 2047 encoded-words in @in (NUL-terminated) into @out, UTF-8
 * for utf-8/us-ascii/iso-8859-1 (latin1 converted), raw bytes otherwise.
 * Always NUL-terminates; truncates at @cap - 1.
 */
void mry_mime_decode_2047(const char *in, char *out, size_t cap);

#endif /* MORAY_MIME_PRIV_H */
