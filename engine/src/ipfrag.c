/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * IP fragment reassembly (RFC 791 §3.2, RFC 8200 §4.5, RFC 815 holes) with
 * every resource fixed at creation: a slot array of max_datagrams, a hash
 * of slot chains, and a pool of MRY_IPFRAG_CHUNK-byte data chunks shared by
 * all datagrams (mem_bytes). Fragment bytes are copied into chunks at their
 * datagram offset, so the caller's packet buffer is never pinned and no
 * allocation happens per fragment. Received bytes are tracked as a sorted
 * list of disjoint ranges (the complement of RFC 815's hole list); a
 * datagram is complete when one range covers [0, end of last fragment).
 *
 * The trade-off is memory versus contiguity: chunks keep a table's memory
 * proportional to what is in flight rather than max_datagrams * 64 KiB, at
 * the price of one copy into an output buffer on completion.
 *
 * Overlaps are the classic evasion (Ptacek & Newsham 1998; Novak, "Target-
 * Based Fragmentation Reassembly", 2005): identical bytes are counted as a
 * retransmission, different bytes as a conflict that drops the datagram
 * (default) or keeps the first copy. Datagrams age out in arrival order of
 * their first fragment, at most @budget per expire call.
 */
#include <string.h>
#include <time.h>

#include "moray/ipfrag.h"

#define NIL UINT32_MAX
#define DEFAULT_MAX_DATAGRAMS 1024u
#define DEFAULT_MAX_BYTES (65535u + 40u)
#define DEFAULT_TIMEOUT_NS (30 * MRY_NS_PER_SEC)
#define DEFAULT_MEM_PER_DGRAM 8192u
#define LIMIT_MAX_DATAGRAMS (1u << 22)
#define LIMIT_MAX_BYTES (1u << 20)
#define IPV4_MAX_LEN 65535u
#define IPV6_MAX_PAYLOAD 65535u

struct frag_range {
	uint32_t start;
	uint32_t end;
};

struct frag_dgram {
	uint32_t hnext;            /* hash chain */
	uint32_t prev;             /* age list, oldest first; free list uses next */
	uint32_t next;
	uint32_t id;
	uint64_t first_ns;
	uint32_t total;            /* data length, known once the last fragment came */
	uint16_t hdr_len;
	uint8_t ver;
	uint8_t proto;             /* IPv4 protocol (key); 0 for IPv6 */
	uint8_t next_proto;        /* from the offset-0 fragment */
	uint8_t nb_ranges;
	bool in_use;
	bool have_first;
	bool have_last;
	bool conflict;
	uint8_t src[16];
	uint8_t dst[16];
	struct frag_range ranges[MRY_IPFRAG_MAX_RANGES];
	uint8_t hdr[MRY_IPFRAG_HDR_MAX];
};

struct mry_ipfrag_table {
	struct mry_alloc alloc;
	struct mry_ipfrag_config cfg;
	struct mry_ipfrag_stats st;
	uint64_t seed;
	uint32_t bucket_mask;
	uint32_t *buckets;
	struct frag_dgram *slots;
	uint32_t free_head;
	uint32_t age_head;
	uint32_t age_tail;
	uint32_t chunks_per_dgram;
	uint32_t *chunk_idx;       /* slots x chunks_per_dgram, NIL = none */
	uint32_t nb_chunks;
	uint32_t nb_free_chunks;
	uint32_t *chunk_free;      /* stack of free chunk numbers */
	uint8_t *chunk_mem;
	uint8_t *out;              /* MRY_IPFRAG_HDR_MAX + max_bytes */
};


static inline void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline uint64_t mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static uint32_t key_hash(const struct mry_ipfrag_table *t, uint8_t ver,
			 uint8_t proto, uint32_t id, const uint8_t *src,
			 const uint8_t *dst)
{
	uint64_t h = t->seed ^ ((uint64_t)ver << 40 | (uint64_t)proto << 32 | id);
	unsigned alen = ver == 6 ? 16 : 4;

	for (unsigned i = 0; i < alen; i += 4) {
		uint32_t a, b;

		memcpy(&a, src + i, 4);
		memcpy(&b, dst + i, 4);
		h = mix64(h ^ ((uint64_t)a << 32 | b));
	}
	return (uint32_t)mix64(h) & t->bucket_mask;
}

static inline uint32_t slot_no(const struct mry_ipfrag_table *t,
			       const struct frag_dgram *d)
{
	return (uint32_t)(d - t->slots);
}

static inline uint32_t *slot_chunks(struct mry_ipfrag_table *t,
				    const struct frag_dgram *d)
{
	return t->chunk_idx + (size_t)slot_no(t, d) * t->chunks_per_dgram;
}

/* ---- create / destroy -------------------------------------------------- */

struct mry_ipfrag_table *mry_ipfrag_create(const struct mry_alloc *a,
					   const struct mry_ipfrag_config *cfg)
{
	struct mry_ipfrag_table *t;
	struct mry_ipfrag_config c;
	struct timespec ts;
	uint32_t nb_buckets = 1;
	uint64_t mem;

	if (a == NULL || cfg == NULL) {
		mry_log(MRY_LOG_ERR, "ipfrag", "create: no allocator or config");
		return NULL;
	}
	c = *cfg;
	if (c.max_datagrams == 0)
		c.max_datagrams = DEFAULT_MAX_DATAGRAMS;
	if (c.max_bytes == 0)
		c.max_bytes = DEFAULT_MAX_BYTES;
	if (c.timeout_ns == 0)
		c.timeout_ns = DEFAULT_TIMEOUT_NS;
	if (c.max_datagrams > LIMIT_MAX_DATAGRAMS || c.max_bytes > LIMIT_MAX_BYTES ||
	    (unsigned)c.policy > MRY_IPFRAG_OVERLAP_FIRST) {
		mry_log(MRY_LOG_ERR, "ipfrag",
			"bad config: max_datagrams %u (max %u), max_bytes %u (max %u), policy %u",
			c.max_datagrams, LIMIT_MAX_DATAGRAMS, c.max_bytes,
			LIMIT_MAX_BYTES, (unsigned)c.policy);
		return NULL;
	}
	mem = c.mem_bytes != 0 ? c.mem_bytes :
	      (uint64_t)c.max_datagrams * DEFAULT_MEM_PER_DGRAM;
	if (mem > UINT32_MAX)
		mem = UINT32_MAX - MRY_IPFRAG_CHUNK;
	if (mem < (uint64_t)c.max_bytes + MRY_IPFRAG_CHUNK)
		mem = (uint64_t)c.max_bytes + MRY_IPFRAG_CHUNK;
	c.mem_bytes = (uint32_t)mem;

	t = mry_zalloc_aligned(a, sizeof(*t), MRY_CACHE_LINE);
	if (t == NULL)
		goto nomem;
	t->alloc = *a;
	t->cfg = c;
	while (nb_buckets < c.max_datagrams)
		nb_buckets <<= 1;
	t->bucket_mask = nb_buckets - 1;
	t->chunks_per_dgram = (c.max_bytes + MRY_IPFRAG_CHUNK - 1) / MRY_IPFRAG_CHUNK;
	t->nb_chunks = c.mem_bytes / MRY_IPFRAG_CHUNK;
	t->buckets = mry_zalloc(a, sizeof(uint32_t) * nb_buckets);
	t->slots = mry_zalloc_aligned(a, sizeof(struct frag_dgram) * c.max_datagrams,
				      MRY_CACHE_LINE);
	t->chunk_idx = mry_zalloc(a, sizeof(uint32_t) * (size_t)c.max_datagrams *
				  t->chunks_per_dgram);
	t->chunk_free = mry_zalloc(a, sizeof(uint32_t) * t->nb_chunks);
	t->chunk_mem = mry_zalloc_aligned(a, (size_t)t->nb_chunks * MRY_IPFRAG_CHUNK,
					  MRY_CACHE_LINE);
	t->out = mry_zalloc_aligned(a, MRY_IPFRAG_HDR_MAX + (size_t)c.max_bytes,
				    MRY_CACHE_LINE);
	if (t->buckets == NULL || t->slots == NULL || t->chunk_idx == NULL ||
	    t->chunk_free == NULL || t->chunk_mem == NULL || t->out == NULL)
		goto nomem;

	for (uint32_t i = 0; i < nb_buckets; i++)
		t->buckets[i] = NIL;
	for (uint32_t i = 0; i < c.max_datagrams; i++)
		t->slots[i].next = i + 1 < c.max_datagrams ? i + 1 : NIL;
	memset(t->chunk_idx, 0xff,
	       sizeof(uint32_t) * (size_t)c.max_datagrams * t->chunks_per_dgram);
	for (uint32_t i = 0; i < t->nb_chunks; i++)
		t->chunk_free[i] = t->nb_chunks - 1 - i;
	t->nb_free_chunks = t->nb_chunks;
	t->free_head = 0;
	t->age_head = NIL;
	t->age_tail = NIL;
	/* keyed hash: fragment IDs are attacker-chosen (hash flooding) */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t->seed = mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
			(uint64_t)(uintptr_t)t);
	return t;

nomem:
	mry_log(MRY_LOG_ERR, "ipfrag",
		"no memory for %u datagrams, %u bytes of fragment data",
		c.max_datagrams, c.mem_bytes);
	mry_ipfrag_destroy(t);
	return NULL;
}

void mry_ipfrag_destroy(struct mry_ipfrag_table *t)
{
	struct mry_alloc a;

	if (t == NULL)
		return;
	a = t->alloc;
	mry_free(&a, t->out);
	mry_free(&a, t->chunk_mem);
	mry_free(&a, t->chunk_free);
	mry_free(&a, t->chunk_idx);
	mry_free(&a, t->slots);
	mry_free(&a, t->buckets);
	mry_free(&a, t);
}

/* ---- slots ------------------------------------------------------------- */

static struct frag_dgram *lookup(struct mry_ipfrag_table *t, uint32_t b,
				 uint8_t ver, uint8_t proto, uint32_t id,
				 const uint8_t *src, const uint8_t *dst)
{
	unsigned alen = ver == 6 ? 16 : 4;

	for (uint32_t i = t->buckets[b]; i != NIL; i = t->slots[i].hnext) {
		struct frag_dgram *d = &t->slots[i];

		if (d->id == id && d->ver == ver && d->proto == proto &&
		    memcmp(d->src, src, alen) == 0 && memcmp(d->dst, dst, alen) == 0)
			return d;
	}
	return NULL;
}

static void release(struct mry_ipfrag_table *t, struct frag_dgram *d)
{
	uint32_t n = slot_no(t, d);
	uint32_t *ch = slot_chunks(t, d);
	uint32_t b = key_hash(t, d->ver, d->proto, d->id, d->src, d->dst);
	uint32_t *pp = &t->buckets[b];

	for (uint32_t i = 0; i < t->chunks_per_dgram; i++) {
		if (ch[i] != NIL) {
			t->chunk_free[t->nb_free_chunks++] = ch[i];
			ch[i] = NIL;
		}
	}
	while (*pp != NIL && *pp != n)
		pp = &t->slots[*pp].hnext;
	if (*pp == n)
		*pp = d->hnext;
	if (d->prev != NIL)
		t->slots[d->prev].next = d->next;
	else
		t->age_head = d->next;
	if (d->next != NIL)
		t->slots[d->next].prev = d->prev;
	else
		t->age_tail = d->prev;
	d->in_use = false;
	d->next = t->free_head;
	t->free_head = n;
	t->st.in_use--;
}

static inline bool expired(const struct mry_ipfrag_table *t,
			   const struct frag_dgram *d, uint64_t now_ns)
{
	return now_ns >= d->first_ns && now_ns - d->first_ns >= t->cfg.timeout_ns;
}

static struct frag_dgram *insert(struct mry_ipfrag_table *t, uint32_t b,
				 const struct mry_pkt *f, uint8_t proto,
				 uint64_t now_ns)
{
	struct frag_dgram *d;
	uint32_t n;

	if (t->free_head == NIL) {
		/* reclaim the oldest only if it is due anyway: evicting live
		 * datagrams would let a flood of fragments flush real ones */
		if (t->age_head == NIL || !expired(t, &t->slots[t->age_head], now_ns))
			return NULL;
		t->st.timeouts++;
		release(t, &t->slots[t->age_head]);
	}
	n = t->free_head;
	d = &t->slots[n];
	t->free_head = d->next;
	memset(d, 0, offsetof(struct frag_dgram, ranges));
	d->ver = f->ip_version;
	d->proto = proto;
	d->id = f->frag_id;
	memcpy(d->src, f->src, 16);
	memcpy(d->dst, f->dst, 16);
	d->first_ns = now_ns;
	d->in_use = true;
	d->hnext = t->buckets[b];
	t->buckets[b] = n;
	d->next = NIL;
	d->prev = t->age_tail;
	if (t->age_tail != NIL)
		t->slots[t->age_tail].next = n;
	else
		t->age_head = n;
	t->age_tail = n;
	t->st.in_use++;
	return d;
}

/* ---- data -------------------------------------------------------------- */

/* Pointer to datagram byte @off within its chunk (chunk must exist). */
static inline uint8_t *chunk_at(struct mry_ipfrag_table *t, const uint32_t *ch,
				uint32_t off)
{
	return t->chunk_mem + (size_t)ch[off / MRY_IPFRAG_CHUNK] * MRY_IPFRAG_CHUNK +
	       off % MRY_IPFRAG_CHUNK;
}

/* true when stored bytes [start, end) equal @src */
static bool same_bytes(struct mry_ipfrag_table *t, const uint32_t *ch,
		       uint32_t start, uint32_t end, const uint8_t *src)
{
	while (start < end) {
		uint32_t n = MRY_MIN(end - start,
				     MRY_IPFRAG_CHUNK - start % MRY_IPFRAG_CHUNK);

		if (memcmp(chunk_at(t, ch, start), src, n) != 0)
			return false;
		start += n;
		src += n;
	}
	return true;
}

static bool store_bytes(struct mry_ipfrag_table *t, uint32_t *ch,
			uint32_t start, uint32_t end, const uint8_t *src)
{
	while (start < end) {
		uint32_t c = start / MRY_IPFRAG_CHUNK;
		uint32_t n = MRY_MIN(end - start,
				     MRY_IPFRAG_CHUNK - start % MRY_IPFRAG_CHUNK);

		if (ch[c] == NIL) {
			if (t->nb_free_chunks == 0)
				return false;
			ch[c] = t->chunk_free[--t->nb_free_chunks];
		}
		memcpy(chunk_at(t, ch, start), src, n);
		start += n;
		src += n;
	}
	return true;
}

/* Add [start, end) to the sorted disjoint range list, merging neighbours. */
static bool add_range(struct frag_dgram *d, uint32_t start, uint32_t end)
{
	struct frag_range *r = d->ranges;
	unsigned n = d->nb_ranges, i = 0, j;

	while (i < n && r[i].end < start)
		i++;
	j = i;
	while (j < n && r[j].start <= end) {
		start = MRY_MIN(start, r[j].start);
		end = MRY_MAX(end, r[j].end);
		j++;
	}
	if (j == i) {
		if (n == MRY_IPFRAG_MAX_RANGES)
			return false;
		memmove(&r[i + 1], &r[i], (n - i) * sizeof(*r));
		n++;
	} else if (j > i + 1) {
		memmove(&r[i + 1], &r[j], (n - j) * sizeof(*r));
		n -= j - i - 1;
	}
	r[i].start = start;
	r[i].end = end;
	d->nb_ranges = (uint8_t)n;
	return true;
}

/*
 * IPv6: the next-header byte that named the fragment header is the last one
 * of the chain in the unfragmentable part (RFC 8200 §4.5: it takes the value
 * of the fragment header's next header). Returns its offset, or -1.
 */
static int ipv6_last_nh(const uint8_t *h, uint32_t len)
{
	uint32_t nh_pos = 6, p = 40;

	while (p < len) {
		uint32_t hl;

		if (p + 2 > len)
			return -1;
		switch (h[nh_pos]) {
		case 0:
		case 43:
		case 60:
			hl = ((uint32_t)h[p + 1] + 1) * 8;
			break;
		case 51:
			hl = ((uint32_t)h[p + 1] + 2) * 4;
			break;
		case 44:
			hl = 8;
			break;
		default:
			return -1;
		}
		nh_pos = p;
		p += hl;
	}
	return p == len ? (int)nh_pos : -1;
}

/* Copy header + data into t->out and rewrite the header; 0 or -1. */
static int build(struct mry_ipfrag_table *t, struct frag_dgram *d,
		 uint32_t *len)
{
	uint8_t *o = t->out;
	const uint32_t *ch = slot_chunks(t, d);
	uint32_t hl = d->hdr_len;

	memcpy(o, d->hdr, hl);
	for (uint32_t off = 0; off < d->total;) {
		uint32_t n = MRY_MIN(d->total - off, MRY_IPFRAG_CHUNK);

		memcpy(o + hl + off, chunk_at(t, ch, off), n);
		off += n;
	}
	if (d->ver == 4) {
		if (hl + d->total > IPV4_MAX_LEN)
			return -1;
		wr16(o + 2, (uint16_t)(hl + d->total));
		o[6] &= 0x40;   /* keep DF, clear MF and offset */
		o[7] = 0;
		o[10] = 0;
		o[11] = 0;
		wr16(o + 10, mry_csum_fold(mry_csum_partial(o, hl, 0)));
	} else {
		int nh = ipv6_last_nh(o, hl);

		if (nh < 0 || hl - 40 + d->total > IPV6_MAX_PAYLOAD)
			return -1;
		o[nh] = d->next_proto;
		wr16(o + 4, (uint16_t)(hl - 40 + d->total));
	}
	*len = hl + d->total;
	return 0;
}

/* ---- public ------------------------------------------------------------ */

static enum mry_ipfrag_result drop(struct mry_ipfrag_table *t,
				   struct frag_dgram *d, uint64_t *reason)
{
	if (reason != NULL)
		(*reason)++;
	if (d != NULL)
		release(t, d);
	t->st.dropped++;
	return MRY_IPFRAG_DROPPED;
}

enum mry_ipfrag_result mry_ipfrag_add(struct mry_ipfrag_table *t,
				      const struct mry_pkt *frag, uint64_t now_ns,
				      const uint8_t **dgram, uint32_t *dgram_len,
				      bool *conflict)
{
	uint32_t off = frag->frag_off;
	uint32_t len = frag->frag_data_len;
	uint32_t end = off + len;
	uint8_t proto = frag->ip_version == 4 ? frag->frag_next_proto : 0;
	const uint8_t *data = frag->frag_data;
	struct frag_dgram *d;
	bool overlap = false, differ = false;
	uint32_t *ch;
	uint32_t b;

	*dgram = NULL;
	*dgram_len = 0;
	*conflict = false;
	t->st.fragments++;
	if ((frag->ip_version != 4 && frag->ip_version != 6) || data == NULL ||
	    off % 8 != 0 || (frag->frag_more && (len == 0 || len % 8 != 0)))
		return drop(t, NULL, &t->st.inconsistent);

	b = key_hash(t, frag->ip_version, proto, frag->frag_id, frag->src, frag->dst);
	d = lookup(t, b, frag->ip_version, proto, frag->frag_id, frag->src, frag->dst);
	if (d != NULL && expired(t, d, now_ns)) {
		t->st.timeouts++;
		release(t, d);
		d = NULL;
	}
	if (end > t->cfg.max_bytes)
		return drop(t, d, &t->st.too_big);
	if (d == NULL) {
		d = insert(t, b, frag, proto, now_ns);
		if (d == NULL)
			return drop(t, NULL, &t->st.table_full);
	}
	ch = slot_chunks(t, d);

	/* the end of the datagram: one value, nothing stored past it */
	if (!frag->frag_more) {
		if ((d->have_last && d->total != end) ||
		    (d->nb_ranges != 0 && d->ranges[d->nb_ranges - 1].end > end))
			return drop(t, d, &t->st.inconsistent);
		d->have_last = true;
		d->total = end;
	} else if (d->have_last && end > d->total) {
		return drop(t, d, &t->st.inconsistent);
	}

	for (unsigned i = 0; i < d->nb_ranges; i++) {
		const struct frag_range *r = &d->ranges[i];
		uint32_t s = MRY_MAX(r->start, off), e = MRY_MIN(r->end, end);

		if (s >= e)
			continue;
		overlap = true;
		if (!same_bytes(t, ch, s, e, data + (s - off)))
			differ = true;
	}
	if (differ) {
		t->st.overlap_conflict++;
		d->conflict = true;
		*conflict = true;
		if (t->cfg.policy == MRY_IPFRAG_OVERLAP_DROP)
			return drop(t, d, NULL);
	} else if (overlap) {
		t->st.overlap_same++;
	}

	/* store only the gaps: existing bytes stay (first copy wins) */
	{
		uint32_t cur = off;

		for (unsigned i = 0; i < d->nb_ranges && cur < end; i++) {
			const struct frag_range *r = &d->ranges[i];

			if (r->end <= cur)
				continue;
			if (r->start >= end)
				break;
			if (r->start > cur &&
			    !store_bytes(t, ch, cur, r->start, data + (cur - off)))
				return drop(t, d, &t->st.no_mem);
			cur = MRY_MAX(cur, r->end);
		}
		if (cur < end && !store_bytes(t, ch, cur, end, data + (cur - off)))
			return drop(t, d, &t->st.no_mem);
	}
	if (len != 0 && !add_range(d, off, end))
		return drop(t, d, &t->st.holes_full);

	if (off == 0 && !d->have_first) {
		if (frag->frag_unfrag_len > MRY_IPFRAG_HDR_MAX || frag->l3 == NULL ||
		    frag->frag_unfrag_len < (frag->ip_version == 4 ? 20 : 40))
			return drop(t, d, &t->st.too_big);
		memcpy(d->hdr, frag->l3, frag->frag_unfrag_len);
		d->hdr_len = frag->frag_unfrag_len;
		d->next_proto = frag->frag_next_proto;
		d->have_first = true;
	}

	if (d->have_first && d->have_last && d->nb_ranges == 1 &&
	    d->ranges[0].start == 0 && d->ranges[0].end == d->total) {
		*conflict = d->conflict;
		if (build(t, d, dgram_len) != 0) {
			*dgram_len = 0;
			return drop(t, d, &t->st.too_big);
		}
		*dgram = t->out;
		t->st.completed++;
		release(t, d);
		return MRY_IPFRAG_COMPLETE;
	}
	return MRY_IPFRAG_NEED_MORE;
}

void mry_ipfrag_expire(struct mry_ipfrag_table *t, uint64_t now_ns,
		       unsigned budget)
{
	while (budget-- > 0 && t->age_head != NIL &&
	       expired(t, &t->slots[t->age_head], now_ns)) {
		t->st.timeouts++;
		release(t, &t->slots[t->age_head]);
	}
}

uint64_t mry_ipfrag_next_deadline(const struct mry_ipfrag_table *t)
{
	if (t->age_head == NIL)
		return UINT64_MAX;
	return t->slots[t->age_head].first_ns + t->cfg.timeout_ns;
}

void mry_ipfrag_get_stats(const struct mry_ipfrag_table *t,
			  struct mry_ipfrag_stats *st)
{
	*st = t->st;
}
