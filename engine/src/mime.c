/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Streaming MIME parser (RFC 5322 headers, RFC 2045-2049 bodies). Input is
 * cut into lines as it arrives; only a line that straddles two chunks is
 * copied (into a max_line buffer), everything else is read in place. The
 * state is a stack of open containers (multipart boundaries and
 * message/rfc822 bodies), the header field being unfolded, and the carry
 * of the current part's decoder, so memory per message is fixed and comes
 * from a per-worker pool.
 *
 * Boundary handling follows RFC 2046 §5.1.1 and GMime: a boundary line is
 * "--" boundary ["--"] followed only by whitespace, any open multipart's
 * boundary closes everything nested inside it, and the line end before a
 * boundary belongs to the boundary, so each body line's EOL is held back
 * until the next line proves it is not a delimiter. Lenient choices that
 * decide what a client would show are counted as anomalies.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mime_priv.h"

#define MIME_SLICE 4096            /* input decoded per step into m->out */
#define MIME_OUT_MAX (MRY_QP_DEC_BOUND(MIME_SLICE) + 128)

enum mime_state {
	ST_HEADERS = 0,  /* an entity's header block */
	ST_BODY,         /* a leaf body, through its decoder */
	ST_SKIP,         /* preamble, epilogue, empty container: ignored */
	ST_UU,           /* a uuencoded region found inside a text leaf */
	ST_TEXT_RESUME,  /* text after such a region, not yet reopened */
	ST_DEAD,         /* part cap reached: nothing more is parsed */
};

enum frame_kind {
	FR_MULTIPART = 0,
	FR_MESSAGE,
};

struct mime_frame {
	uint8_t kind;
	bool digest;
	uint16_t blen;
	char boundary[MRY_MIME_BOUNDARY_MAX];
};

struct mry_mime_ctx {
	const struct mry_alloc *alloc;
	struct mry_mime_config cfg;
	struct mry_mime_callbacks cb;
	struct mry_pool *pool;
	size_t off_frames;
	size_t off_line;
	size_t off_field;
	struct mry_mime_stats st;
};

struct mry_mime {
	struct mry_mime_ctx *ctx;
	void *user;
	enum mime_state state;
	uint32_t nframes;
	struct mime_frame *frames;          /* [cfg.max_depth] */

	uint8_t *line;                      /* [cfg.max_line] */
	uint32_t line_len;
	bool in_long_line;                  /* the next bytes continue a line */
	bool first_line;
	uint8_t eol[2];                     /* held-back EOL of the last body line */
	uint8_t eol_len;

	char *field;                        /* [MRY_MIME_FIELD_MAX] */
	struct mry_mime_hdr_block hb;       /* the header block being read */

	uint32_t entity_index;
	uint32_t entity_depth;

	struct mry_mime_part_info pi;
	enum mry_mime_encoding dec_enc;
	union {
		struct mry_b64_dec b64;
		struct mry_qp_dec qp;
		struct mry_uu_dec uu;
	} dec;
	bool uu_scan;
	char uu_name[MRY_MIME_NAME_MAX];
	uint32_t an_mask;                   /* anomalies reported once per entity */
	uint64_t part_bytes;
	uint64_t msg_bytes;
	bool part_over;
	bool msg_over;
	uint32_t nparts;
	uint8_t out[MIME_OUT_MAX];
};

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

	sz = (sizeof(struct mry_mime) + 15) & ~(size_t)15;
	c->off_frames = sz;
	sz += (size_t)c->cfg.max_depth * sizeof(struct mime_frame);
	sz = (sz + 15) & ~(size_t)15;
	c->off_line = sz;
	sz += c->cfg.max_line;
	c->off_field = sz;
	sz += MRY_MIME_FIELD_MAX;
	/* frames, line and field buffers are written before they are read */
	c->pool = mry_pool_create_ex(a, "mime", sz, c->cfg.pool_count, sizeof(struct mry_mime));
	if (c->pool == NULL) {
		mry_free(a, c);
		return NULL;
	}
	return c;
}

void mry_mime_ctx_destroy(struct mry_mime_ctx *c)
{
	if (c == NULL)
		return;
	mry_pool_destroy(c->pool);
	mry_free(c->alloc, c);
}

/* ---- anomalies, caps, delivery ---------------------------------------- */

static void report(struct mry_mime *m, enum mry_mime_anomaly an)
{
	m->ctx->st.anomalies[an]++;
	if (m->ctx->cb.anomaly != NULL)
		m->ctx->cb.anomaly(m->user, an);
}

static void report_once(struct mry_mime *m, enum mry_mime_anomaly an)
{
	if (m->an_mask & (1u << an))
		return;
	m->an_mask |= 1u << an;
	report(m, an);
}

static void deliver(struct mry_mime *m, const uint8_t *p, size_t n)
{
	const struct mry_mime_config *cfg = &m->ctx->cfg;

	if (n == 0 || m->part_over || m->msg_over)
		return;
	if (m->part_bytes + n > cfg->max_part_bytes) {
		n = (size_t)(cfg->max_part_bytes - m->part_bytes);
		m->part_over = true;
		report(m, MRY_MIME_AN_PART_TOO_BIG);
	}
	if (m->msg_bytes + n > cfg->max_msg_bytes) {
		n = (size_t)(cfg->max_msg_bytes - m->msg_bytes);
		m->msg_over = true;
		report(m, MRY_MIME_AN_MSG_TOO_BIG);
	}
	if (n == 0)
		return;
	m->part_bytes += n;
	m->msg_bytes += n;
	m->ctx->st.bytes_decoded += n;
	if (m->ctx->cb.part_data != NULL)
		m->ctx->cb.part_data(m->user, p, n);
}

static void decoder_anomalies(struct mry_mime *m)
{
	switch (m->dec_enc) {
	case MRY_MIME_ENC_BASE64:
		if (m->dec.b64.invalid)
			report_once(m, MRY_MIME_AN_B64_INVALID_CHAR);
		if (m->dec.b64.bad_padding)
			report_once(m, MRY_MIME_AN_B64_BAD_PADDING);
		if (m->dec.b64.unpadded)
			report_once(m, MRY_MIME_AN_B64_UNPADDED);
		break;
	case MRY_MIME_ENC_QP:
		if (m->dec.qp.invalid)
			report_once(m, MRY_MIME_AN_QP_INVALID_ESCAPE);
		if (m->dec.qp.lowercase)
			report_once(m, MRY_MIME_AN_QP_LOWERCASE_HEX);
		break;
	case MRY_MIME_ENC_UUENCODE:
		if (m->dec.uu.malformed)
			report_once(m, MRY_MIME_AN_UU_MALFORMED);
		break;
	default:
		break;
	}
}

/* raw body bytes of the open leaf -> its decoder -> caps -> part_data */
static void body_bytes(struct mry_mime *m, const uint8_t *p, size_t n)
{
	while (n > 0) {
		size_t take = MRY_MIN(n, (size_t)MIME_SLICE), w;

		switch (m->dec_enc) {
		case MRY_MIME_ENC_BASE64:
			w = mry_b64_decode(&m->dec.b64, p, take, m->out);
			break;
		case MRY_MIME_ENC_QP:
			w = mry_qp_decode(&m->dec.qp, p, take, m->out);
			break;
		case MRY_MIME_ENC_UUENCODE:
			w = mry_uu_decode(&m->dec.uu, p, take, m->out);
			break;
		default:
			deliver(m, p, n);
			return;
		}
		deliver(m, m->out, w);
		p += take;
		n -= take;
	}
	decoder_anomalies(m);
}

/* one body line (or piece): release the held EOL, hold back this one */
static void body_line(struct mry_mime *m, const uint8_t *p, size_t n,
		      const uint8_t *eol, size_t eol_len)
{
	if (m->eol_len > 0) {
		body_bytes(m, m->eol, m->eol_len);
		m->eol_len = 0;
	}
	body_bytes(m, p, n);
	if (eol_len > 0) {
		memcpy(m->eol, eol, eol_len);
		m->eol_len = (uint8_t)eol_len;
	}
}

static void leaf_start(struct mry_mime *m, enum mry_mime_encoding enc)
{
	m->dec_enc = enc;
	switch (enc) {
	case MRY_MIME_ENC_BASE64:
		mry_b64_init(&m->dec.b64);
		break;
	case MRY_MIME_ENC_QP:
		mry_qp_init(&m->dec.qp);
		break;
	case MRY_MIME_ENC_UUENCODE:
		/* a CTE x-uuencode body starts with "begin"; an embedded region
		 * is entered on its begin line */
		mry_uu_init(&m->dec.uu, m->state != ST_UU);
		break;
	default:
		break;
	}
	m->part_bytes = 0;
	m->part_over = false;
	m->eol_len = 0;
	m->ctx->st.parts++;
	if (m->ctx->cb.part_begin != NULL)
		m->ctx->cb.part_begin(m->user, &m->pi);
}

static void leaf_end(struct mry_mime *m)
{
	size_t w = 0;

	switch (m->dec_enc) {
	case MRY_MIME_ENC_BASE64:
		w = mry_b64_finish(&m->dec.b64, m->out);
		break;
	case MRY_MIME_ENC_QP:
		w = mry_qp_finish(&m->dec.qp, m->out);
		break;
	case MRY_MIME_ENC_UUENCODE:
		w = mry_uu_finish(&m->dec.uu, m->out);
		break;
	default:
		break;
	}
	deliver(m, m->out, w);
	decoder_anomalies(m);
	m->eol_len = 0;
	if (m->ctx->cb.part_end != NULL)
		m->ctx->cb.part_end(m->user, &m->pi);
	m->state = ST_SKIP;
}

/* a new index for an entity or an embedded part; false at the cap */
static bool alloc_index(struct mry_mime *m, uint32_t *idx)
{
	if (m->nparts >= m->ctx->cfg.max_parts) {
		report(m, MRY_MIME_AN_TOO_MANY_PARTS);
		m->state = ST_DEAD;
		return false;
	}
	*idx = m->nparts++;
	return true;
}

static void start_entity(struct mry_mime *m)
{
	if (!alloc_index(m, &m->entity_index))
		return;
	m->entity_depth = m->nframes;
	mry_mime_hdr_block_init(&m->hb, m->field, m->ctx->cfg.max_header_bytes);
	m->an_mask = 0;
	m->state = ST_HEADERS;
}

/* the text leaf described by m->hb.hdr opens (again, after a uu region) */
static void open_text_leaf(struct mry_mime *m, uint32_t index)
{
	const struct mry_mime_hdr *h = &m->hb.hdr;

	m->pi.index = index;
	m->pi.depth = m->entity_depth;
	m->pi.encoding = h->enc;
	m->pi.content_type = h->ct;
	m->pi.filename = h->filename[0] != '\0' ? h->filename :
			 h->name[0] != '\0' ? h->name : NULL;
	m->pi.charset = h->charset[0] != '\0' ? h->charset : NULL;
	m->pi.attachment = h->attachment;
	m->uu_scan = strcmp(h->ct, "text/plain") == 0 &&
		     (h->enc == MRY_MIME_ENC_7BIT || h->enc == MRY_MIME_ENC_8BIT ||
		      h->enc == MRY_MIME_ENC_BINARY);
	m->state = ST_BODY;
	leaf_start(m, h->enc);
}

static void push_frame(struct mry_mime *m, enum frame_kind kind)
{
	struct mime_frame *f = &m->frames[m->nframes++];

	f->kind = (uint8_t)kind;
	f->digest = strcmp(m->hb.hdr.ct, "multipart/digest") == 0;
	f->blen = 0;
	if (kind == FR_MULTIPART) {
		memcpy(f->boundary, m->hb.hdr.boundary, m->hb.hdr.boundary_len);
		f->blen = m->hb.hdr.boundary_len;
	}
}

/* report what the header-block reader noted, once per entity */
static void header_anomalies(struct mry_mime *m)
{
	uint32_t bits = m->hb.hdr.anomalies;
	unsigned an;

	m->hb.hdr.anomalies = 0;
	for (an = 0; bits != 0 && an < MRY_MIME_AN_MAX; an++)
		if (bits & (1u << an))
			report_once(m, (enum mry_mime_anomaly)an);
}

static void headers_done(struct mry_mime *m)
{
	struct mry_mime_hdr *h = &m->hb.hdr;
	bool parent_digest;

	mry_mime_hdr_block_finish(&m->hb);
	header_anomalies(m);
	parent_digest = m->nframes > 0 && m->frames[m->nframes - 1].kind == FR_MULTIPART &&
			m->frames[m->nframes - 1].digest;
	if (!h->have_ct || h->ct[0] == '\0')
		snprintf(h->ct, sizeof(h->ct), "%s",
			 parent_digest ? "message/rfc822" : "text/plain");
	if (!h->have_cte)
		h->enc = MRY_MIME_ENC_7BIT;

	if (strncmp(h->ct, "multipart/", 10) == 0) {
		if (!h->have_boundary || h->boundary_too_long) {
			if (!h->have_boundary)
				report_once(m, MRY_MIME_AN_BOUNDARY_MISSING);
		} else if (m->nframes >= m->ctx->cfg.max_depth) {
			report_once(m, MRY_MIME_AN_DEPTH_EXCEEDED);
		} else {
			push_frame(m, FR_MULTIPART);
			m->state = ST_SKIP;    /* preamble */
			return;
		}
	} else if ((strcmp(h->ct, "message/rfc822") == 0 ||
		    strcmp(h->ct, "message/news") == 0 ||
		    strcmp(h->ct, "message/global") == 0) &&
		   h->enc != MRY_MIME_ENC_BASE64 && h->enc != MRY_MIME_ENC_QP &&
		   h->enc != MRY_MIME_ENC_UUENCODE) {
		if (m->nframes >= m->ctx->cfg.max_depth) {
			report_once(m, MRY_MIME_AN_DEPTH_EXCEEDED);
		} else {
			push_frame(m, FR_MESSAGE);
			start_entity(m);
			return;
		}
	}
	open_text_leaf(m, m->entity_index);
}

/* close the entity in progress and every container above frame @keep */
static void unwind(struct mry_mime *m, uint32_t keep)
{
	/* a delimiter right after a delimiter is no part (GMime agrees);
	 * headers without a body are an empty leaf */
	if (m->state == ST_HEADERS && m->hb.lines > 0)
		headers_done(m);
	if (m->state == ST_BODY || m->state == ST_UU)
		leaf_end(m);
	while (m->nframes > keep) {
		m->nframes--;
		if (m->frames[m->nframes].kind == FR_MULTIPART)
			report(m, MRY_MIME_AN_BOUNDARY_NO_END);
	}
}

/* index of the multipart frame whose delimiter this line is, or -1 */
static int match_boundary(const struct mry_mime *m, const uint8_t *p, size_t n,
			  bool *close)
{
	uint32_t i;

	if (n < 2 || p[0] != '-' || p[1] != '-')
		return -1;
	for (i = m->nframes; i-- > 0;) {
		const struct mime_frame *f = &m->frames[i];
		const uint8_t *q;
		size_t rest, k;

		if (f->kind != FR_MULTIPART || n - 2 < f->blen ||
		    memcmp(p + 2, f->boundary, f->blen) != 0)
			continue;
		q = p + 2 + f->blen;
		rest = n - 2 - f->blen;
		*close = false;
		if (rest >= 2 && q[0] == '-' && q[1] == '-') {
			for (k = 2; k < rest && (q[k] == ' ' || q[k] == '\t' || q[k] == '\r'); k++)
				;
			if (k == rest) {
				*close = true;
				return (int)i;
			}
		}
		for (k = 0; k < rest && (q[k] == ' ' || q[k] == '\t' || q[k] == '\r'); k++)
			;
		if (k == rest)
			return (int)i;
	}
	return -1;
}

/* one header-block line, or a piece of a long one */
static void header_line(struct mry_mime *m, const uint8_t *p, size_t n,
			size_t clen, bool line_start)
{
	const struct mry_mime_callbacks *cb = &m->ctx->cb;
	bool first = m->first_line;
	enum mry_mime_hdr_line kind;

	m->first_line = false;
	if (cb->header_data != NULL)
		cb->header_data(m->user, m->entity_index, p, n);
	kind = mry_mime_hdr_block_line(&m->hb, p, n, clen, line_start);
	header_anomalies(m);
	switch (kind) {
	case MRY_MIME_HL_NOT_FIELD:
		/* GMime 3.2 keeps a non-header line inside the header block
		 * (real mailers emit broken folded lines); only an empty line
		 * ends it. It is not a field, and a block of nothing else
		 * before a delimiter makes no part (hb.lines stays 0). */
		if (!(m->entity_index == 0 && first && clen >= 5 &&
		      memcmp(p, "From ", 5) == 0))
			report_once(m, MRY_MIME_AN_HEADER_MALFORMED);
		return;
	case MRY_MIME_HL_END:
		headers_done(m);
		return;
	case MRY_MIME_HL_FIELD:
		return;
	}
}

/* a text leaf's line: it may open an embedded uuencoded file (ClamAV does) */
static bool uu_begin_line(struct mry_mime *m, const uint8_t *p, size_t clen)
{
	uint32_t idx;

	if (!mry_uu_is_begin(p, clen, m->uu_name, sizeof(m->uu_name)))
		return false;
	leaf_end(m);
	if (!alloc_index(m, &idx))
		return true;
	m->pi.index = idx;
	m->pi.depth = m->entity_depth;
	m->pi.encoding = MRY_MIME_ENC_UUENCODE;
	m->pi.content_type = "application/octet-stream";
	m->pi.filename = m->uu_name;
	m->pi.charset = NULL;
	m->pi.attachment = false;
	m->state = ST_UU;
	leaf_start(m, MRY_MIME_ENC_UUENCODE);
	return true;
}

/*
 * One line, or a piece of one longer than max_line. @n counts the EOL when
 * @has_eol. Every state sees delimiters first, so an outer boundary ends
 * inner parts wherever they are.
 */
static void handle_line(struct mry_mime *m, const uint8_t *p, size_t n, bool has_eol)
{
	size_t eol_len = 0, clen;
	bool line_start = !m->in_long_line;
	bool close;
	int fi;

	if (has_eol)
		eol_len = (n >= 2 && p[n - 2] == '\r') ? 2 : 1;
	clen = n - eol_len;
	m->in_long_line = !has_eol;
	if (m->state == ST_DEAD)
		return;
	if (line_start && (fi = match_boundary(m, p, clen, &close)) >= 0) {
		unwind(m, (uint32_t)fi + 1);
		if (close) {
			m->nframes = (uint32_t)fi;   /* its epilogue follows */
			m->state = ST_SKIP;
		} else {
			start_entity(m);
		}
		return;
	}
	switch (m->state) {
	case ST_HEADERS:
		header_line(m, p, n, clen, line_start);
		return;
	case ST_BODY:
		if (m->uu_scan && line_start && clen > 6 && p[0] == 'b' &&
		    uu_begin_line(m, p, clen))
			return;
		body_line(m, p, clen, p + clen, eol_len);
		return;
	case ST_UU:
		/* line ends matter to uudecode; no boundary can follow inside */
		body_bytes(m, p, n);
		if (m->dec.uu.state == 2) {
			leaf_end(m);
			m->state = ST_TEXT_RESUME;
		}
		return;
	case ST_TEXT_RESUME: {
		uint32_t idx;

		if (!line_start || clen == 0)
			return;
		if (!alloc_index(m, &idx))
			return;
		open_text_leaf(m, idx);
		if (p[0] == 'b' && uu_begin_line(m, p, clen))
			return;
		body_line(m, p, clen, p + clen, eol_len);
		return;
	}
	case ST_SKIP:
	case ST_DEAD:
		return;
	}
}

/*
 * Complete body lines from @p that cannot be delimiters, as one span. A
 * line can only be a delimiter if it starts with '-', so one SIMD memchr
 * for '-' over the span replaces a look at every line start (base64 has
 * no '-' at all). Text leaves that may hold a uuencode "begin" line, and
 * spans long enough to hide an over-long line, are walked line by line.
 */
static size_t body_span(struct mry_mime *m, const uint8_t *p, size_t len)
{
	const uint8_t *s = p, *end;
	const uint32_t max_line = m->ctx->cfg.max_line;

	if (*p == '-' || (m->uu_scan && len >= 6 && memcmp(p, "begin ", 6) == 0))
		return 0;
	end = memrchr(p, '\n', len);
	if (end == NULL)
		return 0;
	end++;
	if ((size_t)(end - p) <= max_line) {
		if (m->uu_scan) {
			const uint8_t *b = memmem(p, (size_t)(end - p), "\nbegin ", 7);

			if (b != NULL)
				end = b + 1;
		}
		while (s < end) {
			const uint8_t *d = memchr(s, '-', (size_t)(end - s));

			if (d == NULL)
				break;
			if (d[-1] == '\n') {
				end = d;
				break;
			}
			s = d + 1;
		}
		return (size_t)(end - p);
	}
	while (s < end) {
		const uint8_t *nl;

		if (*s == '-' || (m->uu_scan && (size_t)(end - s) >= 6 &&
				   memcmp(s, "begin ", 6) == 0))
			break;
		nl = memchr(s, '\n', (size_t)(end - s));
		if ((size_t)(nl - s) >= max_line)
			report_once(m, MRY_MIME_AN_LINE_TOO_LONG);
		s = nl + 1;
	}
	return (size_t)(s - p);
}

void mry_mime_feed(struct mry_mime *m, const uint8_t *data, size_t len)
{
	uint32_t max_line;

	if (m == NULL)
		return;
	max_line = m->ctx->cfg.max_line;
	m->ctx->st.bytes_in += len;
	while (len > 0 && m->state != ST_DEAD) {
		const uint8_t *nl;
		size_t n;

		if (m->line_len == 0) {
			if (m->state == ST_BODY && !m->in_long_line) {
				n = body_span(m, data, len);
				if (n > 0) {
					size_t el = (n >= 2 && data[n - 2] == '\r') ? 2 : 1;

					body_line(m, data, n - el, data + n - el, el);
					data += n;
					len -= n;
					continue;
				}
			}
			nl = memchr(data, '\n', len);
			if (nl != NULL) {
				n = (size_t)(nl - data) + 1;
				if (n - 1 > max_line)
					report_once(m, MRY_MIME_AN_LINE_TOO_LONG);
				handle_line(m, data, n, true);
			} else if (len < max_line) {
				memcpy(m->line, data, len);
				m->line_len = (uint32_t)len;
				return;
			} else {
				n = max_line;
				report_once(m, MRY_MIME_AN_LINE_TOO_LONG);
				handle_line(m, data, n, false);
			}
			data += n;
			len -= n;
			continue;
		}
		n = MRY_MIN(len, (size_t)(max_line - m->line_len));
		nl = memchr(data, '\n', n);
		if (nl != NULL) {
			n = (size_t)(nl - data) + 1;
			memcpy(m->line + m->line_len, data, n);
			handle_line(m, m->line, m->line_len + n, true);
			m->line_len = 0;
		} else {
			memcpy(m->line + m->line_len, data, n);
			m->line_len += (uint32_t)n;
			if (m->line_len == max_line) {
				report_once(m, MRY_MIME_AN_LINE_TOO_LONG);
				handle_line(m, m->line, max_line, false);
				m->line_len = 0;
			}
		}
		data += n;
		len -= n;
	}
}

struct mry_mime *mry_mime_begin(struct mry_mime_ctx *c, void *user)
{
	struct mry_mime *m = mry_pool_get(c->pool);

	if (m == NULL)
		return NULL;       /* counted by the pool, see mry_mime_get_stats() */
	m->ctx = c;
	m->user = user;
	m->frames = (struct mime_frame *)((uint8_t *)m + c->off_frames);
	m->line = (uint8_t *)m + c->off_line;
	m->field = (char *)m + c->off_field;
	m->first_line = true;
	start_entity(m);
	return m;
}

void mry_mime_end(struct mry_mime *m)
{
	if (m == NULL)
		return;
	if (m->line_len > 0) {
		handle_line(m, m->line, m->line_len, false);
		m->line_len = 0;
	}
	if (m->state == ST_HEADERS && (m->hb.lines > 0 || m->nframes == 0))
		headers_done(m);
	if (m->state == ST_BODY || m->state == ST_UU) {
		/* no delimiter follows: the last line end is content */
		if (m->eol_len > 0) {
			body_bytes(m, m->eol, m->eol_len);
			m->eol_len = 0;
		}
		leaf_end(m);
	}
	while (m->nframes > 0) {
		m->nframes--;
		if (m->frames[m->nframes].kind == FR_MULTIPART)
			report(m, MRY_MIME_AN_BOUNDARY_NO_END);
	}
	m->ctx->st.messages++;
	mry_pool_put(m->ctx->pool, m);
}

void mry_mime_abort(struct mry_mime *m)
{
	if (m == NULL)
		return;
	mry_pool_put(m->ctx->pool, m);
}
