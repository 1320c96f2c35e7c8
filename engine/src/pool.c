/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fixed-size object pools: one allocation at creation, an intrusive LIFO
 * free list (the most recently freed object is the one most likely still in
 * cache). Running dry is counted and answered by the caller's policy, never
 * by malloc(). In debug builds freed objects are poisoned, after HAProxy's
 * POOL_DBG_POISON.
 */
#include <stdio.h>
#include <string.h>

#include "moray/common.h"

#define POOL_POISON 0x5a

struct pool_free {
	struct pool_free *next;
};

struct mry_pool {
	const struct mry_alloc *alloc;
	char name[32];
	uint8_t *mem;
	struct pool_free *free_list;
	uint32_t fresh;                 /* objects never handed out start here */
	size_t obj_size;
	size_t zero_len;                /* bytes get() zeroes (and debug builds poison) */
	uint32_t count;
	uint32_t fail_every;
	uint32_t fail_tick;
	struct mry_pool_stats st;
};

static _Thread_local struct mry_pool_registry *registry;

void mry_pool_registry_set(struct mry_pool_registry *r)
{
	registry = r;
}

const char *mry_pool_name(const struct mry_pool *p)
{
	return p->name;
}

size_t mry_pool_obj_bytes(const struct mry_pool *p)
{
	return p->obj_size;
}

uint32_t mry_pool_count(const struct mry_pool *p)
{
	return p->count;
}

struct mry_pool *mry_pool_create(const struct mry_alloc *a, const char *name,
				 size_t obj_size, uint32_t count)
{
	return mry_pool_create_ex(a, name, obj_size, count, SIZE_MAX);
}

struct mry_pool *mry_pool_create_ex(const struct mry_alloc *a, const char *name,
				    size_t obj_size, uint32_t count, size_t zero_len)
{
	struct mry_pool *p;

	if (obj_size == 0 || count == 0) {
		mry_log(MRY_LOG_ERR, "pool", "pool %s: size %zu count %u invalid",
			name, obj_size, count);
		return NULL;
	}
	/* round to 16 bytes so objects are aligned for any member */
	obj_size = (obj_size + 15u) & ~(size_t)15u;
	if (obj_size < sizeof(struct pool_free))
		obj_size = sizeof(struct pool_free);
	p = mry_zalloc(a, sizeof(*p));
	if (p == NULL)
		goto fail;
	p->mem = mry_zalloc_aligned(a, obj_size * count, MRY_CACHE_LINE);
	if (p->mem == NULL)
		goto fail;
	p->alloc = a;
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->obj_size = obj_size;
	p->zero_len = zero_len < obj_size ? zero_len : obj_size;
	p->count = count;
	/*
	 * Objects are handed out from the untouched tail first and only then
	 * recycled through the free list: creating a large pool (hold store,
	 * segment buffers) touches none of its pages, so start-up is cheap and
	 * memory is committed as the load actually needs it.
	 */
	p->fresh = 0;
	p->st.capacity = count;
	p->st.obj_size = (uint32_t)obj_size;
	if (registry != NULL && registry->nb < MRY_POOL_REGISTRY_MAX)
		registry->pool[registry->nb++] = p;
	return p;
fail:
	mry_log(MRY_LOG_ERR, "pool", "pool %s: cannot allocate %u x %zu bytes",
		name, count, obj_size);
	if (p != NULL)
		mry_free(a, p);
	return NULL;
}

void mry_pool_destroy(struct mry_pool *p)
{
	if (p == NULL)
		return;
	mry_free(p->alloc, p->mem);
	mry_free(p->alloc, p);
}

void *mry_pool_get(struct mry_pool *p)
{
	struct pool_free *f = p->free_list;

	if (mry_unlikely(p->fail_every != 0) && ++p->fail_tick % p->fail_every == 0) {
		p->st.empty++;
		return NULL;
	}
	if (f != NULL) {
		p->free_list = f->next;
	} else if (p->fresh < p->count) {
		f = (struct pool_free *)(p->mem + (size_t)p->fresh * p->obj_size);
		p->fresh++;
	} else {
		p->st.empty++;
		return NULL;
	}
	p->st.gets++;
	p->st.in_use++;
	memset(f, 0, p->zero_len);
	return f;
}

void mry_pool_put(struct mry_pool *p, void *obj)
{
	struct pool_free *f = obj;

	if (obj == NULL)
		return;
	MRY_ASSERT((uint8_t *)obj >= p->mem &&
		   (uint8_t *)obj < p->mem + p->obj_size * p->count);
	MRY_ASSERT(p->st.in_use > 0);
#ifdef MRY_DEBUG_ASSERTS
	/* the part get() resets: a stale pointer reads poison, not old state */
	memset(obj, POOL_POISON, p->zero_len);
#endif
	f->next = p->free_list;
	p->free_list = f;
	p->st.puts++;
	p->st.in_use--;
}

void mry_pool_get_stats(const struct mry_pool *p, struct mry_pool_stats *st)
{
	*st = p->st;
}

void mry_pool_debug_fail_every(struct mry_pool *p, uint32_t nth)
{
	p->fail_every = nth;
	p->fail_tick = 0;
}
