/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * jemalloc-backed allocators. The default one serves the control path; an
 * arena allocator gives a worker NUMA-local memory that never contends with
 * the database loader (jemalloc TUNING.md, "Explicit arenas").
 */
#include <errno.h>
#include <string.h>

#include <jemalloc/jemalloc.h>

#include "moray/common.h"

static void *je_alloc(void *ctx, size_t size, size_t align)
{
	int flags = MALLOCX_ZERO;

	if (size == 0)
		size = 1;
	if (align > 1)
		flags |= MALLOCX_ALIGN(align);
	if (ctx != NULL)
		flags |= MALLOCX_ARENA((unsigned)(uintptr_t)ctx - 1) |
			 MALLOCX_TCACHE_NONE;
	return mallocx(size, flags);
}

static void je_free(void *ctx, void *p)
{
	int flags = 0;

	if (p == NULL)
		return;
	if (ctx != NULL)
		flags = MALLOCX_TCACHE_NONE;
	dallocx(p, flags);
}

static const struct mry_alloc default_alloc = {
	.alloc = je_alloc,
	.free = je_free,
	.ctx = NULL,
	.socket = -1,
};

const struct mry_alloc *mry_alloc_default(void)
{
	return &default_alloc;
}

int mry_alloc_arena_init(struct mry_alloc *a)
{
	unsigned arena = 0;
	size_t sz = sizeof(arena);

	if (mallctl("arenas.create", &arena, &sz, NULL, 0) != 0) {
		mry_log(MRY_LOG_ERR, "alloc", "jemalloc arenas.create failed");
		return -ENOMEM;
	}
	a->alloc = je_alloc;
	a->free = je_free;
	/* arena index + 1 so that ctx NULL keeps meaning "default arena" */
	a->ctx = (void *)(uintptr_t)(arena + 1);
	a->socket = -1;
	return 0;
}
