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
 *
 * Where clients see more than the RFCs allow, so does the parser:
 *  - the header ends at the first line that is not a field (RFC 5322
 *    parsers, Postfix cleanup and Python's email do this), so a body sent
 *    without the empty line is still decoded;
 *  - a message/rfc822 body sent base64, quoted-printable or uuencoded
 *    (RFC 2046 §5.2.1 forbids it; clients send it and ClamAV decodes it)
 *    is decoded and parsed as a message by a nested layer: a second
 *    struct mry_mime from a pool of its own, fed the decoded bytes, its depth
 *    counted on from its parent's so the depth cap holds across layers;
 *  - a multipart whose boundary never appears keeps its body as one text
 *    part (Python's email keeps it as the payload). The preamble is held
 *    in a max_preamble buffer until the first delimiter; a preamble that
 *    outgrows it is delivered as that text part at once, so nothing is
 *    buffered without bound.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mime_priv.h"

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

	struct mry_mime *r = m->root;

	if (n == 0 || m->part_over || r->msg_over)
		return;
	if (m->part_bytes + n > cfg->max_part_bytes) {
		n = (size_t)(cfg->max_part_bytes - m->part_bytes);
		m->part_over = true;
		report(m, MRY_MIME_AN_PART_TOO_BIG);
	}
	if (r->msg_bytes + n > cfg->max_msg_bytes) {
		n = (size_t)(cfg->max_msg_bytes - r->msg_bytes);
		r->msg_over = true;
		report(m, MRY_MIME_AN_MSG_TOO_BIG);
	}
	if (n == 0)
		return;
	m->part_bytes += n;
	r->msg_bytes += n;
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

static void feed_layer(struct mry_mime *m, const uint8_t *data, size_t len);

/* decoded bytes: to the nested message's layer, or to the leaf */
static void emit(struct mry_mime *m, const uint8_t *p, size_t n)
{
	if (m->child != NULL)
		feed_layer(m->child, p, n);
	else
		deliver(m, p, n);
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
		emit(m, m->out, w);
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

static void decoder_start(struct mry_mime *m, enum mry_mime_encoding enc)
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
		 * is given its begin line, which says classic or base64 */
		mry_uu_init(&m->dec.uu, true);
		break;
	default:
		break;
	}
}

static void leaf_start(struct mry_mime *m, enum mry_mime_encoding enc)
{
	decoder_start(m, enc);
	m->part_bytes = 0;
	m->part_over = false;
	m->eol_len = 0;
	m->ctx->st.parts++;
	if (m->ctx->cb.part_begin != NULL)
		m->ctx->cb.part_begin(m->user, &m->pi);
}

static void layer_finish(struct mry_mime *m);
static void layer_release(struct mry_mime *m);

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
	emit(m, m->out, w);
	decoder_anomalies(m);
	m->eol_len = 0;
	if (m->child != NULL) {
		/* an encoded message ends: its layer closes what it opened */
		layer_finish(m->child);
		layer_release(m->child);
		m->child = NULL;
		m->state = ST_SKIP;
		return;
	}
	if (m->ctx->cb.part_end != NULL)
		m->ctx->cb.part_end(m->user, &m->pi);
	m->state = ST_SKIP;
}

/* a new index for an entity or an embedded part; false at the cap */
static bool alloc_index(struct mry_mime *m, uint32_t *idx)
{
	if (m->root->nparts >= m->ctx->cfg.max_parts) {
		report(m, MRY_MIME_AN_TOO_MANY_PARTS);
		m->state = ST_DEAD;
		return false;
	}
	*idx = m->root->nparts++;
	return true;
}

static void start_entity(struct mry_mime *m)
{
	if (!alloc_index(m, &m->entity_index))
		return;
	m->entity_depth = m->depth_base + m->nframes;
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
	f->seen = false;
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

static bool layer_start(struct mry_mime *m, struct mry_mime_ctx *c, void *user,
			struct mry_mime *root, uint32_t depth_base);

/*
 * An encoded message/rfc822 body: decode it through this layer's decoder
 * into a nested layer that parses it as a message. false when no parser is
 * free (counted): the body is then one decoded leaf, as before.
 */
static bool open_encoded_message(struct mry_mime *m)
{
	struct mry_mime *c;

	report_once(m, MRY_MIME_AN_MESSAGE_ENCODED);
	c = mry_pool_get(m->ctx->nested_pool);
	if (c == NULL) {
		m->ctx->st.encoded_msg_no_parser++;
		return false;
	}
	/* the nested message sits one level below this entity, as an
	 * unencoded one does below its message frame */
	c->nested = true;
	if (!layer_start(c, m->ctx, m->user, m->root, m->depth_base + m->nframes + 1)) {
		layer_release(c);
		m->state = ST_DEAD;
		return true;
	}
	m->ctx->st.encoded_msgs++;
	m->child = c;
	m->uu_scan = false;
	m->state = ST_BODY;
	decoder_start(m, m->hb.hdr.enc);
	return true;
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
		} else if (m->depth_base + m->nframes >= m->ctx->cfg.max_depth) {
			report_once(m, MRY_MIME_AN_DEPTH_EXCEEDED);
		} else {
			push_frame(m, FR_MULTIPART);
			m->pre_len = 0;
			m->pre_text = false;
			m->state = ST_PREAMBLE;
			return;
		}
	} else if (strcmp(h->ct, "message/rfc822") == 0 ||
		   strcmp(h->ct, "message/news") == 0 ||
		   strcmp(h->ct, "message/global") == 0) {
		bool encoded = h->enc == MRY_MIME_ENC_BASE64 || h->enc == MRY_MIME_ENC_QP ||
			       h->enc == MRY_MIME_ENC_UUENCODE;

		if (m->depth_base + m->nframes >= m->ctx->cfg.max_depth) {
			report_once(m, MRY_MIME_AN_DEPTH_EXCEEDED);
		} else if (!encoded) {
			push_frame(m, FR_MESSAGE);
			start_entity(m);
			return;
		} else if (open_encoded_message(m)) {
			return;
		}
	}
	open_text_leaf(m, m->entity_index);
}

static void preamble_open(struct mry_mime *m);

/* a multipart frame goes without its final delimiter */
static void pop_frame(struct mry_mime *m)
{
	m->nframes--;
	if (m->frames[m->nframes].kind == FR_MULTIPART) {
		report(m, MRY_MIME_AN_BOUNDARY_NO_END);
		if (!m->frames[m->nframes].seen)
			report(m, MRY_MIME_AN_BOUNDARY_NOT_FOUND);
	}
}

/* close the entity in progress and every container above frame @keep */
static void unwind(struct mry_mime *m, uint32_t keep)
{
	/* a delimiter right after a delimiter is no part (GMime agrees);
	 * headers without a body are an empty leaf */
	if (m->state == ST_HEADERS && m->hb.lines > 0)
		headers_done(m);
	/* an outer delimiter (or the end) before this multipart's own: the
	 * body it held is its only content */
	if (m->state == ST_PREAMBLE && keep < m->nframes && m->pre_text)
		preamble_open(m);
	if (m->state == ST_BODY || m->state == ST_UU)
		leaf_end(m);
	while (m->nframes > keep)
		pop_frame(m);
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
/*
 * One header-block line, or a piece of a long one. false when the line is
 * not a header line: the block ended before it (RFC 5322 §2.1 leaves no
 * room for anything else between fields), and the caller hands the line
 * to whatever the entity turned out to be.
 */
static bool header_line(struct mry_mime *m, const uint8_t *p, size_t n,
			size_t clen, bool line_start)
{
	const struct mry_mime_callbacks *cb = &m->ctx->cb;
	bool first = m->first_line;
	enum mry_mime_hdr_line kind;

	m->first_line = false;
	if (first && clen >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
		/* a UTF-8 byte order mark before the first field (editors
		 * save .eml files so; GMime skips it) is not part of a name */
		kind = mry_mime_hdr_block_line(&m->hb, p + 3, n - 3, clen - 3, line_start);
	} else {
		kind = mry_mime_hdr_block_line(&m->hb, p, n, clen, line_start);
	}
	header_anomalies(m);
	if (kind == MRY_MIME_HL_NOT_FIELD && m->entity_index == 0 && first &&
	    clen >= 5 && memcmp(p, "From ", 5) == 0)
		kind = MRY_MIME_HL_FIELD;     /* an mbox separator, not a field */
	if (kind != MRY_MIME_HL_NOT_FIELD && cb->header_data != NULL)
		cb->header_data(m->user, m->entity_index, p, n);
	switch (kind) {
	case MRY_MIME_HL_NOT_FIELD:
		/* Python's email, Postfix cleanup and RFC 5322 parsers start
		 * the body here; a mailer that forgot the empty line still
		 * gets its body decoded. Counted: GMime 3.2 reads on as header. */
		report_once(m, MRY_MIME_AN_HEADER_MALFORMED);
		headers_done(m);
		return false;
	case MRY_MIME_HL_END:
		headers_done(m);
		return true;
	case MRY_MIME_HL_FIELD:
		return true;
	}
	return true;
}

/* a text leaf's line: it may open an embedded uuencoded file (ClamAV does) */
static bool uu_begin_line(struct mry_mime *m, const uint8_t *p, size_t n, size_t clen)
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
	/* the decoder reads "begin" or "begin-base64" from the line itself */
	body_bytes(m, p, n);
	return true;
}

static void dispatch(struct mry_mime *m, const uint8_t *p, size_t n, size_t clen,
		     size_t eol_len, bool line_start);

/*
 * The multipart's own delimiter has not come, and its body outgrew the
 * preamble buffer or ended: that body is one text part (the multipart's
 * index, text/plain, decoded with the multipart's transfer encoding).
 * The held lines are replayed through it, so a uuencoded file in them is
 * cut out as in any text part.
 */
static void preamble_open(struct mry_mime *m)
{
	const uint8_t *b = m->pre, *end = m->pre + m->pre_len;

	snprintf(m->hb.hdr.ct, sizeof(m->hb.hdr.ct), "text/plain");
	open_text_leaf(m, m->entity_index);
	while (b < end) {
		const uint8_t *nl = memchr(b, '\n', (size_t)(end - b));
		size_t n = (size_t)(nl + 1 - b), el = (n >= 2 && nl[-1] == '\r') ? 2 : 1;

		dispatch(m, b, n, n - el, el, true);
		b += n;
	}
	m->pre_len = 0;
	m->pre_text = false;
}

/* a line before the first delimiter: held while it may be a preamble */
static void preamble_line(struct mry_mime *m, const uint8_t *p, size_t n,
			  size_t clen, size_t eol_len, bool line_start)
{
	bool fits = n <= m->ctx->cfg.max_preamble - m->pre_len;

	if (line_start && eol_len > 0 && fits) {
		size_t i;

		memcpy(m->pre + m->pre_len, p, n);
		m->pre_len += (uint32_t)n;
		for (i = 0; i < clen && !m->pre_text; i++)
			m->pre_text = p[i] != ' ' && p[i] != '\t' && p[i] != '\r';
		return;
	}
	if (!fits || !line_start)
		m->ctx->st.preamble_spills++;   /* over the buffer, not the end */
	preamble_open(m);
	dispatch(m, p, n, clen, eol_len, line_start);
}

/* a line (not a delimiter) in the current state */
static void dispatch(struct mry_mime *m, const uint8_t *p, size_t n, size_t clen,
		     size_t eol_len, bool line_start)
{
	for (;;) {
		switch (m->state) {
		case ST_HEADERS:
			/* a non-header line ends the block and is read again:
			 * each round opens a container, bounded by max_depth */
			if (header_line(m, p, n, clen, line_start))
				return;
			continue;
		case ST_PREAMBLE:
			preamble_line(m, p, n, clen, eol_len, line_start);
			return;
		case ST_BODY:
			if (m->uu_scan && line_start && clen > 6 && p[0] == 'b' &&
			    uu_begin_line(m, p, n, clen))
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
			if (p[0] == 'b' && uu_begin_line(m, p, n, clen))
				return;
			body_line(m, p, clen, p + clen, eol_len);
			return;
		}
		case ST_SKIP:
		case ST_DEAD:
			return;
		}
		return;
	}
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
		m->frames[fi].seen = true;
		unwind(m, (uint32_t)fi + 1);
		m->pre_len = 0;
		m->pre_text = false;
		if (close) {
			m->nframes = (uint32_t)fi;   /* its epilogue follows */
			m->state = ST_SKIP;
		} else {
			start_entity(m);
		}
		return;
	}
	dispatch(m, p, clen + eol_len, clen, eol_len, line_start);
}

/*
 * Is a line in [s, end) (end just past a LF) too long: @ge counts a line of
 * exactly max_line bytes (before its LF) too, as the body path always did.
 * One memrchr per max_line bytes, not one memchr per line: from each line
 * start, the last LF within the window ends a run of lines that all fit.
 */
static bool has_long_line(const uint8_t *s, const uint8_t *end, size_t max_line, bool ge)
{
	size_t win = ge ? max_line : max_line + 1;

	while ((size_t)(end - s) > win) {
		const uint8_t *nl = memrchr(s, '\n', win);

		if (nl == NULL)
			return true;
		s = nl + 1;
	}
	return false;
}

/*
 * Whole lines at @p that no boundary and no uuencode "begin" can start
 * (none starts with '-', nor with "begin" when @uu): they need no line by
 * line handling. 0 when the first line is such a line or no LF is in
 * sight. A line over max_line among them is reported (@ge as above).
 * @text: hyphens may be common (not base64), so look for line starts in
 * one vector pass rather than a memchr per '-'.
 */
static size_t plain_span(struct mry_mime *m, const uint8_t *p, size_t len, bool uu, bool ge,
			 bool text)
{
	const uint8_t *s = p, *end;

	if (*p == '-' || (uu && len >= 5 && memcmp(p, "begin", 5) == 0))
		return 0;
	end = memrchr(p, '\n', len);
	if (end == NULL)
		return 0;
	end++;
	if (text || uu) {
		const uint8_t *q = mry_mime_line_mark(p, (size_t)(end - p), uu);

		if (q != NULL)
			end = q;
		s = end;              /* done: no memchr walk below */
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
	if (has_long_line(p, end, m->ctx->cfg.max_line, ge))
		report_once(m, MRY_MIME_AN_LINE_TOO_LONG);
	return (size_t)(end - p);
}

static void feed_layer(struct mry_mime *m, const uint8_t *data, size_t len)
{
	uint32_t max_line = m->ctx->cfg.max_line;

	while (len > 0 && m->state != ST_DEAD) {
		const uint8_t *nl;
		size_t n;

		if (m->line_len == 0) {
			if (m->state == ST_BODY && !m->in_long_line) {
				n = plain_span(m, data, len, m->uu_scan, true,
					       m->dec_enc != MRY_MIME_ENC_BASE64);
				if (n > 0) {
					size_t el = (n >= 2 && data[n - 2] == '\r') ? 2 : 1;

					body_line(m, data, n - el, data + n - el, el);
					data += n;
					len -= n;
					continue;
				}
			} else if (m->state == ST_SKIP && !m->in_long_line) {
				/* an epilogue: only a delimiter line can end it */
				n = plain_span(m, data, len, false, false, false);
				if (n > 0) {
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

void mry_mime_feed(struct mry_mime *m, const uint8_t *data, size_t len)
{
	if (m == NULL)
		return;
	m->ctx->st.bytes_in += len;
	feed_layer(m, data, len);
}

/* a layer from the pool starts reading a message; false at the part cap */
static bool layer_start(struct mry_mime *m, struct mry_mime_ctx *c, void *user,
			struct mry_mime *root, uint32_t depth_base)
{
	m->ctx = c;
	m->user = user;
	m->root = root != NULL ? root : m;
	m->depth_base = depth_base;
	m->frames = (struct mime_frame *)((uint8_t *)m + c->off_frames);
	m->line = (uint8_t *)m + c->off_line;
	m->field = (char *)m + c->off_field;
	m->pre = (uint8_t *)m + c->off_pre;
	m->first_line = root == NULL;
	start_entity(m);
	return m->state != ST_DEAD;
}

/* end of a layer's input: flush, close open parts and containers */
static void layer_finish(struct mry_mime *m)
{
	if (m->line_len > 0) {
		handle_line(m, m->line, m->line_len, false);
		m->line_len = 0;
	}
	if (m->state == ST_HEADERS && (m->hb.lines > 0 || m->nframes == 0))
		headers_done(m);
	if (m->state == ST_PREAMBLE && m->pre_text)
		preamble_open(m);
	if (m->state == ST_BODY || m->state == ST_UU) {
		/* no delimiter follows: the last line end is content */
		if (m->eol_len > 0) {
			body_bytes(m, m->eol, m->eol_len);
			m->eol_len = 0;
		}
		leaf_end(m);
	}
	while (m->nframes > 0)
		pop_frame(m);
}

/* back to the pool, with any nested layer still open */
static void layer_release(struct mry_mime *m)
{
	while (m != NULL) {
		struct mry_mime *c = m->child;

		mry_pool_put(m->nested ? m->ctx->nested_pool : m->ctx->pool, m);
		m = c;
	}
}

struct mry_mime *mry_mime_begin(struct mry_mime_ctx *c, void *user)
{
	struct mry_mime *m = mry_pool_get(c->pool);

	if (m == NULL)
		return NULL;       /* counted by the pool, see mry_mime_get_stats() */
	layer_start(m, c, user, NULL, 0);
	return m;
}

void mry_mime_end(struct mry_mime *m)
{
	if (m == NULL)
		return;
	layer_finish(m);
	m->ctx->st.messages++;
	layer_release(m);
}

void mry_mime_abort(struct mry_mime *m)
{
	if (m == NULL)
		return;
	layer_release(m);
}
