/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The MIME parser's per-worker context: configuration defaults and caps,
 * the two parser pools (messages, and layers for encoded messages), the
 * stats, and the names of anomalies and encodings. Control path only; the
 * parser itself (mime.c) takes its state from here and never calls back.
 */
#include <stdio.h>
#include <string.h>

#include "mime_priv.h"

static const char *const anomaly_names[MRY_MIME_AN_MAX] = {
	[MRY_MIME_AN_B64_INVALID_CHAR] = "b64_invalid_char",
	[MRY_MIME_AN_B64_BAD_PADDING] = "b64_bad_padding",
	[MRY_MIME_AN_B64_UNPADDED] = "b64_unpadded",
	[MRY_MIME_AN_QP_INVALID_ESCAPE] = "qp_invalid_escape",
	[MRY_MIME_AN_QP_LOWERCASE_HEX] = "qp_lowercase_hex",
	[MRY_MIME_AN_CTE_CONFLICT] = "cte_conflict",
	[MRY_MIME_AN_CTE_UNKNOWN] = "cte_unknown",
	[MRY_MIME_AN_CT_DUPLICATE] = "ct_duplicate",
	[MRY_MIME_AN_BOUNDARY_MISSING] = "boundary_missing",
	[MRY_MIME_AN_BOUNDARY_INVALID] = "boundary_invalid",
	[MRY_MIME_AN_BOUNDARY_NO_END] = "boundary_no_end",
	[MRY_MIME_AN_DEPTH_EXCEEDED] = "depth_exceeded",
	[MRY_MIME_AN_HEADER_TOO_LONG] = "header_too_long",
	[MRY_MIME_AN_HEADER_MALFORMED] = "header_malformed",
	[MRY_MIME_AN_LINE_TOO_LONG] = "line_too_long",
	[MRY_MIME_AN_PART_TOO_BIG] = "part_too_big",
	[MRY_MIME_AN_MSG_TOO_BIG] = "msg_too_big",
	[MRY_MIME_AN_TOO_MANY_PARTS] = "too_many_parts",
	[MRY_MIME_AN_UU_MALFORMED] = "uu_malformed",
	[MRY_MIME_AN_NUL_IN_HEADER] = "nul_in_header",
	[MRY_MIME_AN_BOUNDARY_NOT_FOUND] = "boundary_not_found",
	[MRY_MIME_AN_MESSAGE_ENCODED] = "message_encoded",
};

const char *mry_mime_anomaly_name(enum mry_mime_anomaly an)
{
	if ((unsigned)an >= MRY_MIME_AN_MAX)
		return "unknown";
	return anomaly_names[an];
}

const char *mry_mime_encoding_name(enum mry_mime_encoding e)
{
	switch (e) {
	case MRY_MIME_ENC_7BIT: return "7bit";
	case MRY_MIME_ENC_8BIT: return "8bit";
	case MRY_MIME_ENC_BINARY: return "binary";
	case MRY_MIME_ENC_BASE64: return "base64";
	case MRY_MIME_ENC_QP: return "quoted-printable";
	case MRY_MIME_ENC_UUENCODE: return "x-uuencode";
	case MRY_MIME_ENC_UNKNOWN: return "unknown";
	}
	return "unknown";
}

void mry_mime_get_stats(const struct mry_mime_ctx *c, struct mry_mime_stats *st)
{
	struct mry_pool_stats ps;

	*st = c->st;
	mry_pool_get_stats(c->pool, &ps);
	st->pool_empty = ps.empty;
}

struct mry_mime_ctx *mry_mime_ctx_create(const struct mry_alloc *a,
					 const struct mry_mime_config *cfg,
					 const struct mry_mime_callbacks *cb)
{
	struct mry_mime_ctx *c;
	size_t sz;

	c = mry_zalloc(a, sizeof(*c));
	if (c == NULL) {
		mry_log(MRY_LOG_ERR, "mime", "cannot allocate context");
		return NULL;
	}
	c->alloc = a;
	if (cfg != NULL)
		c->cfg = *cfg;
	if (cb != NULL)
		c->cb = *cb;
	if (c->cfg.max_depth == 0)
		c->cfg.max_depth = 20;
	if (c->cfg.max_depth > 1000)
		c->cfg.max_depth = 1000;
	if (c->cfg.max_parts == 0)
		c->cfg.max_parts = 1000;
	if (c->cfg.max_header_bytes == 0)
		c->cfg.max_header_bytes = 64 * 1024;
	if (c->cfg.max_line == 0)
		c->cfg.max_line = 8 * 1024;
	/* a boundary line must fit one buffered line */
	if (c->cfg.max_line < MRY_MIME_BOUNDARY_MAX + 64)
		c->cfg.max_line = MRY_MIME_BOUNDARY_MAX + 64;
	if (c->cfg.max_part_bytes == 0)
		c->cfg.max_part_bytes = 64ULL << 20;
	if (c->cfg.max_msg_bytes == 0)
		c->cfg.max_msg_bytes = 256ULL << 20;
	if (c->cfg.pool_count == 0)
		c->cfg.pool_count = 1024;
	if (c->cfg.nested_pool_count == 0)
		c->cfg.nested_pool_count = c->cfg.pool_count / 8 + 4;
	if (c->cfg.max_preamble == 0)
		c->cfg.max_preamble = 4096;
	if (c->cfg.max_preamble > 1024 * 1024)
		c->cfg.max_preamble = 1024 * 1024;

	sz = (sizeof(struct mry_mime) + 15) & ~(size_t)15;
	c->off_frames = sz;
	sz += (size_t)c->cfg.max_depth * sizeof(struct mime_frame);
	sz = (sz + 15) & ~(size_t)15;
	c->off_line = sz;
	sz += c->cfg.max_line;
	c->off_field = sz;
	sz += MRY_MIME_FIELD_MAX;
	c->off_pre = sz;
	sz += c->cfg.max_preamble;
	/* frames, line, field and output buffers are written before they are read */
	c->pool = mry_pool_create_ex(a, "mime", sz, c->cfg.pool_count, MIME_NOZERO_FROM);
	if (c->pool == NULL) {
		mry_free(a, c);
		return NULL;
	}
	/* a separate pool, so nested messages never take a new message's parser */
	c->nested_pool = mry_pool_create_ex(a, "mime_nested", sz, c->cfg.nested_pool_count,
					    MIME_NOZERO_FROM);
	if (c->nested_pool == NULL) {
		mry_pool_destroy(c->pool);
		mry_free(a, c);
		return NULL;
	}
	return c;
}

void mry_mime_ctx_destroy(struct mry_mime_ctx *c)
{
	if (c == NULL)
		return;
	mry_pool_destroy(c->nested_pool);
	mry_pool_destroy(c->pool);
	mry_free(c->alloc, c);
}
