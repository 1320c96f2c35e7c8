/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Scanning: Hyperscan streaming mode over each message, per worker.
 *
 * A message has up to three open streams, one per database slot: the raw
 * message (opened at begin), the header blocks (one stream for all header
 * blocks of the message, top level and parts, opened at begin: header
 * signatures are short and a single stream halves the stream state a
 * message pins), and the current decoded part (opened at part_begin, closed
 * at part_end, so offsets and anchors are per part as ClamAV's are per
 * file). Chunks are scanned where they lie (zero-copy).
 *
 * Stream state never comes from malloc on the fast path:
 * hs_set_stream_allocator() is process-global and has no context argument,
 * so the hook finds the calling worker's scanner through a _Thread_local
 * pointer, set only around the calls that open a stream or grow scratch
 * and restored after, so other Hyperscan users in the process (the
 * compiler, bench loops) never draw from a worker's pool (STYLE.md §5).
 * Closing needs no context: the state's header names its pool. Each state carries a 16-byte header naming the pool it came
 * from, so a stream opened on an old generation's (smaller) pool is returned
 * there after the pool was replaced by mry_scanner_prepare(). Pools are
 * sized 3 streams per message, so a message that got its msg object and its
 * two first streams can always open its part stream.
 *
 * Mode: the databases are HS_MODE_STREAM without any
 * HS_MODE_SOM_HORIZON_*, since no expression asks for start of match: a
 * verdict needs only which signatures matched, and SOM would cost stream
 * state per pattern and bound how far back a match may start. Every
 * expression carries HS_FLAG_SINGLEMATCH (sigsrc), so the callback below
 * runs at most once per signature per stream.
 *
 * Trade-off: the signature list of a message is a small fixed array
 * (MRY_SCAN_MAX_SIGS); beyond it, less severe entries are replaced by more
 * severe ones, and nb_sigs_total may count a signature twice when it matches
 * in two streams after the array is full.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <hs/hs.h>

#include "moray/scan.h"
#include "sigdb_priv.h"

#define STREAM_HDR 16u
#define STREAM_MAGIC_POOL 0x6d72797374726d31ull  /* "mrystrm1" */
#define STREAM_MAGIC_HEAP 0x6d72796865617031ull  /* "mryheap1" */
#define PREPARED_MAX 8

struct stream_pool {
	struct stream_pool *older;    /* retired pools, still lending */
	uint8_t *mem;
	void *free_list;
	size_t slot;
	uint32_t count;
	uint32_t in_use;
};

struct stream_hdr {
	struct stream_pool *pool;
	uint64_t magic;
};

struct mry_scanner {
	const struct mry_alloc *a;
	struct mry_pool *msg_pool;
	struct stream_pool *streams;  /* current; ->older retired ones */
	uint32_t max_streams;
	hs_scratch_t *scratch;
	uint64_t lineage;             /* scratch handed over at this lineage (sigdb_priv.h) */
	bool grown;                   /* grown here once: it fits more than a lineage says */
	uint64_t prepared[PREPARED_MAX];   /* gen uids the scratch fits */
	uint32_t prepared_next;
	struct mry_scan_stats st;
};

/*
 * A decoded part reaches the scanner line by line where MIME handles lines
 * one at a time (a text line, then its held-back line end: 60 bytes, then
 * 2), and Hyperscan's per-call cost dwarfs such pieces. Pieces are gathered
 * up to PART_PEND bytes and scanned in one call: the stream sees the same
 * bytes in the same order, so matches are the same; they are reported at
 * the next flush, which part_end and msg_end do first.
 */
#define PART_PEND 512

struct mry_scan_msg {
	struct mry_scanner *s;
	struct mry_sigdb_gen *gen;
	hs_database_t *db[MRY_SLOT_MAX];
	hs_stream_t *raw;
	hs_stream_t *hdr;
	hs_stream_t *part;
	bool part_open;
	struct mry_scan_result res;
	uint32_t pend_len;
	/* not zeroed by the pool: small decoded pieces gathered for one call */
	uint8_t pend[PART_PEND];
};

static _Thread_local struct mry_scanner *tls_scanner;

/* ---- stream state allocator ------------------------------------------ */

static void *stream_alloc(size_t size)
{
	struct mry_scanner *s = tls_scanner;
	struct stream_pool *p;
	struct stream_hdr *h;

	if (s == NULL) {
		/* not one of ours (another Hyperscan user in this process) */
		h = malloc(size + STREAM_HDR);
		if (h == NULL)
			return NULL;
		h->pool = NULL;
		h->magic = STREAM_MAGIC_HEAP;
		return (uint8_t *)h + STREAM_HDR;
	}
	p = s->streams;
	if (p == NULL || p->free_list == NULL || size + STREAM_HDR > p->slot)
		return NULL;    /* counted by the caller as stream_pool_empty */
	h = p->free_list;
	p->free_list = *(void **)h;
	p->in_use++;
	h->pool = p;
	h->magic = STREAM_MAGIC_POOL;
	return (uint8_t *)h + STREAM_HDR;
}

static void stream_free(void *ptr)
{
	struct stream_hdr *h;
	struct stream_pool *p;

	if (ptr == NULL)
		return;
	h = (struct stream_hdr *)((uint8_t *)ptr - STREAM_HDR);
	if (h->magic == STREAM_MAGIC_HEAP) {
		h->magic = 0;
		free(h);
		return;
	}
	MRY_ASSERT(h->magic == STREAM_MAGIC_POOL);
	p = h->pool;
	h->magic = 0;
	*(void **)h = p->free_list;
	p->free_list = h;
	p->in_use--;
}

/*
 * Scratch comes from the worker's allocator too (its NUMA-local arena in
 * the app, STYLE.md §5). The hook is global like the stream one; a 64-byte
 * header remembers which allocator to give it back to, and keeps the
 * scratch cache-line aligned. Outside a scanner (compiler, bench) it falls
 * back to the heap.
 */
#define SCRATCH_HDR 64u

struct scratch_hdr {
	const struct mry_alloc *a;
	uint64_t magic;
};

static void *scratch_alloc(size_t size)
{
	struct mry_scanner *s = tls_scanner;
	struct scratch_hdr *h;
	void *base = NULL;

	if (s != NULL)
		base = mry_zalloc_aligned(s->a, size + SCRATCH_HDR, MRY_CACHE_LINE);
	else if (posix_memalign(&base, MRY_CACHE_LINE, size + SCRATCH_HDR) != 0)
		base = NULL;
	if (base == NULL)
		return NULL;
	h = base;
	h->a = s != NULL ? s->a : NULL;
	h->magic = STREAM_MAGIC_HEAP;
	return (uint8_t *)base + SCRATCH_HDR;
}

static void scratch_free(void *ptr)
{
	struct scratch_hdr *h;

	if (ptr == NULL)
		return;
	h = (struct scratch_hdr *)((uint8_t *)ptr - SCRATCH_HDR);
	MRY_ASSERT(h->magic == STREAM_MAGIC_HEAP);
	h->magic = 0;
	if (h->a != NULL)
		mry_free(h->a, h);
	else
		free(h);
}

static pthread_once_t hook_once = PTHREAD_ONCE_INIT;

static void install_hook(void)
{
	hs_set_stream_allocator(stream_alloc, stream_free);
	hs_set_scratch_allocator(scratch_alloc, scratch_free);
}

/*
 * The hooks must be in place before Hyperscan allocates any stream or
 * scratch in this process: a block allocated by plain malloc() before and
 * freed through the hook after would be read as if it had our header. So
 * they are installed when the program loads (any program that links this
 * file), not when the first scanner is created.
 */
__attribute__((constructor)) static void install_hook_at_load(void)
{
	pthread_once(&hook_once, install_hook);
}

static struct stream_pool *pool_create(const struct mry_alloc *a, size_t slot,
				       uint32_t count)
{
	struct stream_pool *p = mry_zalloc(a, sizeof(*p));

	if (p == NULL)
		return NULL;
	slot = (slot + 15u) & ~(size_t)15u;
	p->mem = mry_zalloc_aligned(a, slot * count, MRY_CACHE_LINE);
	if (p->mem == NULL) {
		mry_free(a, p);
		return NULL;
	}
	p->slot = slot;
	p->count = count;
	for (uint32_t i = count; i > 0; i--) {
		void **o = (void **)(p->mem + (size_t)(i - 1) * slot);

		*o = p->free_list;
		p->free_list = o;
	}
	return p;
}

static void pool_destroy(const struct mry_alloc *a, struct stream_pool *p)
{
	mry_free(a, p->mem);
	mry_free(a, p);
}

/* free retired pools nobody borrows from any more */
static void pools_reap(struct mry_scanner *s)
{
	struct stream_pool **pp = &s->streams->older;

	while (*pp != NULL) {
		struct stream_pool *p = *pp;

		if (p->in_use == 0) {
			*pp = p->older;
			pool_destroy(s->a, p);
		} else {
			pp = &p->older;
		}
	}
}

/* ---- scanner ------------------------------------------------------------ */

static struct mry_scanner *scanner_create(const struct mry_alloc *a, uint32_t max_msgs,
					  uint32_t max_streams)
{
	struct mry_scanner *s;

	if (max_msgs == 0 || max_streams == 0) {
		mry_log(MRY_LOG_ERR, "scan", "scanner: max_msgs %u max_streams %u invalid",
			max_msgs, max_streams);
		return NULL;
	}
	pthread_once(&hook_once, install_hook);
	s = mry_zalloc(a, sizeof(*s));
	if (s == NULL)
		goto fail;
	s->a = a;
	s->max_streams = max_streams;
	s->msg_pool = mry_pool_create_ex(a, "scan_msg", sizeof(struct mry_scan_msg), max_msgs,
					 offsetof(struct mry_scan_msg, pend));
	/* 64 bytes per state until a generation says more (prepare) */
	s->streams = pool_create(a, 64, max_streams);
	if (s->msg_pool == NULL || s->streams == NULL)
		goto fail;
	return s;
fail:
	mry_log(MRY_LOG_ERR, "scan", "scanner: cannot allocate %u messages", max_msgs);
	mry_scanner_destroy(s);
	return NULL;
}

struct mry_scanner *mry_scanner_create(const struct mry_alloc *a, uint32_t max_msgs)
{
	return scanner_create(a, max_msgs, max_msgs * 3u);
}

struct mry_scanner *mry_scanner_create_ex(const struct mry_alloc *a, uint32_t max_msgs,
					  uint32_t max_streams)
{
	return scanner_create(a, max_msgs, max_streams);
}

void mry_scanner_destroy(struct mry_scanner *s)
{
	struct stream_pool *p, *n;

	if (s == NULL)
		return;
	for (p = s->streams; p != NULL; p = n) {
		n = p->older;
		pool_destroy(s->a, p);
	}
	mry_pool_destroy(s->msg_pool);
	hs_free_scratch(s->scratch);
	mry_free(s->a, s);
}

static bool is_prepared(const struct mry_scanner *s, uint64_t uid)
{
	for (uint32_t i = 0; i < PREPARED_MAX; i++)
		if (s->prepared[i] == uid)
			return true;
	return false;
}

/*
 * The scratch for @g. A generation published by a controller brings one
 * per worker, made on the control side (sigdb.c, gen_prepare_scratch):
 * taking it costs an atomic add; the old scratch goes back into @g. Only
 * when none is left (more scanners than the controller's nb_scratch) or
 * @g was loaded without a controller does the worker grow its own with
 * hs_alloc_scratch(), which checks the database's CRC (0.3 ms a slot for
 * the default database) and may allocate. Once grown here, the scratch may
 * fit a generation no lineage covers, so it is never swapped again.
 */
static int scratch_fit(struct mry_scanner *s, struct mry_sigdb_gen *g)
{
	uint64_t lin = mry_sigdb_gen_lineage(g);
	hs_scratch_t *sc;
	uint32_t slot;

	if (lin != 0 && !s->grown) {
		if (lin <= s->lineage)
			return 0;   /* the one held was cloned after @g's and fits it */
		sc = mry_sigdb_gen_scratch_take(g, &slot);
		if (sc != NULL) {
			mry_sigdb_gen_scratch_give(g, slot, s->scratch);
			s->scratch = sc;
			s->lineage = lin;
			s->st.scratch_handed++;
			return 0;
		}
	}
	if (lin != 0)
		mry_log(MRY_LOG_WARNING, "scan", "gen %llu: no scratch left for this worker "
			"(more scanners than the controller's nb_scratch): allocating one here",
			(unsigned long long)mry_sigdb_gen_number(g));
	s->st.scratch_grown++;
	s->grown = true;
	for (int k = 0; k < MRY_SLOT_MAX; k++) {
		const hs_database_t *db = mry_sigdb_gen_hs_db(g, (enum mry_sigdb_slot)k);

		/* grows the one scratch to fit every database it has seen, as
		 * Hyperscan's pcapscan does for its two databases */
		if (db != NULL && hs_alloc_scratch(db, &s->scratch) != HS_SUCCESS) {
			s->st.scratch_errors++;
			mry_log(MRY_LOG_ERR, "scan", "gen %llu: cannot allocate scratch",
				(unsigned long long)mry_sigdb_gen_number(g));
			return -ENOMEM;
		}
	}
	return 0;
}

int mry_scanner_prepare(struct mry_scanner *s, struct mry_sigdb_gen *g)
{
	struct mry_scanner *prev;
	size_t need = 0;
	int rc = 0;

	if (is_prepared(s, mry_sigdb_gen_uid(g)))
		return 0;
	prev = tls_scanner;
	tls_scanner = s;    /* scratch_alloc() takes this worker's allocator */
	rc = scratch_fit(s, g);
	if (rc != 0)
		goto out;
	for (int k = 0; k < MRY_SLOT_MAX; k++)
		need = MRY_MAX(need, mry_sigdb_gen_stream_size(g, (enum mry_sigdb_slot)k));
	need += STREAM_HDR;
	if (need > s->streams->slot) {
		struct stream_pool *p = pool_create(s->a, need, s->max_streams);

		if (p == NULL) {
			mry_log(MRY_LOG_ERR, "scan", "gen %llu: cannot allocate %u x %zu stream states",
				(unsigned long long)mry_sigdb_gen_number(g), s->max_streams, need);
			rc = -ENOMEM;
			goto out;
		}
		p->older = s->streams;
		s->streams = p;
	}
	pools_reap(s);
	s->prepared[s->prepared_next] = mry_sigdb_gen_uid(g);
	s->prepared_next = (s->prepared_next + 1) % PREPARED_MAX;
out:
	tls_scanner = prev;
	return rc;
}

/* ---- messages ------------------------------------------------------------ */

static void record(struct mry_scan_msg *m, const struct mry_sig_meta *meta)
{
	struct mry_scan_result *r = &m->res;
	uint32_t i, slot;

	for (i = 0; i < r->nb_sigs; i++)
		if (r->sig_ids[i] == meta->id)
			return;
	r->nb_sigs_total++;
	if (meta->action > r->action)
		r->action = (enum mry_sig_action)meta->action;
	if (r->nb_sigs < MRY_SCAN_MAX_SIGS) {
		slot = r->nb_sigs++;
	} else {
		/* full: keep the most severe ones */
		slot = 0;
		for (i = 1; i < MRY_SCAN_MAX_SIGS; i++)
			if (r->sig_actions[i] < r->sig_actions[slot])
				slot = i;
		if (r->sig_actions[slot] >= meta->action)
			return;
	}
	r->sig_ids[slot] = meta->id;
	r->sig_actions[slot] = meta->action;
	snprintf(r->sig_names[slot], MRY_SCAN_NAME_MAX, "%s", meta->name);
}

static int on_match(unsigned int id, unsigned long long from, unsigned long long to,
		    unsigned int flags, void *ctx)
{
	struct mry_scan_msg *m = ctx;
	const struct mry_sig_meta *meta;

	(void)from;
	(void)to;
	(void)flags;
	m->s->st.matches++;
	meta = mry_sigdb_gen_sig(m->gen, id);
	if (meta != NULL)
		record(m, meta);
	/* 0: keep scanning. Every expression is HS_FLAG_SINGLEMATCH, so this
	 * runs at most once per signature per stream anyway. */
	return 0;
}

static void close_stream(struct mry_scan_msg *m, hs_stream_t **st)
{
	hs_error_t rc;

	if (*st == NULL)
		return;
	/* closing reports matches that need the end of data ($ anchors) */
	rc = hs_close_stream(*st, m->s->scratch, on_match, m);
	if (rc != HS_SUCCESS && rc != HS_SCAN_TERMINATED) {
		m->s->st.hs_errors++;
		m->res.scan_error = true;
	}
	*st = NULL;
}

static bool open_stream(struct mry_scan_msg *m, int slot, hs_stream_t **st)
{
	hs_error_t rc;

	*st = NULL;
	if (m->db[slot] == NULL)
		return true;
	rc = hs_open_stream(m->db[slot], 0, st);
	if (rc == HS_SUCCESS)
		return true;
	*st = NULL;
	if (rc == HS_NOMEM)
		m->s->st.stream_pool_empty++;
	else
		m->s->st.hs_errors++;
	return false;
}

static void release(struct mry_scan_msg *m)
{
	struct mry_scanner *s = m->s;

	mry_sigdb_gen_unref(m->gen);
	mry_pool_put(s->msg_pool, m);
}

struct mry_scan_msg *mry_scan_msg_begin(struct mry_scanner *s, struct mry_sigdb_gen *g)
{
	struct mry_scanner *prev;
	struct mry_scan_msg *m;
	bool ok;

	if (g == NULL)
		return NULL;
	if (!is_prepared(s, mry_sigdb_gen_uid(g))) {
		/* the worker did not call prepare for this generation: do it
		 * now, once, rather than scan with a scratch too small */
		s->st.prepare_lazy++;
		if (mry_scanner_prepare(s, g) != 0)
			return NULL;
	}
	m = mry_pool_get(s->msg_pool);
	if (m == NULL) {
		s->st.msg_pool_empty++;
		return NULL;
	}
	m->s = s;
	m->gen = g;
	for (int k = 0; k < MRY_SLOT_MAX; k++)
		m->db[k] = (hs_database_t *)(uintptr_t)mry_sigdb_gen_hs_db(g, (enum mry_sigdb_slot)k);
	prev = tls_scanner;
	tls_scanner = s;    /* stream_alloc() takes from this worker's pool */
	ok = open_stream(m, MRY_SLOT_RAW, &m->raw) && open_stream(m, MRY_SLOT_HEADERS, &m->hdr);
	tls_scanner = prev;
	if (!ok) {
		if (m->raw != NULL)
			hs_close_stream(m->raw, NULL, NULL, NULL);
		mry_pool_put(s->msg_pool, m);
		return NULL;
	}
	mry_sigdb_gen_ref(g);
	s->st.messages++;
	return m;
}

static void feed(struct mry_scan_msg *m, hs_stream_t *st, const uint8_t *data, size_t len)
{
	hs_error_t rc;

	if (st == NULL || len == 0)
		return;
	while (len > 0) {
		/* hs_scan_stream takes an unsigned int length */
		unsigned int n = len > 0x40000000u ? 0x40000000u : (unsigned int)len;

		rc = hs_scan_stream(st, (const char *)data, n, 0, m->s->scratch, on_match, m);
		if (rc != HS_SUCCESS && rc != HS_SCAN_TERMINATED) {
			m->s->st.hs_errors++;
			m->res.scan_error = true;
			return;
		}
		data += n;
		len -= n;
	}
}

void mry_scan_msg_raw(struct mry_scan_msg *m, const uint8_t *data, size_t len)
{
	m->s->st.bytes_raw += len;
	feed(m, m->raw, data, len);
}

void mry_scan_msg_headers(struct mry_scan_msg *m, const uint8_t *data, size_t len)
{
	m->s->st.bytes_headers += len;
	feed(m, m->hdr, data, len);
}

void mry_scan_msg_part_begin(struct mry_scan_msg *m)
{
	struct mry_scanner *prev;
	bool ok;

	if (m->part_open)
		mry_scan_msg_part_end(m);
	m->part_open = true;
	prev = tls_scanner;
	tls_scanner = m->s;
	ok = open_stream(m, MRY_SLOT_DECODED, &m->part);
	tls_scanner = prev;
	if (!ok)
		m->res.scan_error = true;   /* this part cannot be judged */
}

static void part_flush(struct mry_scan_msg *m)
{
	if (m->pend_len > 0) {
		feed(m, m->part, m->pend, m->pend_len);
		m->pend_len = 0;
	}
}

void mry_scan_msg_part_data(struct mry_scan_msg *m, const uint8_t *data, size_t len)
{
	m->s->st.bytes_decoded += len;
	if (!m->part_open) {
		/* data outside a part: treat as an implicit single part */
		mry_scan_msg_part_begin(m);
	}
	if (len <= PART_PEND - m->pend_len) {
		memcpy(m->pend + m->pend_len, data, len);
		m->pend_len += (uint32_t)len;
		return;
	}
	part_flush(m);
	if (len < PART_PEND / 2) {
		memcpy(m->pend, data, len);
		m->pend_len = (uint32_t)len;
		return;
	}
	feed(m, m->part, data, len);
}

void mry_scan_msg_part_end(struct mry_scan_msg *m)
{
	part_flush(m);
	close_stream(m, &m->part);
	m->part_open = false;
}

void mry_scan_msg_end(struct mry_scan_msg *m, struct mry_scan_result *res)
{
	part_flush(m);
	close_stream(m, &m->part);
	close_stream(m, &m->raw);
	close_stream(m, &m->hdr);
	m->res.generation = mry_sigdb_gen_number(m->gen);
	*res = m->res;
	release(m);
}

void mry_scan_msg_abort(struct mry_scan_msg *m)
{
	/* no scratch: nothing is reported, the state just goes back */
	if (m->part != NULL)
		hs_close_stream(m->part, NULL, NULL, NULL);
	if (m->raw != NULL)
		hs_close_stream(m->raw, NULL, NULL, NULL);
	if (m->hdr != NULL)
		hs_close_stream(m->hdr, NULL, NULL, NULL);
	release(m);
}

int mry_scan_buffer(struct mry_scanner *s, struct mry_sigdb_gen *g,
		    const uint8_t *data, size_t len, struct mry_scan_result *res)
{
	struct mry_scan_msg *m = mry_scan_msg_begin(s, g);

	if (m == NULL) {
		memset(res, 0, sizeof(*res));
		res->scan_error = true;
		return g == NULL ? -EINVAL : -ENOBUFS;
	}
	mry_scan_msg_raw(m, data, len);
	mry_scan_msg_end(m, res);
	return 0;
}

void mry_scan_get_stats(const struct mry_scanner *s, struct mry_scan_stats *st)
{
	*st = s->st;
}

size_t mry_scanner_scratch_size(const struct mry_scanner *s)
{
	size_t n = 0;

	if (s->scratch != NULL)
		hs_scratch_size(s->scratch, &n);
	return n;
}
