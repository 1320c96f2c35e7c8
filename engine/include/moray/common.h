/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Shared by every engine module: compiler helpers, the allocator the host
 * hands in (STYLE.md §5), the log hook (§7), fixed-size object pools, and
 * wrap-safe TCP sequence comparisons.
 */
#ifndef MORAY_COMMON_H
#define MORAY_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MRY_CACHE_LINE 64
#define MRY_CACHE_ALIGNED __attribute__((aligned(MRY_CACHE_LINE)))
#define MRY_COLD __attribute__((cold, noinline))
#define MRY_UNUSED __attribute__((unused))
#define mry_likely(x) __builtin_expect(!!(x), 1)
#define mry_unlikely(x) __builtin_expect(!!(x), 0)
#define MRY_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MRY_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MRY_MAX(a, b) ((a) > (b) ? (a) : (b))

#define MRY_NS_PER_SEC 1000000000ULL
#define MRY_NS_PER_MS 1000000ULL

/* Programmer invariants only; nothing input can reach relies on this. */
#ifdef MRY_DEBUG_ASSERTS
#include <stdio.h>
#include <stdlib.h>
#define MRY_ASSERT(c) do { \
	if (!(c)) { \
		fprintf(stderr, "MRY_ASSERT %s failed at %s:%d\n", #c, \
			__FILE__, __LINE__); \
		abort(); \
	} \
} while (0)
#else
#define MRY_ASSERT(c) do { (void)sizeof(c); } while (0)
#endif

/* ---- TCP sequence arithmetic (RFC 9293 §3.4), never compare with < ---- */
static inline bool mry_seq_lt(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }
static inline bool mry_seq_le(uint32_t a, uint32_t b) { return (int32_t)(a - b) <= 0; }
static inline bool mry_seq_gt(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }
static inline bool mry_seq_ge(uint32_t a, uint32_t b) { return (int32_t)(a - b) >= 0; }

/* Value of one hexadecimal digit, -1 if @c is not one. */
static inline int mry_hex_val(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* ---- allocator -------------------------------------------------------- */

/**
 * Allocator handed to every *_create(). The app backs it with
 * rte_malloc_socket(), tests and tools with jemalloc (mry_alloc_default()).
 * alloc() returns zeroed memory aligned to @align (a power of two, or 0 for
 * the default), or NULL.
 */
struct mry_alloc {
	void *(*alloc)(void *ctx, size_t size, size_t align);
	void (*free)(void *ctx, void *p);
	void *ctx;
	int socket;
};

/** jemalloc-backed allocator; the process-wide default. */
const struct mry_alloc *mry_alloc_default(void);

/**
 * jemalloc allocator bound to a private arena, for per-worker allocations
 * (scratch, stream pools) that must not contend with the control path.
 * Returns 0 or -ENOMEM.
 */
int mry_alloc_arena_init(struct mry_alloc *a);

static inline void *mry_zalloc(const struct mry_alloc *a, size_t size)
{
	return a->alloc(a->ctx, size, 0);
}

static inline void *mry_zalloc_aligned(const struct mry_alloc *a, size_t size,
				       size_t align)
{
	return a->alloc(a->ctx, size, align);
}

static inline void mry_free(const struct mry_alloc *a, void *p)
{
	if (p != NULL)
		a->free(a->ctx, p);
}

/* ---- logging ---------------------------------------------------------- */

enum mry_log_level {
	MRY_LOG_ERR = 0,
	MRY_LOG_WARNING,
	MRY_LOG_INFO,
	MRY_LOG_DEBUG,
};

typedef void (*mry_log_fn)(enum mry_log_level level, const char *module,
			   const char *msg, void *ctx);

/** Install the host's log sink (default: stderr, levels <= INFO). */
void mry_log_set_handler(mry_log_fn fn, void *ctx);
/** Messages above @level are dropped before formatting. */
void mry_log_set_level(enum mry_log_level level);

void mry_log(enum mry_log_level level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Rate limit for "limit hit" log lines (STYLE.md §7): the first hit logs,
 * then at most one line per interval, carrying the count since.
 */
struct mry_ratelimit {
	uint64_t last_ns;
	uint64_t suppressed;
	bool started;
};

/**
 * Returns true when a line may be written now; *suppressed receives how many
 * hits were swallowed since the last line.
 */
bool mry_ratelimit_ok(struct mry_ratelimit *rl, uint64_t now_ns,
		      uint64_t interval_ns, uint64_t *suppressed);

/* ---- fixed-size object pool ------------------------------------------ */

/*
 * A pool of @count objects of @obj_size bytes allocated once at creation.
 * get() is O(1), never allocates, returns NULL when empty (and counts it).
 * Single-threaded: each worker owns its pools.
 */
struct mry_pool;

struct mry_pool_stats {
	uint64_t gets;
	uint64_t puts;
	uint64_t empty;      /* get() found the pool empty */
	uint32_t in_use;
	uint32_t capacity;
	uint32_t obj_size;
};

/**
 * @return the pool, or NULL (logged) when @count or @obj_size is 0 or memory
 * is short.
 */
struct mry_pool *mry_pool_create(const struct mry_alloc *a, const char *name,
				 size_t obj_size, uint32_t count);
/**
 * As mry_pool_create(), but get() zeroes only the first @zero_len bytes of
 * an object (0: none): for objects that are a small header followed by a
 * buffer the owner fills before reading (segments, lines, hold chunks),
 * zeroing kilobytes per get would cost more than the work itself.
 */
struct mry_pool *mry_pool_create_ex(const struct mry_alloc *a, const char *name,
				    size_t obj_size, uint32_t count, size_t zero_len);
void mry_pool_destroy(struct mry_pool *p);
/** Object with its zeroed prefix (all of it by default), or NULL when empty. Fast-path safe. */
void *mry_pool_get(struct mry_pool *p);
/** Return @obj (from this pool; NULL ignored). Fast-path safe. */
void mry_pool_put(struct mry_pool *p, void *obj);
void mry_pool_get_stats(const struct mry_pool *p, struct mry_pool_stats *st);
/* Pools created on this thread while a registry is set are listed in it
 * (the engine collects its modules' pools for its start-up report). */
#define MRY_POOL_REGISTRY_MAX 32
struct mry_pool_registry {
	const struct mry_pool *pool[MRY_POOL_REGISTRY_MAX];
	unsigned nb;
};
/** Start (@r) or stop (NULL) listing the pools this thread creates. */
void mry_pool_registry_set(struct mry_pool_registry *r);
/** Name and object size with overhead (what one object costs). */
const char *mry_pool_name(const struct mry_pool *p);
size_t mry_pool_obj_bytes(const struct mry_pool *p);
uint32_t mry_pool_count(const struct mry_pool *p);

/** Debug: fail every @nth get() (0 = off), to reach "pool empty" paths. */
void mry_pool_debug_fail_every(struct mry_pool *p, uint32_t nth);

/* ---- option values (parse.c), shared by moray and the tools ------------- */

/**
 * A decimal (or 0x hexadecimal, never octal) number in [@min, @max]; with @size_suffix a
 * single k/M/G (binary) multiplier may follow. 0, -EINVAL (not a number,
 * junk after it) or -ERANGE.
 */
int mry_parse_u64(const char *s, uint64_t min, uint64_t max, bool size_suffix, uint64_t *out);
/**
 * "25,587, 2525": TCP ports 1-65535, spaces around commas allowed, at most
 * @cap of them. Returns how many, or -EINVAL (bad or empty) / -E2BIG.
 */
int mry_parse_port_list(const char *s, uint16_t *ports, unsigned cap);

/* ---- CPU features (cpu.c) ---------------------------------------------- */

/**
 * True when the AVX2 kernels run: the CPU has AVX2, MORAY_FORCE_SCALAR=1 was
 * not in the environment at the first call, and not forced off below.
 */
bool mry_cpu_avx2(void);
/**
 * For tests and benchmarks: @on limits every kernel to the x86-64 baseline
 * (process-wide; results are the same either way). Returns mry_cpu_avx2().
 */
bool mry_cpu_force_baseline(bool on);

#endif /* MORAY_COMMON_H */
