/* SPDX-License-Identifier: BSD-3-Clause */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "moray/common.h"

Test(pool, gives_every_object_then_counts_empty)
{
	struct mry_pool *p = mry_pool_create(mry_alloc_default(), "t", 24, 3);
	struct mry_pool_stats st;
	void *o[3];

	cr_assert_not_null(p);
	for (int i = 0; i < 3; i++) {
		o[i] = mry_pool_get(p);
		cr_assert_not_null(o[i]);
	}
	cr_assert_null(mry_pool_get(p));
	mry_pool_get_stats(p, &st);
	cr_assert(eq(u64, st.empty, 1));
	cr_assert(eq(u32, st.in_use, 3));
	for (int i = 0; i < 3; i++)
		mry_pool_put(p, o[i]);
	mry_pool_get_stats(p, &st);
	cr_assert(eq(u32, st.in_use, 0));
	mry_pool_destroy(p);
}

Test(pool, objects_are_zeroed_and_distinct)
{
	struct mry_pool *p = mry_pool_create(mry_alloc_default(), "t", 40, 2);
	uint8_t *a = mry_pool_get(p), *b = mry_pool_get(p);

	cr_assert(ne(ptr, a, b));
	memset(a, 0xff, 40);
	mry_pool_put(p, a);
	a = mry_pool_get(p);
	for (int i = 0; i < 40; i++)
		cr_assert(eq(u8, a[i], 0));
	mry_pool_put(p, a);
	mry_pool_put(p, b);
	mry_pool_destroy(p);
}

Test(pool, debug_fail_every_reaches_empty_path)
{
	struct mry_pool *p = mry_pool_create(mry_alloc_default(), "t", 8, 10);
	struct mry_pool_stats st;

	mry_pool_debug_fail_every(p, 2);
	void *a = mry_pool_get(p);
	void *b = mry_pool_get(p);
	cr_assert_not_null(a);
	cr_assert_null(b);
	mry_pool_get_stats(p, &st);
	cr_assert(eq(u64, st.empty, 1));
	mry_pool_put(p, a);
	mry_pool_destroy(p);
}

Test(pool, refuses_zero_sizes)
{
	cr_assert_null(mry_pool_create(mry_alloc_default(), "t", 0, 3));
	cr_assert_null(mry_pool_create(mry_alloc_default(), "t", 8, 0));
}

Test(common, seq_compare_wraps)
{
	cr_assert(mry_seq_lt(0xfffffff0u, 0x10u));
	cr_assert(mry_seq_gt(0x10u, 0xfffffff0u));
	cr_assert(mry_seq_le(5, 5));
	cr_assert_not(mry_seq_lt(5, 5));
}

Test(common, ratelimit_first_then_interval)
{
	struct mry_ratelimit rl = { 0 };
	uint64_t sup = 99;

	cr_assert(mry_ratelimit_ok(&rl, 100, 1000, &sup));
	cr_assert(eq(u64, sup, 0));
	cr_assert_not(mry_ratelimit_ok(&rl, 200, 1000, &sup));
	cr_assert_not(mry_ratelimit_ok(&rl, 300, 1000, &sup));
	cr_assert(mry_ratelimit_ok(&rl, 1200, 1000, &sup));
	cr_assert(eq(u64, sup, 2));
}
