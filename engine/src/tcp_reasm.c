/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TCP reassembly: one in-order byte stream per direction.
 *
 * In-order bytes are handed to the consumer straight from the packet (zero
 * copy). Bytes ahead of the stream are copied into fixed-size buffers from
 * a per-worker pool (receive buffers are never pinned); a segment longer
 * than one buffer spans several. Buffered bytes form a sorted list of
 * non-overlapping ranges in 64-bit stream offsets, all at or after the
 * delivered edge, so sequence wrap-around never reaches the list: a sequence
 * number becomes an offset once, relative to next_seq (wrap-safe), and
 * wrap_hi carries the high half of the delivered edge.
 *
 * Overlaps (Ptacek & Newsham 1998; Novak & Sturges 2007): a segment that
 * overlaps buffered bytes is compared byte for byte. Identical: absorbed.
 * Different: MRY_STREAM_CONFLICT, overlap_conflict, result CONFLICT, and
 * the policy picks the bytes: FIRST keeps (and later delivers) the buffered
 * copy, LAST overwrites it with the new one. Bytes before the delivered
 * edge are gone, so they cannot be compared: a segment entirely before the
 * edge is a RETRANSMIT, one straddling it has only its new part delivered
 * (overlap_delivered). Keeping a tail of delivered bytes to compare against
 * would cost per-stream memory on every flow for a check only the engine's
 * withholding can act on; the engine withholds by byte range instead.
 *
 * Caps: max_ooo_bytes and max_ooo_segs (buffers) per stream, seg_pool_count
 * buffers per worker. A segment that does not fit is not kept at all
 * (OOO_FULL, ooo_stream_cap); one that finds the pool empty keeps what was
 * copied before (OOO_FULL, ooo_pool_empty). The sender retransmits either
 * way.
 */
#include <string.h>

#include "moray/tcp_reasm.h"

#define REASM_DEFAULT_POOL      65536u
#define REASM_DEFAULT_SEG_SIZE  2048u
#define REASM_DEFAULT_OOO_BYTES (256u * 1024u)
#define REASM_DEFAULT_OOO_SEGS  256u

struct mry_reasm_seg {
	struct mry_reasm_seg *next;
	uint64_t off;                /* stream offset of data[start] */
	uint32_t len;
	uint32_t start;
	uint8_t data[];              /* seg_size bytes */
};

struct mry_reasm {
	const struct mry_alloc *alloc;
	struct mry_pool *pool;
	uint32_t seg_size;
	uint32_t max_ooo_bytes;
	uint32_t max_ooo_segs;
	enum mry_reasm_overlap_policy policy;
	struct mry_reasm_stats st;
};

struct mry_reasm *mry_reasm_create(const struct mry_alloc *a,
				   const struct mry_reasm_config *cfg)
{
	struct mry_reasm *r = mry_zalloc(a, sizeof(*r));
	uint32_t count;

	if (r == NULL) {
		mry_log(MRY_LOG_ERR, "tcp_reasm", "cannot allocate reassembly state");
		return NULL;
	}
	r->alloc = a;
	count = cfg != NULL && cfg->seg_pool_count != 0 ? cfg->seg_pool_count
							: REASM_DEFAULT_POOL;
	r->seg_size = cfg != NULL && cfg->seg_size != 0 ? cfg->seg_size
							: REASM_DEFAULT_SEG_SIZE;
	r->max_ooo_bytes = cfg != NULL && cfg->max_ooo_bytes != 0 ?
			   cfg->max_ooo_bytes : REASM_DEFAULT_OOO_BYTES;
	r->max_ooo_segs = cfg != NULL && cfg->max_ooo_segs != 0 ?
			  cfg->max_ooo_segs : REASM_DEFAULT_OOO_SEGS;
	/* nb_ooo is 16 bits wide */
	r->max_ooo_segs = MRY_MIN(r->max_ooo_segs, UINT16_MAX);
	r->policy = cfg != NULL ? cfg->policy : MRY_REASM_OVERLAP_FIRST;
	r->pool = mry_pool_create_ex(a, "reasm_seg", sizeof(struct mry_reasm_seg) + r->seg_size,
				     count, sizeof(struct mry_reasm_seg));
	if (r->pool == NULL) {
		mry_free(a, r);
		return NULL;
	}
	return r;
}

void mry_reasm_destroy(struct mry_reasm *r)
{
	if (r == NULL)
		return;
	mry_pool_destroy(r->pool);
	mry_free(r->alloc, r);
}

struct mry_pool *mry_reasm_pool(struct mry_reasm *r)
{
	return r->pool;
}

void mry_reasm_get_stats(const struct mry_reasm *r, struct mry_reasm_stats *st)
{
	*st = r->st;
}

void mry_tcp_stream_init(struct mry_tcp_stream *s)
{
	memset(s, 0, sizeof(*s));
}

/* ---- buffered segments ------------------------------------------------- */

static void seg_free(struct mry_reasm *r, struct mry_tcp_stream *s,
		     struct mry_reasm_seg **link)
{
	struct mry_reasm_seg *g = *link;

	*link = g->next;
	s->nb_ooo--;
	s->ooo_bytes -= g->len;
	r->st.bytes_buffered -= g->len;
	mry_pool_put(r->pool, g);
}

static void seg_trim_front(struct mry_reasm *r, struct mry_tcp_stream *s,
			   struct mry_reasm_seg *g, uint32_t n)
{
	g->start += n;
	g->len -= n;
	g->off += n;
	s->ooo_bytes -= n;
	r->st.bytes_buffered -= n;
}

void mry_tcp_stream_release(struct mry_reasm *r, struct mry_tcp_stream *s)
{
	while (s->ooo != NULL)
		seg_free(r, s, &s->ooo);
}

/* Drop buffered bytes at or after offset @lim (they lie past the FIN). */
static MRY_COLD void segs_cut(struct mry_reasm *r, struct mry_tcp_stream *s,
			      uint64_t lim)
{
	struct mry_reasm_seg **link = &s->ooo;

	while (*link != NULL) {
		struct mry_reasm_seg *g = *link;

		if (g->off >= lim) {
			r->st.after_close++;
			seg_free(r, s, link);
			continue;
		}
		if (g->off + g->len > lim) {
			uint32_t cut = (uint32_t)(g->off + g->len - lim);

			r->st.after_close++;
			g->len -= cut;
			s->ooo_bytes -= cut;
			r->st.bytes_buffered -= cut;
		}
		link = &g->next;
	}
}

/* ---- offsets ----------------------------------------------------------- */

uint64_t mry_tcp_stream_delivered(const struct mry_tcp_stream *s)
{
	return ((uint64_t)s->wrap_hi << 32) | (uint32_t)(s->next_seq - s->base_seq);
}

/* Signed stream offset of @seq: negative before the ISN. */
static inline int64_t seq_off(const struct mry_tcp_stream *s, uint32_t seq)
{
	return (int64_t)mry_tcp_stream_delivered(s) + (int32_t)(seq - s->next_seq);
}

uint64_t mry_tcp_stream_offset(const struct mry_tcp_stream *s, uint32_t seq)
{
	int64_t o;

	if (!(s->flags & MRY_STREAM_STARTED))
		return 0;
	o = seq_off(s, seq);
	return o < 0 ? 0 : (uint64_t)o;
}

bool mry_tcp_stream_reaches(const struct mry_tcp_stream *s,
			    const struct mry_pkt *pkt, uint64_t off)
{
	uint32_t seq = pkt->seq + ((pkt->tcp_flags & MRY_TCP_SYN) ? 1 : 0);
	int64_t end;

	if (pkt->payload_len == 0 && !(pkt->tcp_flags & MRY_TCP_FIN))
		return false;
	/* no base yet: cannot tell, so assume it does (withholding is safe) */
	if (!(s->flags & MRY_STREAM_STARTED))
		return true;
	end = seq_off(s, seq) + pkt->payload_len +
	      ((pkt->tcp_flags & MRY_TCP_FIN) ? 1 : 0);
	return end > (int64_t)off;
}

/* ---- delivery ---------------------------------------------------------- */

static inline void emit(struct mry_reasm *r, struct mry_tcp_stream *s,
			const uint8_t *p, uint32_t n, mry_reasm_deliver_fn fn,
			void *ctx)
{
	uint32_t lo = s->next_seq - s->base_seq;

	if (n == 0)
		return;
	if (fn != NULL)
		fn(ctx, s, p, n, mry_tcp_stream_delivered(s));
	if ((uint64_t)lo + n > UINT32_MAX)
		s->wrap_hi++;
	s->next_seq += n;
	r->st.bytes_delivered += n;
}

/*
 * @data (@len bytes) starts exactly at the delivered edge. Buffered bytes it
 * covers are compared and consumed; then buffered segments it made
 * contiguous are delivered. Returns true on a conflicting overlap.
 */
static bool deliver_in_order(struct mry_reasm *r, struct mry_tcp_stream *s,
			     const uint8_t *data, uint32_t len,
			     mry_reasm_deliver_fn fn, void *ctx)
{
	uint64_t base = mry_tcp_stream_delivered(s), end = base + len;
	uint64_t from = base;       /* packet bytes [from, ...) not yet emitted */
	bool conflict = false;

	while (s->ooo != NULL && s->ooo->off < end) {
		struct mry_reasm_seg *g = s->ooo;
		uint64_t ov_end = MRY_MIN(end, g->off + g->len);
		uint32_t n = (uint32_t)(ov_end - g->off);

		if (memcmp(data + (g->off - base), g->data + g->start, n) != 0) {
			conflict = true;
			if (r->policy == MRY_REASM_OVERLAP_FIRST) {
				/* the first copy seen is the one delivered */
				emit(r, s, data + (from - base),
				     (uint32_t)(g->off - from), fn, ctx);
				emit(r, s, g->data + g->start, n, fn, ctx);
				from = ov_end;
			}
		}
		if (n == g->len)
			seg_free(r, s, &s->ooo);
		else
			seg_trim_front(r, s, g, n);
	}
	emit(r, s, data + (from - base), (uint32_t)(end - from), fn, ctx);
	while (s->ooo != NULL && s->ooo->off == mry_tcp_stream_delivered(s)) {
		struct mry_reasm_seg *g = s->ooo;

		emit(r, s, g->data + g->start, g->len, fn, ctx);
		seg_free(r, s, &s->ooo);
	}
	return conflict;
}

/* ---- out of order ------------------------------------------------------ */

/* Copy [pos, pos + n) of the segment into new buffers linked at *@link. */
static bool segs_insert(struct mry_reasm *r, struct mry_tcp_stream *s,
			struct mry_reasm_seg ***link, uint64_t pos,
			const uint8_t *p, uint64_t n)
{
	while (n > 0) {
		uint32_t k = (uint32_t)MRY_MIN(n, (uint64_t)r->seg_size);
		struct mry_reasm_seg *g = mry_pool_get(r->pool);

		if (g == NULL) {
			r->st.ooo_pool_empty++;
			return false;
		}
		g->off = pos;
		g->len = k;
		memcpy(g->data, p, k);
		g->next = **link;
		**link = g;
		*link = &g->next;
		s->nb_ooo++;
		s->ooo_bytes += k;
		r->st.bytes_buffered += k;
		pos += k;
		p += k;
		n -= k;
	}
	return true;
}

static enum mry_reasm_result buffer_ooo(struct mry_reasm *r,
					struct mry_tcp_stream *s,
					uint64_t a, const uint8_t *data,
					uint32_t len)
{
	const uint64_t b = a + len;
	uint64_t pos = a, new_bytes = 0, new_bufs = 0;
	bool conflict = false, same = false;
	struct mry_reasm_seg *g, **link;

	/* pass 1: what is new, what overlaps (and how) */
	for (g = s->ooo; g != NULL && pos < b; g = g->next) {
		uint64_t g_end = g->off + g->len, ov_end;

		if (g_end <= pos)
			continue;
		if (g->off >= b)
			break;
		if (g->off > pos) {
			new_bytes += g->off - pos;
			new_bufs += (g->off - pos + r->seg_size - 1) / r->seg_size;
			pos = g->off;
		}
		ov_end = MRY_MIN(b, g_end);
		if (memcmp(data + (pos - a), g->data + g->start + (pos - g->off),
			   ov_end - pos) != 0)
			conflict = true;
		else
			same = true;
		pos = ov_end;
	}
	if (pos < b) {
		new_bytes += b - pos;
		new_bufs += (b - pos + r->seg_size - 1) / r->seg_size;
	}
	if (conflict) {
		s->flags |= MRY_STREAM_CONFLICT;
		r->st.overlap_conflict++;
	} else if (same) {
		r->st.overlap_same++;
	}
	if (new_bytes != 0 && (s->ooo_bytes + new_bytes > r->max_ooo_bytes ||
			       s->nb_ooo + new_bufs > r->max_ooo_segs)) {
		r->st.ooo_stream_cap++;
		return conflict ? MRY_REASM_CONFLICT : MRY_REASM_OOO_FULL;
	}

	/* pass 2: insert the new pieces, overwrite overlaps under LAST */
	pos = a;
	link = &s->ooo;
	while (pos < b) {
		uint64_t g_end, ov_end;

		g = *link;
		if (g == NULL || g->off >= b) {
			if (!segs_insert(r, s, &link, pos, data + (pos - a), b - pos))
				return conflict ? MRY_REASM_CONFLICT : MRY_REASM_OOO_FULL;
			break;
		}
		g_end = g->off + g->len;
		if (g_end <= pos) {
			link = &g->next;
			continue;
		}
		if (g->off > pos) {
			if (!segs_insert(r, s, &link, pos, data + (pos - a), g->off - pos))
				return conflict ? MRY_REASM_CONFLICT : MRY_REASM_OOO_FULL;
			pos = g->off;
		}
		ov_end = MRY_MIN(b, g_end);
		if (conflict && r->policy == MRY_REASM_OVERLAP_LAST)
			memcpy(g->data + g->start + (pos - g->off), data + (pos - a),
			       ov_end - pos);
		pos = ov_end;
		link = &g->next;
	}
	if (conflict)
		return MRY_REASM_CONFLICT;
	if (new_bytes == 0) {
		r->st.retransmit++;
		return MRY_REASM_RETRANSMIT;
	}
	r->st.out_of_order++;
	return MRY_REASM_OUT_OF_ORDER;
}

/* ---- segments ---------------------------------------------------------- */

static void note_fin(struct mry_reasm *r, struct mry_tcp_stream *s,
		     uint32_t fin_seq)
{
	int64_t fin_off = seq_off(s, fin_seq);

	if (s->flags & MRY_STREAM_FIN_SEEN) {
		if (fin_seq != s->fin_seq)
			r->st.fin_mismatch++;
		return;
	}
	if (fin_off < (int64_t)mry_tcp_stream_delivered(s)) {
		/* bytes past it were delivered already */
		r->st.fin_mismatch++;
		return;
	}
	s->fin_seq = fin_seq;
	s->flags |= MRY_STREAM_FIN_SEEN;
	segs_cut(r, s, (uint64_t)fin_off);
}

static enum mry_reasm_result segment(struct mry_reasm *r,
				     struct mry_tcp_stream *s,
				     const struct mry_pkt *pkt,
				     mry_reasm_deliver_fn fn, void *ctx,
				     uint64_t *off)
{
	const uint8_t fl = pkt->tcp_flags;
	const uint8_t *data = pkt->payload;
	uint32_t len = pkt->payload_len;
	uint32_t seq = pkt->seq;
	int64_t rel;
	bool conflict;

	if (fl & MRY_TCP_SYN) {
		if (!(s->flags & MRY_STREAM_STARTED)) {
			s->base_seq = seq + 1;
			s->next_seq = seq + 1;
			s->flags |= MRY_STREAM_SYN_SEEN | MRY_STREAM_STARTED;
			if (pkt->has_wscale)
				s->wscale = pkt->wscale;
		} else if (!(s->flags & MRY_STREAM_SYN_SEEN) ||
			   seq + 1 != s->base_seq) {
			r->st.syn_mismatch++;
		}
		seq++;          /* data on a SYN (TFO) follows the ISN */
	}
	if (!(s->flags & MRY_STREAM_STARTED)) {
		if (fl & MRY_TCP_RST)
			s->flags |= MRY_STREAM_RST;
		if (len == 0 || (fl & MRY_TCP_RST))
			return MRY_REASM_NOT_STARTED;
		/* midstream pickup: the first data byte seen is offset 0 */
		s->base_seq = seq;
		s->next_seq = seq;
		s->flags |= MRY_STREAM_MIDSTREAM | MRY_STREAM_STARTED;
	}
	rel = (int32_t)(seq - s->next_seq);
	*off = (uint64_t)MRY_MAX((int64_t)mry_tcp_stream_delivered(s) + rel, 0);
	if (fl & MRY_TCP_RST) {
		s->flags |= MRY_STREAM_RST;
		if (len == 0)
			return MRY_REASM_EMPTY;
		r->st.after_close++;
		return MRY_REASM_AFTER_CLOSE;
	}
	if (fl & MRY_TCP_FIN)
		note_fin(r, s, seq + len);
	if (len == 0)
		return MRY_REASM_EMPTY;
	if (s->flags & MRY_STREAM_RST) {
		r->st.after_close++;
		return MRY_REASM_AFTER_CLOSE;
	}
	if (s->flags & MRY_STREAM_FIN_SEEN) {
		int32_t room = (int32_t)(s->fin_seq - seq);

		if (room <= 0) {
			r->st.after_close++;
			return MRY_REASM_AFTER_CLOSE;
		}
		if ((uint32_t)room < len) {
			r->st.after_close++;
			len = (uint32_t)room;
		}
	}
	if (rel + len <= 0) {
		r->st.retransmit++;
		return MRY_REASM_RETRANSMIT;
	}
	if (rel > 0)
		return buffer_ooo(r, s, mry_tcp_stream_delivered(s) + (uint64_t)rel,
				  data, len);
	if (rel < 0) {
		/* straddles the delivered edge: only the new part goes on */
		r->st.overlap_delivered++;
		data += -rel;
		len -= (uint32_t)-rel;
	}
	conflict = deliver_in_order(r, s, data, len, fn, ctx);
	r->st.in_order++;
	if (conflict) {
		s->flags |= MRY_STREAM_CONFLICT;
		r->st.overlap_conflict++;
		return MRY_REASM_CONFLICT;
	}
	return MRY_REASM_IN_ORDER;
}

enum mry_reasm_result mry_reasm_segment(struct mry_reasm *r,
					struct mry_tcp_stream *s,
					const struct mry_pkt *pkt,
					mry_reasm_deliver_fn fn, void *ctx,
					struct mry_reasm_seg_info *info)
{
	enum mry_reasm_result res;
	uint64_t off = 0;

	r->st.segments++;
	res = segment(r, s, pkt, fn, ctx, &off);
	if ((s->flags & (MRY_STREAM_FIN_SEEN | MRY_STREAM_FIN_DONE)) ==
	    MRY_STREAM_FIN_SEEN && s->next_seq == s->fin_seq)
		s->flags |= MRY_STREAM_FIN_DONE;
	if (info != NULL) {
		info->off = off;
		info->len = pkt->payload_len;
		info->result = res;
	}
	return res;
}
