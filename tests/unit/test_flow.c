/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "moray/flow.h"

#define SEC MRY_NS_PER_SEC
#define MAX_ENDS 256

struct end_rec {
	struct mry_flow *f[MAX_ENDS];
	uint16_t port[MAX_ENDS][2];
	enum mry_flow_end_reason why[MAX_ENDS];
	enum mry_flow_evict_class cls[MAX_ENDS];
	unsigned n;
};

static struct end_rec ends;
static struct mry_flow_table *cur_tbl;   /* the table mk_table() made */

static void on_end(void *ctx, struct mry_flow *f, enum mry_flow_end_reason why)
{
	struct end_rec *r = ctx;

	if (r->n >= MAX_ENDS) {   /* big tables: only the count matters */
		r->n++;
		return;
	}
	r->f[r->n] = f;
	r->port[r->n][0] = f->key.port[0];
	r->port[r->n][1] = f->key.port[1];
	r->why[r->n] = why;
	r->cls[r->n] = why == MRY_FLOW_END_EVICTED ? mry_flow_evict_class(cur_tbl)
						   : MRY_FLOW_EVICT_MAX;
	r->n++;
}

/*
 * Timeouts chosen so the wheel tick (shortest / 8) is exactly 1 s. No
 * per-source cap, no half-open budget, no minimum data rate, no emergency
 * mode unless a test sets one.
 */
static struct mry_flow_config test_cfg(uint32_t max_flows)
{
	struct mry_flow_config c = {
		.max_flows = max_flows,
		.max_half_open = max_flows,
		.timeout_ns = {
			[MRY_FLOW_PHASE_HALF_OPEN] = 10 * SEC,
			[MRY_FLOW_PHASE_GREETING] = 20 * SEC,
			[MRY_FLOW_PHASE_CMD] = 40 * SEC,
			[MRY_FLOW_PHASE_DATA_INIT] = 30 * SEC,
			[MRY_FLOW_PHASE_DATA] = 80 * SEC,
			[MRY_FLOW_PHASE_DATA_END] = 60 * SEC,
			[MRY_FLOW_PHASE_CLOSING] = 8 * SEC,
		},
		.emergency_high_pct = 101,
	};
	return c;
}

static struct mry_flow_table *mk_table(const struct mry_flow_config *c)
{
	struct mry_flow_table *t;

	memset(&ends, 0, sizeof(ends));
	t = mry_flow_table_create(mry_alloc_default(), c, on_end, &ends);
	cr_assert_not_null(t);
	cur_tbl = t;
	return t;
}

static struct mry_pkt pkt4(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport)
{
	struct mry_pkt p;

	memset(&p, 0, sizeof(p));
	p.ip_version = 4;
	p.src[0] = (uint8_t)(src >> 24);
	p.src[1] = (uint8_t)(src >> 16);
	p.src[2] = (uint8_t)(src >> 8);
	p.src[3] = (uint8_t)src;
	p.dst[0] = (uint8_t)(dst >> 24);
	p.dst[1] = (uint8_t)(dst >> 16);
	p.dst[2] = (uint8_t)(dst >> 8);
	p.dst[3] = (uint8_t)dst;
	p.sport = sport;
	p.dport = dport;
	return p;
}

static struct mry_pkt pkt6(uint8_t src_last, uint16_t sport, uint8_t dst_last, uint16_t dport)
{
	struct mry_pkt p;

	memset(&p, 0, sizeof(p));
	p.ip_version = 6;
	p.src[0] = 0x20;
	p.src[1] = 0x01;
	p.src[15] = src_last;
	p.dst[0] = 0x20;
	p.dst[1] = 0x01;
	p.dst[15] = dst_last;
	p.sport = sport;
	p.dport = dport;
	return p;
}

#define CLIENT 0x0a000001u   /* 10.0.0.1 */
#define SERVER 0xc0a80001u   /* 192.168.0.1 */

/* flow of client port @cport to SERVER:25, created at @now */
static struct mry_flow *mk_flow(struct mry_flow_table *t, uint32_t client,
				uint16_t cport, uint64_t now)
{
	struct mry_pkt p = pkt4(client, cport, SERVER, 25);
	struct mry_flow_key k;
	uint8_t side;

	mry_flow_key_from_pkt(&p, &k, &side);
	return mry_flow_create(t, &k, mry_flow_key_hash(&k), now);
}

static struct mry_flow *find_flow(struct mry_flow_table *t, uint32_t client,
				  uint16_t cport)
{
	struct mry_pkt p = pkt4(client, cport, SERVER, 25);
	struct mry_flow_key k;

	mry_flow_key_from_pkt(&p, &k, NULL);
	return mry_flow_lookup(t, &k, mry_flow_key_hash(&k));
}

Test(flow, both_directions_give_one_key_and_opposite_sides)
{
	struct mry_pkt a = pkt4(SERVER, 25, CLIENT, 40000);
	struct mry_pkt b = pkt4(CLIENT, 40000, SERVER, 25);
	struct mry_flow_key ka, kb;
	uint8_t sa = 9, sb = 9;

	mry_flow_key_from_pkt(&a, &ka, &sa);
	mry_flow_key_from_pkt(&b, &kb, &sb);
	cr_assert(eq(int, memcmp(&ka, &kb, sizeof(ka)), 0));
	cr_assert(eq(u32, mry_flow_key_hash(&ka), mry_flow_key_hash(&kb)));
	/* 10.0.0.1 < 192.168.0.1: the client is side 0 */
	cr_assert(eq(u8, sb, 0));
	cr_assert(eq(u8, sa, 1));
	cr_assert(eq(u16, ka.port[0], 40000));
	cr_assert(eq(u16, ka.port[1], 25));
	cr_assert(eq(u8, ka.addr[0][0], 10));
}

Test(flow, same_address_orders_sides_by_port)
{
	struct mry_pkt a = pkt4(CLIENT, 2000, CLIENT, 1000);
	struct mry_flow_key k;
	uint8_t s;

	mry_flow_key_from_pkt(&a, &k, &s);
	cr_assert(eq(u8, s, 1));
	cr_assert(eq(u16, k.port[0], 1000));
}

/* the side order is the addresses' byte order (as memcmp), not the
 * order of the machine words they load into */
Test(flow, sides_follow_address_byte_order)
{
	static const struct { uint32_t a, b; } v4[] = {
		{ 0x00ff0000u, 0x01000000u },   /* 0.255.0.0 < 1.0.0.0 */
		{ 0x0a0000ffu, 0x0a000100u },   /* 10.0.0.255 < 10.0.1.0 */
		{ 0xc0000201u, 0xc0000202u },
	};
	struct mry_flow_key k;
	uint8_t s;

	for (size_t i = 0; i < MRY_ARRAY_SIZE(v4); i++) {
		struct mry_pkt p = pkt4(v4[i].b, 25, v4[i].a, 40000);

		mry_flow_key_from_pkt(&p, &k, &s);
		cr_assert(eq(u8, s, 1), "case %zu", i);
		p = pkt4(v4[i].a, 40000, v4[i].b, 25);
		mry_flow_key_from_pkt(&p, &k, &s);
		cr_assert(eq(u8, s, 0), "case %zu", i);
	}
	/* IPv6 addresses that differ only in their second half, and in the
	 * low byte of the first half against the high byte */
	struct mry_pkt p6 = pkt6(2, 25, 1, 40000);

	mry_flow_key_from_pkt(&p6, &k, &s);
	cr_assert(eq(u8, s, 1));
	p6.src[7] = 0x01;        /* byte 7 of the source ... */
	p6.dst[6] = 0x01;        /* ... byte 6 of the destination: the greater */
	mry_flow_key_from_pkt(&p6, &k, &s);
	cr_assert(eq(u8, s, 0));
}

Test(flow, ipv4_key_ignores_bytes_after_the_address)
{
	struct mry_pkt a = pkt4(CLIENT, 1, SERVER, 25);
	struct mry_pkt b = a;
	struct mry_flow_key ka, kb;

	b.src[10] = 0xee;   /* garbage a decoder might leave */
	b.dst[15] = 0x11;
	mry_flow_key_from_pkt(&a, &ka, NULL);
	mry_flow_key_from_pkt(&b, &kb, NULL);
	cr_assert(eq(int, memcmp(&ka, &kb, sizeof(ka)), 0));
}

Test(flow, lookup_from_either_direction_finds_the_flow_and_side)
{
	struct mry_flow_config c = test_cfg(16);
	struct mry_flow_table *t = mk_table(&c);
	struct mry_pkt fwd = pkt4(SERVER, 25, CLIENT, 5555);
	struct mry_pkt rev = pkt4(CLIENT, 5555, SERVER, 25);
	struct mry_flow_key k;
	struct mry_flow *f, *g;
	uint8_t s;

	mry_flow_key_from_pkt(&fwd, &k, &s);
	cr_assert(eq(u8, s, 1));
	f = mry_flow_create(t, &k, mry_flow_key_hash(&k), SEC);
	cr_assert_not_null(f);
	cr_assert(eq(u8, f->phase, MRY_FLOW_PHASE_HALF_OPEN));
	cr_assert(eq(u64, f->last_ns, SEC));
	mry_flow_key_from_pkt(&rev, &k, &s);
	cr_assert(eq(u8, s, 0));
	g = mry_flow_lookup(t, &k, mry_flow_key_hash(&k));
	cr_assert(eq(ptr, f, g));
	/* another client port is another flow */
	cr_assert_null(find_flow(t, CLIENT, 5556));
	mry_flow_table_destroy(t);
}

Test(flow, ipv6_flows_are_found_from_both_directions)
{
	struct mry_flow_config c = test_cfg(16);
	struct mry_flow_table *t = mk_table(&c);
	struct mry_pkt a = pkt6(0x99, 25, 0x01, 33000);
	struct mry_pkt b = pkt6(0x01, 33000, 0x99, 25);
	struct mry_pkt v4 = pkt4(0x20010000, 25, 0x20010000, 33000);
	struct mry_flow_key k;
	struct mry_flow *f;
	uint8_t s;

	mry_flow_key_from_pkt(&a, &k, &s);
	cr_assert(eq(u8, s, 1));
	cr_assert(eq(u8, k.ip_version, 6));
	f = mry_flow_create(t, &k, mry_flow_key_hash(&k), 0);
	cr_assert_not_null(f);
	mry_flow_key_from_pkt(&b, &k, &s);
	cr_assert(eq(u8, s, 0));
	cr_assert(eq(ptr, mry_flow_lookup(t, &k, mry_flow_key_hash(&k)), f));
	mry_flow_key_from_pkt(&v4, &k, &s);
	cr_assert_null(mry_flow_lookup(t, &k, mry_flow_key_hash(&k)));
	mry_flow_table_destroy(t);
}

Test(flow, full_table_survives_random_create_release_churn)
{
	struct mry_flow_config c = test_cfg(1000);
	struct mry_flow_table *t = mk_table(&c);
	static bool live[1000];
	struct mry_flow_stats st;
	uint32_t rnd = 12345, n_live = 0;

	memset(live, 0, sizeof(live));
	for (int round = 0; round < 20000; round++) {
		uint32_t i;

		rnd = rnd * 1103515245u + 12345u;
		i = (rnd >> 8) % 1000;
		if (live[i]) {
			struct mry_flow *f = find_flow(t, CLIENT + i, (uint16_t)(1000 + i));

			cr_assert_not_null(f, "flow %u lost", i);
			mry_flow_release(t, f);
			live[i] = false;
			n_live--;
		} else {
			cr_assert_null(find_flow(t, CLIENT + i, (uint16_t)(1000 + i)));
			cr_assert_not_null(mk_flow(t, CLIENT + i, (uint16_t)(1000 + i), 0));
			live[i] = true;
			n_live++;
		}
	}
	for (uint32_t i = 0; i < 1000; i++) {
		struct mry_flow *f = find_flow(t, CLIENT + i, (uint16_t)(1000 + i));

		cr_assert(eq(int, f != NULL, live[i]), "flow %u", i);
	}
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u32, st.active, n_live));
	cr_assert(eq(u64, st.evicted_pre_data + st.evicted_data + st.table_full, 0));
	cr_assert(eq(u64, st.created - st.closed, n_live));
	mry_flow_table_destroy(t);
	cr_assert(eq(u32, ends.n, n_live));
}

Test(flow, full_table_evicts_least_recently_active_pre_data_flow)
{
	struct mry_flow_config c = test_cfg(4);
	struct mry_flow_table *t = mk_table(&c);
	struct mry_flow *f[4];
	struct mry_flow_stats st;

	for (int i = 0; i < 4; i++)
		f[i] = mk_flow(t, CLIENT, (uint16_t)(100 + i), (uint64_t)i * SEC);
	/* flow 0 is the oldest but active again: flow 1 becomes the LRU */
	mry_flow_touch(t, f[0], 5 * SEC);
	mry_flow_set_phase(t, f[2], MRY_FLOW_PHASE_CMD, 6 * SEC);
	cr_assert_not_null(mk_flow(t, CLIENT, 200, 7 * SEC));
	cr_assert(eq(u32, ends.n, 1));
	cr_assert(eq(u16, ends.port[0][0], 101));
	cr_assert(eq(int, ends.why[0], MRY_FLOW_END_EVICTED));
	cr_assert_null(find_flow(t, CLIENT, 101));
	cr_assert_not_null(mk_flow(t, CLIENT, 201, 8 * SEC));
	cr_assert(eq(u16, ends.port[1][0], 103));
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u64, st.evicted_pre_data, 2));
	cr_assert(eq(u64, st.evicted_data, 0));
	cr_assert(eq(u32, st.active, 4));
	mry_flow_table_destroy(t);
}

Test(flow, data_flow_is_evicted_only_when_no_pre_data_flow_is_left)
{
	struct mry_flow_config c = test_cfg(3);
	struct mry_flow_table *t = mk_table(&c);
	struct mry_flow *d0, *d1, *p;
	struct mry_flow_stats st;

	d0 = mk_flow(t, CLIENT, 1, 0);
	d1 = mk_flow(t, CLIENT, 2, SEC);
	p = mk_flow(t, CLIENT, 3, 2 * SEC);
	mry_flow_set_phase(t, d0, MRY_FLOW_PHASE_DATA, 3 * SEC);
	mry_flow_set_phase(t, d1, MRY_FLOW_PHASE_DATA, 4 * SEC);
	/* the CLOSING flow is the most recent, still it goes before DATA ones */
	mry_flow_set_phase(t, p, MRY_FLOW_PHASE_CLOSING, 5 * SEC);
	cr_assert_not_null(mk_flow(t, CLIENT, 4, 6 * SEC));
	cr_assert(eq(u16, ends.port[0][0], 3));
	/* now only DATA flows and the new SYN flow: the SYN one goes */
	cr_assert_not_null(mk_flow(t, CLIENT, 5, 7 * SEC));
	cr_assert(eq(u16, ends.port[1][0], 4));
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u64, st.evicted_pre_data, 2));
	cr_assert(eq(u64, st.evicted_data, 0));
	/* flow 5 becomes DATA too: now the oldest DATA flow (d0) is sacrificed */
	mry_flow_set_phase(t, find_flow(t, CLIENT, 5), MRY_FLOW_PHASE_DATA, 8 * SEC);
	cr_assert_not_null(mk_flow(t, CLIENT, 6, 9 * SEC));
	cr_assert(eq(u16, ends.port[2][0], 1));
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u64, st.evicted_data, 1));
	mry_flow_table_destroy(t);
}

Test(flow, held_flow_is_never_evicted)
{
	struct mry_flow_config c = test_cfg(2);
	struct mry_flow_table *t = mk_table(&c);
	struct mry_flow *a, *b;
	struct mry_flow_stats st;

	a = mk_flow(t, CLIENT, 1, 0);
	b = mk_flow(t, CLIENT, 2, SEC);
	mry_flow_set_phase(t, b, MRY_FLOW_PHASE_DATA, 2 * SEC);
	a->flags |= MRY_FLOW_F_HELD;   /* the engine sets it directly */
	b->flags |= MRY_FLOW_F_HELD;
	cr_assert_null(mk_flow(t, CLIENT, 3, 3 * SEC));
	cr_assert_null(mk_flow(t, CLIENT, 4, 4 * SEC));
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u64, st.table_full, 2));
	cr_assert(eq(u64, st.evicted_pre_data + st.evicted_data, 0));
	cr_assert(eq(u32, ends.n, 0));
	/* released from hold (not touched since): evictable again */
	b->flags &= (uint8_t)~MRY_FLOW_F_HELD;
	cr_assert_not_null(mk_flow(t, CLIENT, 5, 5 * SEC));
	cr_assert(eq(u32, ends.n, 1));
	cr_assert(eq(ptr, ends.f[0], b));
	cr_assert_not_null(find_flow(t, CLIENT, 1));
	mry_flow_table_destroy(t);
}

Test(flow, each_phase_times_out_at_its_own_deadline)
{
	struct mry_flow_config c = test_cfg(16);
	struct mry_flow_table *t = mk_table(&c);
	static const uint64_t to[MRY_FLOW_PHASE_MAX] = { 10, 20, 40, 30, 80, 60, 8 };
	struct mry_flow_stats st;
	uint64_t t0 = 1000 * SEC;

	for (int ph = 0; ph < MRY_FLOW_PHASE_MAX; ph++) {
		struct mry_flow *f = mk_flow(t, CLIENT, (uint16_t)(10 + ph), t0);

		mry_flow_set_phase(t, f, (enum mry_flow_phase)ph, t0);
	}
	/* in deadline order */
	static const int order[] = { MRY_FLOW_PHASE_CLOSING, MRY_FLOW_PHASE_HALF_OPEN,
				     MRY_FLOW_PHASE_GREETING, MRY_FLOW_PHASE_DATA_INIT,
				     MRY_FLOW_PHASE_CMD, MRY_FLOW_PHASE_DATA_END,
				     MRY_FLOW_PHASE_DATA };
	for (int i = 0; i < MRY_FLOW_PHASE_MAX; i++) {
		int ph = order[i];

		mry_flow_expire(t, t0 + to[ph] * SEC - 1);
		cr_assert(eq(u32, ends.n, (unsigned)i), "phase %d ended early", ph);
		cr_assert_not_null(find_flow(t, CLIENT, (uint16_t)(10 + ph)));
		mry_flow_expire(t, t0 + to[ph] * SEC);
		cr_assert(eq(u32, ends.n, (unsigned)i + 1), "phase %d", ph);
		cr_assert(eq(u16, ends.port[i][0], 10 + ph));
		cr_assert(eq(int, ends.why[i], MRY_FLOW_END_TIMEOUT));
		cr_assert_null(find_flow(t, CLIENT, (uint16_t)(10 + ph)));
	}
	mry_flow_get_stats(t, &st);
	for (int ph = 0; ph < MRY_FLOW_PHASE_MAX; ph++)
		cr_assert(eq(u64, st.timeouts[ph], 1));
	cr_assert(eq(u32, st.active, 0));
	mry_flow_table_destroy(t);
}

Test(flow, touch_does_not_postpone_a_half_open_deadline)
{
	struct mry_flow_config c = test_cfg(16);
	struct mry_flow_table *t = mk_table(&c);
	struct mry_flow *f = mk_flow(t, CLIENT, 1, 0);
	struct mry_flow_stats st;

	/* retransmitted SYNs every second: still ends 10 s after the first */
	for (uint64_t s = 1; s < 10; s++) {
		mry_flow_touch(t, f, s * SEC);
		mry_flow_expire(t, s * SEC);
	}
	cr_assert(eq(u32, ends.n, 0));
	cr_assert(eq(u64, mry_flow_deadline(t, f), 10 * SEC));
	mry_flow_expire(t, 10 * SEC);
	cr_assert(eq(u32, ends.n, 1));
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u64, st.timeouts[MRY_FLOW_PHASE_HALF_OPEN], 1));
	mry_flow_table_destroy(t);
}

Test(flow, rearm_postpones_the_command_deadline_and_touch_does_not)
{
	struct mry_flow_config c = test_cfg(16);
	struct mry_flow_table *t = mk_table(&c);
	struct mry_flow *f = mk_flow(t, CLIENT, 1, 0);
	struct mry_flow *g = mk_flow(t, CLIENT, 2, 0);

	mry_flow_set_phase(t, f, MRY_FLOW_PHASE_CMD, 0);
	mry_flow_set_phase(t, g, MRY_FLOW_PHASE_CMD, 0);
	/* f: a complete command every 30 s; g: one byte of a line every 5 s */
	for (uint64_t s = 5; s <= 120; s += 5) {
		if (s % 30 == 0)
			mry_flow_rearm(t, f, s * SEC);
		mry_flow_touch_bytes(t, g, 1, s * SEC);
		mry_flow_touch(t, f, s * SEC);
		mry_flow_expire(t, s * SEC);
		if (s < 40) {
			cr_assert(eq(u32, ends.n, 0), "at %lu s", (unsigned long)s);
		}
	}
	/* g ended at 40 s (its command never completed), f lives on */
	cr_assert(eq(u32, ends.n, 1));
	cr_assert(eq(ptr, ends.f[0], g));
	cr_assert(eq(u64, mry_flow_deadline(t, f), 160 * SEC));
	mry_flow_expire(t, 160 * SEC - 1);
	cr_assert(eq(u32, ends.n, 1));
	mry_flow_expire(t, 160 * SEC);
	cr_assert(eq(u32, ends.n, 2));
	mry_flow_table_destroy(t);
}

Test(flow, setting_the_same_phase_does_not_rearm)
{
	struct mry_flow_config c = test_cfg(16);
	struct mry_flow_table *t = mk_table(&c);
	struct mry_flow *f = mk_flow(t, CLIENT, 1, 0);

	mry_flow_set_phase(t, f, MRY_FLOW_PHASE_CLOSING, 0);
	/* a stream of RSTs/FINs each setting CLOSING again */
	for (uint64_t s = 1; s < 8; s++)
		mry_flow_set_phase(t, f, MRY_FLOW_PHASE_CLOSING, s * SEC);
	mry_flow_expire(t, 8 * SEC);
	cr_assert(eq(u32, ends.n, 1));
	mry_flow_table_destroy(t);
}

Test(flow, shorter_phase_fires_before_the_longer_deadline)
{
	struct mry_flow_config c = test_cfg(16);
	struct mry_flow_table *t = mk_table(&c);
	struct mry_flow *f = mk_flow(t, CLIENT, 1, 0);
	struct mry_flow_stats st;

	mry_flow_set_phase(t, f, MRY_FLOW_PHASE_DATA, 0);       /* deadline 80 s */
	mry_flow_set_phase(t, f, MRY_FLOW_PHASE_CLOSING, 2 * SEC); /* 10 s */
	mry_flow_expire(t, 10 * SEC);
	cr_assert(eq(u32, ends.n, 1));
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u64, st.timeouts[MRY_FLOW_PHASE_CLOSING], 1));
	mry_flow_table_destroy(t);
}

Test(flow, expire_examines_at_most_its_budget_per_call)
{
	struct mry_flow_config c = test_cfg(64);
	struct mry_flow_table *t;

	c.expire_budget = 4;
	t = mk_table(&c);
	for (int i = 0; i < 10; i++)
		cr_assert_not_null(mk_flow(t, CLIENT, (uint16_t)(1 + i), 0));
	mry_flow_expire(t, 10 * SEC);
	cr_assert(eq(u32, ends.n, 4));
	mry_flow_expire(t, 10 * SEC);
	cr_assert(eq(u32, ends.n, 8));
	mry_flow_expire(t, 10 * SEC);
	cr_assert(eq(u32, ends.n, 10));
	mry_flow_table_destroy(t);
}

Test(flow, long_pause_expires_everything_due)
{
	struct mry_flow_config c = test_cfg(64);
	struct mry_flow_table *t = mk_table(&c);

	for (int i = 0; i < 20; i++) {
		struct mry_flow *f = mk_flow(t, CLIENT, (uint16_t)(1 + i), (uint64_t)i * SEC);

		mry_flow_set_phase(t, f, (enum mry_flow_phase)(i % MRY_FLOW_PHASE_MAX),
				   (uint64_t)i * SEC);
	}
	/* one hour later, far more than one wheel round */
	for (int i = 0; i < 5 && ends.n < 20; i++)
		mry_flow_expire(t, 3600 * SEC);
	cr_assert(eq(u32, ends.n, 20));
	mry_flow_table_destroy(t);
}

Test(flow, held_flow_is_not_timed_out_but_counted)
{
	struct mry_flow_config c = test_cfg(16);
	struct mry_flow_table *t = mk_table(&c);
	struct mry_flow *f = mk_flow(t, CLIENT, 1, 0);
	struct mry_flow_stats st;

	f->flags |= MRY_FLOW_F_HELD;
	mry_flow_expire(t, 10 * SEC);
	cr_assert(eq(u32, ends.n, 0));
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u64, st.timeout_held, 1));
	cr_assert(eq(u64, st.timeouts[MRY_FLOW_PHASE_HALF_OPEN], 0));
	/* released from hold: ends one period later */
	f->flags = 0;
	mry_flow_expire(t, 20 * SEC);
	cr_assert(eq(u32, ends.n, 1));
	mry_flow_table_destroy(t);
}

Test(flow, per_source_cap_refuses_and_counts)
{
	struct mry_flow_config c = test_cfg(16);
	struct mry_flow_table *t;
	struct mry_flow_stats st;
	uint8_t a[4] = { 10, 0, 0, 1 };
	struct mry_flow *f0;

	c.max_per_source = 2;
	t = mk_table(&c);
	f0 = mk_flow(t, CLIENT, 1, 0);
	cr_assert_not_null(f0);
	cr_assert_not_null(mk_flow(t, CLIENT, 2, 0));
	cr_assert(eq(u32, mry_flow_source_count(t, 4, a), 2));
	cr_assert_null(mk_flow(t, CLIENT, 3, 0));
	cr_assert_not_null(mk_flow(t, CLIENT + 1, 3, 0));   /* other source */
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u64, st.per_source_limit, 1));
	cr_assert(eq(u32, st.active, 3));
	mry_flow_release(t, f0);
	cr_assert(eq(u32, mry_flow_source_count(t, 4, a), 1));
	cr_assert_not_null(mk_flow(t, CLIENT, 3, 0));
	mry_flow_table_destroy(t);
}

Test(flow, client_side_address_is_the_counted_source)
{
	struct mry_flow_config c = test_cfg(16);
	struct mry_flow_table *t;
	/* the client 200.0.0.1 is the higher address: side 1 */
	struct mry_pkt p = pkt4(0xc8000001u, 4000, SERVER, 25);
	uint8_t cli[4] = { 200, 0, 0, 1 }, srv[4] = { 192, 168, 0, 1 };
	struct mry_flow_key k;
	struct mry_flow *f, *g;
	uint8_t side;

	c.max_per_source = 1;
	t = mk_table(&c);
	mry_flow_key_from_pkt(&p, &k, &side);
	cr_assert(eq(u8, side, 1));
	f = mry_flow_create_client(t, &k, mry_flow_key_hash(&k), side, 0);
	cr_assert_not_null(f);
	cr_assert(eq(u8, f->client_side, 1));
	cr_assert(eq(u8, f->flags & MRY_FLOW_F_CLIENT_KNOWN, MRY_FLOW_F_CLIENT_KNOWN));
	cr_assert(eq(u32, mry_flow_source_count(t, 4, cli), 1));
	cr_assert(eq(u32, mry_flow_source_count(t, 4, srv), 0));
	/* without the side, the lower address (the server) is counted */
	p.sport = 4001;
	mry_flow_key_from_pkt(&p, &k, &side);
	g = mry_flow_create(t, &k, mry_flow_key_hash(&k), 0);
	cr_assert_not_null(g);
	cr_assert(eq(u32, mry_flow_source_count(t, 4, srv), 1));
	/* learnt later: the count moves to the client, now over its cap of 1 */
	mry_flow_set_client(t, g, 1);
	cr_assert(eq(u32, mry_flow_source_count(t, 4, srv), 0));
	cr_assert(eq(u32, mry_flow_source_count(t, 4, cli), 2));
	mry_flow_release(t, g);
	mry_flow_release(t, f);
	cr_assert(eq(u32, mry_flow_source_count(t, 4, cli), 0));
	mry_flow_table_destroy(t);
}

Test(flow, source_counts_stay_exact_under_churn)
{
	struct mry_flow_config c = test_cfg(512);
	struct mry_flow_table *t = mk_table(&c);
	static struct mry_flow *fl[512];
	static uint32_t cnt[37];
	uint32_t rnd = 7;

	memset(fl, 0, sizeof(fl));
	memset(cnt, 0, sizeof(cnt));
	for (int round = 0; round < 10000; round++) {
		uint32_t i;

		rnd = rnd * 1103515245u + 12345u;
		i = (rnd >> 8) % 512;
		if (fl[i] != NULL) {
			mry_flow_release(t, fl[i]);
			fl[i] = NULL;
			cnt[i % 37]--;
		} else {
			fl[i] = mk_flow(t, CLIENT + i % 37, (uint16_t)(1 + i), 0);
			cr_assert_not_null(fl[i]);
			cnt[i % 37]++;
		}
	}
	for (uint32_t s = 0; s < 37; s++) {
		uint32_t a = CLIENT + s;
		uint8_t addr[4] = { (uint8_t)(a >> 24), (uint8_t)(a >> 16),
				    (uint8_t)(a >> 8), (uint8_t)a };

		cr_assert(eq(u32, mry_flow_source_count(t, 4, addr), cnt[s]), "source %u", s);
	}
	mry_flow_table_destroy(t);
}

static bool count_cb(void *ctx, struct mry_flow *f)
{
	unsigned *n = ctx;

	(void)f;
	return ++*n < 3;
}

Test(flow, foreach_visits_flows_until_told_to_stop)
{
	struct mry_flow_config c = test_cfg(16);
	struct mry_flow_table *t = mk_table(&c);
	unsigned n = 0;

	for (int i = 0; i < 2; i++)
		mk_flow(t, CLIENT, (uint16_t)(1 + i), 0);
	mry_flow_foreach(t, count_cb, &n);
	cr_assert(eq(u32, n, 2));
	for (int i = 2; i < 6; i++)
		mk_flow(t, CLIENT, (uint16_t)(1 + i), 0);
	n = 0;
	mry_flow_foreach(t, count_cb, &n);
	cr_assert(eq(u32, n, 3));
	mry_flow_table_destroy(t);
}

struct walk_ctx {
	struct mry_flow_table *t;
	unsigned seen;
	unsigned stop_after;         /* 0: never stop */
};

/* Ends the flows of odd client ports: a sweep's shape. */
static bool walk_end_odd(void *ctx, struct mry_flow *f)
{
	struct walk_ctx *w = ctx;
	uint16_t cport = f->key.port[0] == 25 ? f->key.port[1] : f->key.port[0];

	w->seen++;
	if (cport & 1u)
		mry_flow_end(w->t, f, MRY_FLOW_END_BLOCKED);
	return w->stop_after == 0 || w->seen < w->stop_after;
}

Test(flow, walk_is_bounded_per_call_and_may_end_the_flows_it_visits)
{
	struct mry_flow_config c = test_cfg(64);
	struct mry_flow_table *t = mk_table(&c);
	struct walk_ctx w = { .t = t };
	struct mry_flow_stats st;
	uint32_t cursor = 0;
	unsigned calls = 0;

	for (int i = 0; i < 40; i++)
		mk_flow(t, CLIENT, (uint16_t)(100 + i), 0);
	/* 64 slots, 10 per call: 7 calls, never more than 10 flows a call */
	while (!mry_flow_walk(t, &cursor, 10, walk_end_odd, &w)) {
		calls++;
		cr_assert(le(u32, w.seen, 10 * calls));
	}
	cr_assert(eq(u32, calls + 1, 7));
	cr_assert(eq(u32, w.seen, 40));
	cr_assert(eq(u32, ends.n, 20));
	for (unsigned i = 0; i < ends.n; i++) {
		cr_assert(eq(int, ends.why[i], MRY_FLOW_END_BLOCKED));
		cr_assert(eq(u32, ends.port[i][0] == 25 ? ends.port[i][1] & 1u :
				  ends.port[i][0] & 1u, 1));
	}
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u32, st.active, 20));
	cr_assert(eq(u64, st.open_by_phase[MRY_FLOW_PHASE_HALF_OPEN], 20));
	cr_assert_null(find_flow(t, CLIENT, 101));
	cr_assert_not_null(find_flow(t, CLIENT, 100));
	/* a walk done stays done; a callback may stop one early */
	cr_assert(mry_flow_walk(t, &cursor, 10, walk_end_odd, &w));
	cursor = 0;
	w = (struct walk_ctx){ .t = t, .stop_after = 3 };
	cr_assert(not(mry_flow_walk(t, &cursor, 64, walk_end_odd, &w)));
	cr_assert(eq(u32, w.seen, 3));
	mry_flow_table_destroy(t);
}

Test(flow, destroy_ends_every_flow_with_shutdown)
{
	struct mry_flow_config c = test_cfg(16);
	struct mry_flow_table *t = mk_table(&c);

	for (int i = 0; i < 5; i++)
		mk_flow(t, CLIENT, (uint16_t)(1 + i), 0);
	mry_flow_release(t, find_flow(t, CLIENT, 3));
	mry_flow_table_destroy(t);
	cr_assert(eq(u32, ends.n, 4));
	for (unsigned i = 0; i < ends.n; i++)
		cr_assert(eq(int, ends.why[i], MRY_FLOW_END_SHUTDOWN));
}

Test(flow, default_config_fits_336_bytes_per_flow)
{
	struct mry_flow_table *t = mry_flow_table_create(mry_alloc_default(), NULL,
							 NULL, NULL);
	struct mry_flow_stats st;
	size_t b;

	cr_assert_not_null(t);
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u32, st.capacity, 65536));
	b = mry_flow_table_bytes_per_flow(t);
	cr_log_info("sizeof(struct mry_flow) = %zu, bytes per flow = %zu",
		    sizeof(struct mry_flow), b);
	cr_assert(le(sz, sizeof(struct mry_flow), 160));
	cr_assert(ge(sz, b, sizeof(struct mry_flow)));
	cr_assert(le(sz, b, 336));
	mry_flow_table_destroy(t);
}

/* shadow model for the randomized test: which ports are live */
static bool model_live[4096];
static uint32_t model_n;

static void model_end(void *ctx, struct mry_flow *f, enum mry_flow_end_reason why)
{
	(void)ctx;
	cr_assert(eq(int, (f->flags & MRY_FLOW_F_HELD) != 0 && why != MRY_FLOW_END_SHUTDOWN, 0),
		  "held flow ended (%d)", why);
	cr_assert(eq(int, model_live[f->key.port[0]], 1));
	model_live[f->key.port[0]] = false;
	model_n--;
}

static uint32_t model_not_closing;

static bool model_check_cb(void *ctx, struct mry_flow *f)
{
	uint32_t *seen = ctx;

	cr_assert(eq(int, model_live[f->key.port[0]], 1));
	++*seen;
	model_not_closing += f->phase != MRY_FLOW_PHASE_CLOSING;
	return true;
}

Test(flow, random_operations_keep_table_and_model_in_step, .timeout = 60)
{
	struct mry_flow_config c = test_cfg(256);
	struct mry_flow_table *t;
	struct mry_flow_stats st;
	uint32_t rnd = 4242, seen = 0;
	uint64_t now = 0;

	c.expire_budget = 8;
	memset(model_live, 0, sizeof(model_live));
	model_n = 0;
	t = mry_flow_table_create(mry_alloc_default(), &c, model_end, NULL);
	cr_assert_not_null(t);
	for (int op = 0; op < 200000; op++) {
		uint16_t port;
		struct mry_flow *f;

		rnd = rnd * 1103515245u + 12345u;
		port = (uint16_t)(1 + (rnd >> 8) % 600);
		now += (rnd >> 24) % 64 == 0 ? 100 * MRY_NS_PER_MS : 0;
		f = find_flow(t, CLIENT, port);
		cr_assert(eq(int, f != NULL, model_live[port]), "op %d port %u", op, port);
		switch ((rnd >> 4) % 8) {
		case 0:
		case 1:
			if (f == NULL && (f = mk_flow(t, CLIENT, port, now)) != NULL) {
				model_live[port] = true;
				model_n++;
				/* second half: no pre-DATA flow lasts, DATA ones go */
				if (op >= 100000)
					mry_flow_set_phase(t, f, MRY_FLOW_PHASE_DATA, now);
			}
			break;
		case 2:
			if (f != NULL)
				mry_flow_touch(t, f, now);
			break;
		case 3:
			if (f != NULL)
				/* mostly DATA, so DATA flows get evicted too */
				mry_flow_set_phase(t, f, (rnd >> 12) % 8 < 6 ? MRY_FLOW_PHASE_DATA :
						   (enum mry_flow_phase)((rnd >> 16) % MRY_FLOW_PHASE_MAX), now);
			break;
		case 4:
			if (f != NULL)
				f->flags ^= MRY_FLOW_F_HELD;
			break;
		case 5:
			if (f != NULL) {
				mry_flow_release(t, f);
				model_live[port] = false;
				model_n--;
			}
			break;
		default:
			mry_flow_expire(t, now);
			break;
		}
		mry_flow_get_stats(t, &st);
		cr_assert(eq(u32, st.active, model_n));
	}
	model_not_closing = 0;
	mry_flow_foreach(t, model_check_cb, &seen);
	cr_assert(eq(u32, seen, model_n));
	{
		uint8_t a[4] = { 10, 0, 0, 1 };

		/* closing flows are not connections of their source any more */
		cr_assert(eq(u32, mry_flow_source_count(t, 4, a), model_not_closing));
	}
	mry_flow_get_stats(t, &st);
	cr_log_info("created %lu evicted %lu/%lu full %lu timeouts %lu held %lu",
		    (unsigned long)st.created, (unsigned long)st.evicted_pre_data,
		    (unsigned long)st.evicted_data, (unsigned long)st.table_full,
		    (unsigned long)(st.timeouts[0] + st.timeouts[1] + st.timeouts[2] +
				    st.timeouts[3] + st.timeouts[4] + st.timeouts[5]),
		    (unsigned long)st.timeout_held);
	cr_assert(ge(u64, st.evicted_pre_data, 1));   /* gt() passes on equality in Criterion 2.4 */
	cr_assert(ge(u64, st.timeouts[MRY_FLOW_PHASE_HALF_OPEN], 1));
	cr_assert(ge(u64, st.evicted_data, 1));
	mry_flow_table_destroy(t);
	cr_assert(eq(u32, model_n, 0));
}

static struct mry_flow_table *release_tbl;

static void release_in_end(void *ctx, struct mry_flow *f, enum mry_flow_end_reason why)
{
	unsigned *n = ctx;

	(void)why;
	mry_flow_release(release_tbl, f);
	++*n;
}

Test(flow, end_callback_may_release_the_flow_it_is_given)
{
	struct mry_flow_config c = test_cfg(2);
	struct mry_flow_stats st;
	unsigned n = 0;

	release_tbl = mry_flow_table_create(mry_alloc_default(), &c, release_in_end, &n);
	cr_assert_not_null(release_tbl);
	mk_flow(release_tbl, CLIENT, 1, 0);
	mk_flow(release_tbl, CLIENT, 2, 0);
	cr_assert_not_null(mk_flow(release_tbl, CLIENT, 3, SEC));   /* evicts 1 */
	mry_flow_expire(release_tbl, 20 * SEC);                      /* times out 2, 3 */
	mry_flow_get_stats(release_tbl, &st);
	cr_assert(eq(u32, n, 3));
	cr_assert(eq(u32, st.active, 0));
	cr_assert_null(find_flow(release_tbl, CLIENT, 2));
	cr_assert_not_null(mk_flow(release_tbl, CLIENT, 4, 21 * SEC));
	mry_flow_table_destroy(release_tbl);
	cr_assert(eq(u32, n, 4));
}

/* ---- deadlines per phase, minimum data rate ------------------------------ */

static struct mry_flow_table *mk_rate_table(uint32_t min_rate)
{
	struct mry_flow_config c = test_cfg(16);

	c.min_data_rate = min_rate;
	return mk_table(&c);
}

Test(flow, data_trickle_ends_within_the_data_timeout)
{
	struct mry_flow_table *t = mk_rate_table(500);
	struct mry_flow *f = mk_flow(t, CLIENT, 1, 0);
	struct mry_flow_stats st;
	uint64_t s;

	mry_flow_set_phase(t, f, MRY_FLOW_PHASE_DATA, 0);
	/* one byte every 10 s: each credits 2 ms, the deadline stays near 80 s */
	for (s = 10; s < 200; s += 10) {
		mry_flow_touch_bytes(t, f, 1, s * SEC);
		mry_flow_data_progress(t, f, 1, s * SEC);
		mry_flow_expire(t, s * SEC);
		if (ends.n != 0)
			break;
	}
	cr_assert(eq(u32, ends.n, 1));
	cr_assert(eq(int, ends.why[0], MRY_FLOW_END_TIMEOUT));
	cr_assert(le(u64, s, 90), "trickle lived until %lu s", (unsigned long)s);
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u64, st.timeouts[MRY_FLOW_PHASE_DATA], 1));
	cr_assert(eq(u64, st.timeout_data_slow, 1));
	mry_flow_table_destroy(t);
}

Test(flow, data_at_the_minimum_rate_never_times_out)
{
	struct mry_flow_table *t = mk_rate_table(500);
	struct mry_flow *f = mk_flow(t, CLIENT, 1, 0);
	struct mry_flow_stats st;

	mry_flow_set_phase(t, f, MRY_FLOW_PHASE_DATA, 0);
	for (uint64_t s = 1; s <= 400; s++) {
		mry_flow_data_progress(t, f, 500, s * SEC);
		mry_flow_expire(t, s * SEC);
	}
	cr_assert(eq(u32, ends.n, 0));
	/* a burst never buys more than one data timeout */
	mry_flow_data_progress(t, f, 100u << 20, 400 * SEC);
	cr_assert(eq(u64, mry_flow_deadline(t, f), 480 * SEC));
	/* then it stops: idle for a data timeout ends it */
	mry_flow_expire(t, 480 * SEC - 1);
	cr_assert(eq(u32, ends.n, 0));
	mry_flow_expire(t, 480 * SEC);
	cr_assert(eq(u32, ends.n, 1));
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u64, st.timeout_data_slow, 0));
	mry_flow_table_destroy(t);
}

Test(flow, zero_min_data_rate_makes_the_data_deadline_idle_only)
{
	struct mry_flow_table *t = mk_rate_table(0);
	struct mry_flow *f = mk_flow(t, CLIENT, 1, 0);

	mry_flow_set_phase(t, f, MRY_FLOW_PHASE_DATA, 0);
	for (uint64_t s = 10; s <= 400; s += 10) {
		mry_flow_data_progress(t, f, 1, s * SEC);
		mry_flow_expire(t, s * SEC);
	}
	cr_assert(eq(u32, ends.n, 0));
	cr_assert(eq(u64, mry_flow_deadline(t, f), 480 * SEC));
	mry_flow_table_destroy(t);
}

Test(flow, data_progress_outside_data_changes_nothing)
{
	struct mry_flow_table *t = mk_rate_table(500);
	struct mry_flow *f = mk_flow(t, CLIENT, 1, 0);

	mry_flow_set_phase(t, f, MRY_FLOW_PHASE_CMD, 0);
	mry_flow_data_progress(t, f, 1000000, 5 * SEC);
	cr_assert(eq(u64, mry_flow_deadline(t, f), 40 * SEC));
	mry_flow_expire(t, 40 * SEC);
	cr_assert(eq(u32, ends.n, 1));
	mry_flow_table_destroy(t);
}

Test(flow, defaults_follow_rfc_5321_and_cap_sources_at_256)
{
	struct mry_flow_config d;
	struct mry_flow_table *t;
	struct mry_flow *f, *g;
	struct mry_flow_stats st;
	uint16_t i;

	mry_flow_config_defaults(&d);
	cr_assert(eq(u64, d.timeout_ns[MRY_FLOW_PHASE_HALF_OPEN], 10 * SEC));
	cr_assert(eq(u64, d.timeout_ns[MRY_FLOW_PHASE_GREETING], 300 * SEC));
	cr_assert(eq(u64, d.timeout_ns[MRY_FLOW_PHASE_CMD], 300 * SEC));
	cr_assert(eq(u64, d.timeout_ns[MRY_FLOW_PHASE_DATA_INIT], 120 * SEC));
	cr_assert(eq(u64, d.timeout_ns[MRY_FLOW_PHASE_DATA], 180 * SEC));
	cr_assert(eq(u64, d.timeout_ns[MRY_FLOW_PHASE_DATA_END], 600 * SEC));
	cr_assert(eq(u64, d.timeout_ns[MRY_FLOW_PHASE_CLOSING], 10 * SEC));
	cr_assert(eq(u32, d.max_per_source, 256));
	cr_assert(eq(u32, d.min_data_rate, 500));
	/* a NULL config is the defaults */
	memset(&ends, 0, sizeof(ends));
	t = mry_flow_table_create(mry_alloc_default(), NULL, on_end, &ends);
	cr_assert_not_null(t);
	cur_tbl = t;
	f = mk_flow(t, CLIENT, 1, 0);
	g = mk_flow(t, CLIENT, 2, 0);
	mry_flow_set_phase(t, g, MRY_FLOW_PHASE_CMD, 0);
	/* a client idle 45 s after EHLO is well inside the command deadline */
	mry_flow_expire(t, 45 * SEC);
	cr_assert(eq(u32, ends.n, 1));
	cr_assert(eq(ptr, ends.f[0], f));
	mry_flow_expire(t, 300 * SEC - 1);
	cr_assert(eq(u32, ends.n, 1));
	mry_flow_expire(t, 302 * SEC);
	cr_assert(eq(u32, ends.n, 2));
	for (i = 0; i < 256; i++)
		cr_assert_not_null(mk_flow(t, CLIENT, (uint16_t)(1000 + i), 400 * SEC));
	cr_assert_null(mk_flow(t, CLIENT, 2000, 400 * SEC));
	cr_assert_not_null(mk_flow(t, CLIENT + 1, 2000, 400 * SEC));
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u64, st.per_source_limit, 1));
	cr_assert(eq(u64, st.half_open_budget, 65536 / 4));
	mry_flow_table_destroy(t);
}

Test(flow, closing_flows_do_not_count_against_the_source_cap)
{
	struct mry_flow_config c = test_cfg(64);
	struct mry_flow_table *t;
	struct mry_flow_source top[1];
	struct mry_flow *f[4];
	uint8_t a[4] = { 10, 0, 0, 1 };

	c.max_per_source = 4;
	t = mk_table(&c);
	for (int i = 0; i < 4; i++)
		f[i] = mk_flow(t, CLIENT, (uint16_t)(1 + i), 0);
	cr_assert_null(mk_flow(t, CLIENT, 10, 0));
	/* a sender reusing connections quickly: two close, two new ones fit */
	mry_flow_touch_bytes(t, f[0], 1000, 0);
	mry_flow_set_phase(t, f[0], MRY_FLOW_PHASE_CLOSING, SEC);
	mry_flow_set_phase(t, f[1], MRY_FLOW_PHASE_CLOSING, SEC);
	cr_assert(eq(u32, mry_flow_source_count(t, 4, a), 2));
	cr_assert_not_null(mk_flow(t, CLIENT, 10, SEC));
	cr_assert_not_null(mk_flow(t, CLIENT, 11, SEC));
	cr_assert_null(mk_flow(t, CLIENT, 12, SEC));
	/* the closing flow's bytes still belong to its source */
	cr_assert(eq(u32, mry_flow_top_sources(t, MRY_FLOW_TOP_BYTES, 1, top), 1));
	cr_assert(eq(u64, top[0].bytes, 1000));
	cr_assert(eq(u32, top[0].flows, 4));
	mry_flow_release(t, f[0]);
	mry_flow_release(t, f[1]);
	cr_assert(eq(u32, mry_flow_source_count(t, 4, a), 4));
	cr_assert(eq(u32, mry_flow_top_sources(t, MRY_FLOW_TOP_BYTES, 1, top), 1));
	cr_assert(eq(u64, top[0].bytes, 0));
	mry_flow_table_destroy(t);
}

Test(flow, zero_per_source_cap_is_unlimited)
{
	struct mry_flow_config c = test_cfg(1024);
	struct mry_flow_table *t;
	struct mry_flow_stats st;

	c.max_per_source = 0;
	t = mk_table(&c);
	for (uint16_t i = 0; i < 1000; i++)
		cr_assert_not_null(mk_flow(t, CLIENT, (uint16_t)(1 + i), 0));
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u64, st.per_source_limit, 0));
	cr_assert(eq(u32, st.active, 1000));
	mry_flow_table_destroy(t);
}

/* ---- eviction order ------------------------------------------------------ */

Test(flow, eviction_goes_half_open_then_idle_then_slow_data_then_moving_data)
{
	struct mry_flow_config c = test_cfg(4);
	struct mry_flow_table *t;
	struct mry_flow *h, *idle, *slow, *moving;
	struct mry_flow_stats st;
	uint64_t now;

	c.min_data_rate = 500;
	t = mk_table(&c);
	moving = mk_flow(t, CLIENT, 1, 0);
	slow = mk_flow(t, CLIENT, 2, 0);
	idle = mk_flow(t, CLIENT, 3, 0);
	mry_flow_set_phase(t, moving, MRY_FLOW_PHASE_DATA, 0);
	mry_flow_set_phase(t, slow, MRY_FLOW_PHASE_DATA, 0);
	mry_flow_set_phase(t, idle, MRY_FLOW_PHASE_CMD, 0);
	/* 30 s: moving sent 30 kB, slow 30 bytes (each touched last second) */
	for (now = SEC; now <= 30 * SEC; now += SEC) {
		mry_flow_touch(t, slow, now);
		mry_flow_data_progress(t, slow, 1, now);
	}
	mry_flow_touch(t, moving, now);
	mry_flow_data_progress(t, moving, 30000, now);
	h = mk_flow(t, CLIENT, 4, now);
	cr_assert_not_null(h);
	/* the half-open flow is the newest, still it goes first */
	cr_assert_not_null(mk_flow(t, CLIENT, 5, now));
	cr_assert(eq(ptr, ends.f[0], h));
	cr_assert(eq(int, ends.cls[0], MRY_FLOW_EVICT_HALF_OPEN));
	mry_flow_set_phase(t, find_flow(t, CLIENT, 5), MRY_FLOW_PHASE_CMD, now);
	/* then the idle pre-DATA flow that was least recently active */
	cr_assert_not_null(mk_flow(t, CLIENT, 6, now));
	cr_assert(eq(u16, ends.port[1][0], 3));
	cr_assert(eq(int, ends.cls[1], MRY_FLOW_EVICT_IDLE));
	mry_flow_set_phase(t, find_flow(t, CLIENT, 6), MRY_FLOW_PHASE_DATA, now);
	mry_flow_data_progress(t, find_flow(t, CLIENT, 6), 1000, now);
	mry_flow_set_phase(t, find_flow(t, CLIENT, 5), MRY_FLOW_PHASE_DATA, now);
	mry_flow_data_progress(t, find_flow(t, CLIENT, 5), 1000, now);
	/* then the slow DATA flow, although the moving one is older in LRU order */
	cr_assert_not_null(mk_flow(t, CLIENT, 7, now));
	cr_assert(eq(ptr, ends.f[2], slow));
	cr_assert(eq(int, ends.cls[2], MRY_FLOW_EVICT_DATA_SLOW));
	mry_flow_set_phase(t, find_flow(t, CLIENT, 7), MRY_FLOW_PHASE_DATA, now);
	mry_flow_data_progress(t, find_flow(t, CLIENT, 7), 1000, now);
	/* all DATA and keeping up: the slowest moving one goes */
	cr_assert_not_null(mk_flow(t, CLIENT, 8, now + SEC));
	cr_assert(eq(int, ends.cls[3], MRY_FLOW_EVICT_DATA_MOVING));
	cr_assert(ends.f[3] != moving, "the fastest message was evicted");
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u64, st.evicted[MRY_FLOW_EVICT_HALF_OPEN], 1));
	cr_assert(eq(u64, st.evicted[MRY_FLOW_EVICT_IDLE], 1));
	cr_assert(eq(u64, st.evicted[MRY_FLOW_EVICT_DATA_SLOW], 1));
	cr_assert(eq(u64, st.evicted[MRY_FLOW_EVICT_DATA_MOVING], 1));
	cr_assert(eq(u64, st.evicted_pre_data, 2));
	cr_assert(eq(u64, st.evicted_data, 2));
	mry_flow_table_destroy(t);
}

Test(flow, slow_data_flows_go_by_rate_not_by_age)
{
	struct mry_flow_config c = test_cfg(3);
	struct mry_flow_table *t;
	struct mry_flow *a, *b;

	c.min_data_rate = 500;
	t = mk_table(&c);
	a = mk_flow(t, CLIENT, 1, 0);
	b = mk_flow(t, CLIENT, 2, 0);
	mry_flow_set_phase(t, a, MRY_FLOW_PHASE_DATA, 0);
	mry_flow_set_phase(t, b, MRY_FLOW_PHASE_DATA, 0);
	/* both behind 500 B/s; a is the least recently active but faster */
	mry_flow_touch(t, a, 20 * SEC);
	mry_flow_data_progress(t, a, 5000, 20 * SEC);
	mry_flow_touch(t, b, 21 * SEC);
	mry_flow_data_progress(t, b, 100, 21 * SEC);
	mry_flow_set_phase(t, mk_flow(t, CLIENT, 3, 21 * SEC), MRY_FLOW_PHASE_DATA,
			   21 * SEC);
	cr_assert_not_null(mk_flow(t, CLIENT, 4, 22 * SEC));
	cr_assert(eq(ptr, ends.f[0], b));
	cr_assert(eq(int, ends.cls[0], MRY_FLOW_EVICT_DATA_SLOW));
	mry_flow_table_destroy(t);
}

Test(flow, a_message_just_begun_is_not_judged_slow)
{
	struct mry_flow_config c = test_cfg(2);
	struct mry_flow_table *t;
	struct mry_flow *fresh, *trickle;

	c.min_data_rate = 500;
	t = mk_table(&c);
	trickle = mk_flow(t, CLIENT, 1, 0);
	mry_flow_set_phase(t, trickle, MRY_FLOW_PHASE_DATA, 0);
	mry_flow_data_progress(t, trickle, 10, 60 * SEC);
	mry_flow_touch(t, trickle, 60 * SEC);
	/* a real message whose 354 came a moment ago: no bytes yet */
	fresh = mk_flow(t, CLIENT, 2, 59 * SEC);
	mry_flow_set_phase(t, fresh, MRY_FLOW_PHASE_DATA, 60 * SEC);
	cr_assert_not_null(mk_flow(t, CLIENT, 3, 61 * SEC));
	cr_assert(eq(ptr, ends.f[0], trickle));
	mry_flow_table_destroy(t);
}

Test(flow, within_a_class_the_most_connected_source_goes_first)
{
	struct mry_flow_config c = test_cfg(6);
	struct mry_flow_table *t;
	struct mry_flow *lone;

	t = mk_table(&c);
	/* the oldest idle flow is the only one of its source */
	lone = mk_flow(t, CLIENT + 7, 1, 0);
	mry_flow_set_phase(t, lone, MRY_FLOW_PHASE_CMD, 0);
	for (uint16_t i = 0; i < 5; i++)
		mry_flow_set_phase(t, mk_flow(t, CLIENT, (uint16_t)(10 + i), SEC),
				   MRY_FLOW_PHASE_CMD, SEC);
	cr_assert_not_null(mk_flow(t, CLIENT + 9, 1, 2 * SEC));
	cr_assert(eq(u32, ends.n, 1));
	cr_assert(ends.f[0] != lone);
	cr_assert(eq(u16, ends.port[0][0], 10), "oldest of the busy source");
	cr_assert_not_null(find_flow(t, CLIENT + 7, 1));
	mry_flow_table_destroy(t);
}

/* ---- half-open budget ----------------------------------------------------- */

Test(flow, syn_flood_churns_inside_the_half_open_budget)
{
	struct mry_flow_config c = test_cfg(8);
	struct mry_flow_table *t;
	struct mry_flow_stats st;
	struct mry_flow *est[4];

	c.max_half_open = 2;
	t = mk_table(&c);
	for (int i = 0; i < 4; i++) {
		est[i] = mk_flow(t, CLIENT, (uint16_t)(1 + i), 0);
		mry_flow_set_phase(t, est[i], MRY_FLOW_PHASE_CMD, 0);
	}
	/* 1000 spoofed SYNs from distinct sources */
	for (uint32_t i = 0; i < 1000; i++)
		cr_assert_not_null(mk_flow(t, 0xc6336400u + i, 4000, SEC + i));
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u64, st.open_by_phase[MRY_FLOW_PHASE_HALF_OPEN], 2));
	cr_assert(eq(u64, st.open_by_phase[MRY_FLOW_PHASE_CMD], 4));
	cr_assert(eq(u64, st.half_open_full, 998));
	cr_assert(eq(u64, st.evicted[MRY_FLOW_EVICT_HALF_OPEN], 998));
	cr_assert(eq(u64, st.evicted[MRY_FLOW_EVICT_IDLE], 0));
	/* the oldest half-open flow went each time: the newest two remain */
	cr_assert_not_null(find_flow(t, 0xc6336400u + 999, 4000));
	cr_assert_not_null(find_flow(t, 0xc6336400u + 998, 4000));
	for (int i = 0; i < 4; i++)
		cr_assert_not_null(find_flow(t, CLIENT, (uint16_t)(1 + i)));
	mry_flow_table_destroy(t);
}

Test(flow, default_half_open_budget_is_a_quarter_of_the_table)
{
	struct mry_flow_config c = test_cfg(64);
	struct mry_flow_table *t;
	struct mry_flow_stats st;

	c.max_half_open = 0;
	t = mk_table(&c);
	for (uint32_t i = 0; i < 100; i++)
		mk_flow(t, 0xc6336400u + i, 4000, 0);
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u64, st.half_open_budget, 16));
	cr_assert(eq(u32, st.active, 16));
	cr_assert(eq(u64, st.half_open_full, 84));
	mry_flow_table_destroy(t);
}

/* ---- sources: counts, top talkers ---------------------------------------- */

Test(flow, top_sources_rank_by_flows_messages_and_bytes)
{
	struct mry_flow_config c = test_cfg(64);
	struct mry_flow_table *t = mk_table(&c);
	struct mry_flow_source top[8];
	struct mry_flow_stats st;
	struct mry_flow *f;
	uint32_t n;

	/* A: 5 idle flows; B: 2 flows in DATA; C: 1 flow with 1 MB */
	for (uint16_t i = 0; i < 5; i++)
		mry_flow_set_phase(t, mk_flow(t, CLIENT + 1, (uint16_t)(1 + i), 0),
				   MRY_FLOW_PHASE_CMD, 0);
	for (uint16_t i = 0; i < 2; i++) {
		f = mk_flow(t, CLIENT + 2, (uint16_t)(1 + i), 0);
		mry_flow_set_phase(t, f, MRY_FLOW_PHASE_DATA, 0);
		mry_flow_touch_bytes(t, f, 100, SEC);
	}
	f = mk_flow(t, CLIENT + 3, 1, 0);
	mry_flow_touch_bytes(t, f, 1u << 20, SEC);

	n = mry_flow_top_sources(t, MRY_FLOW_TOP_FLOWS, 8, top);
	cr_assert(eq(u32, n, 3));
	cr_assert(eq(u8, top[0].addr[3], 2));   /* 10.0.0.2 */
	cr_assert(eq(u32, top[0].flows, 5));
	cr_assert(eq(u8, top[0].ip_version, 4));
	n = mry_flow_top_sources(t, MRY_FLOW_TOP_DATA_FLOWS, 1, top);
	cr_assert(eq(u32, n, 1));
	cr_assert(eq(u8, top[0].addr[3], 3));
	cr_assert(eq(u32, top[0].data_flows, 2));
	cr_assert(eq(u64, top[0].bytes, 200));
	n = mry_flow_top_sources(t, MRY_FLOW_TOP_BYTES, 2, top);
	cr_assert(eq(u32, n, 2));
	cr_assert(eq(u8, top[0].addr[3], 4));
	cr_assert(eq(u64, top[0].bytes, 1u << 20));
	cr_assert(eq(u8, top[1].addr[3], 3));
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u64, st.sources, 3));
	cr_assert(eq(u64, st.open_by_phase[MRY_FLOW_PHASE_CMD], 5));
	cr_assert(eq(u64, st.open_by_phase[MRY_FLOW_PHASE_DATA], 2));
	cr_assert(eq(u64, st.open_by_phase[MRY_FLOW_PHASE_HALF_OPEN], 1));
	/* a message ends, a flow closes: the numbers follow */
	mry_flow_set_phase(t, find_flow(t, CLIENT + 2, 1), MRY_FLOW_PHASE_CMD, 2 * SEC);
	mry_flow_release(t, find_flow(t, CLIENT + 2, 2));
	mry_flow_release(t, f);
	n = mry_flow_top_sources(t, MRY_FLOW_TOP_DATA_FLOWS, 8, top);
	cr_assert(eq(u32, n, 2));
	cr_assert(eq(u32, top[0].data_flows, 0));
	cr_assert(eq(u32, top[1].data_flows, 0));
	n = mry_flow_top_sources(t, MRY_FLOW_TOP_BYTES, 8, top);
	cr_assert(eq(u8, top[0].addr[3], 3));
	cr_assert(eq(u64, top[0].bytes, 100));
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u64, st.sources, 2));
	cr_assert(eq(u64, st.open_by_phase[MRY_FLOW_PHASE_DATA], 0));
	cr_assert(eq(u64, st.open_by_phase[MRY_FLOW_PHASE_CMD], 6));
	mry_flow_table_destroy(t);
}

Test(flow, set_client_moves_messages_and_bytes_to_the_client)
{
	struct mry_flow_config c = test_cfg(16);
	struct mry_flow_table *t = mk_table(&c);
	struct mry_flow_source top[4];
	struct mry_pkt p = pkt4(SERVER, 25, CLIENT, 1234);   /* server side first seen */
	struct mry_flow_key k;
	struct mry_flow *f;
	uint8_t side;

	mry_flow_key_from_pkt(&p, &k, &side);
	f = mry_flow_create(t, &k, mry_flow_key_hash(&k), 0);   /* counts side 0: 10.0.0.1 */
	mry_flow_set_phase(t, f, MRY_FLOW_PHASE_DATA, 0);
	mry_flow_touch_bytes(t, f, 300, SEC);
	/* the lower address (CLIENT) is side 0; say the client is side 1 */
	mry_flow_set_client(t, f, 1);
	cr_assert(eq(u32, mry_flow_top_sources(t, MRY_FLOW_TOP_FLOWS, 4, top), 1));
	cr_assert(eq(u8, top[0].addr[0], 192));
	cr_assert(eq(u32, top[0].data_flows, 1));
	cr_assert(eq(u64, top[0].bytes, 300));
	mry_flow_release(t, f);
	cr_assert(eq(u32, mry_flow_top_sources(t, MRY_FLOW_TOP_FLOWS, 4, top), 0));
	mry_flow_table_destroy(t);
}

Test(flow, top_sources_include_ipv6)
{
	struct mry_flow_config c = test_cfg(16);
	struct mry_flow_table *t = mk_table(&c);
	struct mry_flow_source top[2];
	struct mry_pkt p = pkt6(7, 1000, 9, 25);
	struct mry_flow_key k;
	uint8_t side;

	mry_flow_key_from_pkt(&p, &k, &side);
	cr_assert_not_null(mry_flow_create_client(t, &k, mry_flow_key_hash(&k), side, 0));
	cr_assert(eq(u32, mry_flow_top_sources(t, MRY_FLOW_TOP_FLOWS, 2, top), 1));
	cr_assert(eq(u8, top[0].ip_version, 6));
	cr_assert(eq(u8, top[0].addr[0], 0x20));
	cr_assert(eq(u8, top[0].addr[15], 7));
	mry_flow_table_destroy(t);
}

/* ---- emergency mode ------------------------------------------------------ */

Test(flow, emergency_mode_shortens_deadlines_with_hysteresis)
{
	struct mry_flow_config c = test_cfg(100);
	struct mry_flow_table *t;
	struct mry_flow_stats st;
	struct mry_flow *old, *f, *g;

	c.emergency_high_pct = 80;
	c.emergency_low_pct = 60;
	c.emergency_timeout_pct = 20;
	t = mk_table(&c);
	old = mk_flow(t, CLIENT, 1, 0);
	mry_flow_set_phase(t, old, MRY_FLOW_PHASE_CMD, 0);        /* deadline 40 s */
	mry_flow_set_pressure(t, 79, 0);
	cr_assert(not(mry_flow_emergency(t)));
	mry_flow_set_pressure(t, 80, 0);
	cr_assert(mry_flow_emergency(t));
	/* newly armed: 20 % of 40 s */
	f = mk_flow(t, CLIENT, 2, 10 * SEC);
	mry_flow_set_phase(t, f, MRY_FLOW_PHASE_CMD, 10 * SEC);
	cr_assert(eq(u64, mry_flow_deadline(t, f), 18 * SEC));
	/* armed before: its remaining 30 s are cut to 6 s by the next expire */
	mry_flow_expire(t, 10 * SEC);
	cr_assert(eq(u64, mry_flow_deadline(t, old), 16 * SEC));
	mry_flow_expire(t, 16 * SEC);
	cr_assert(eq(u32, ends.n, 1));
	cr_assert(eq(ptr, ends.f[0], old));
	/* 61 %: still on (hysteresis); 59 %: off, full deadlines again */
	mry_flow_set_pressure(t, 61, 17 * SEC);
	cr_assert(mry_flow_emergency(t));
	mry_flow_set_pressure(t, 59, 17 * SEC);
	cr_assert(not(mry_flow_emergency(t)));
	g = mk_flow(t, CLIENT, 3, 17 * SEC);
	mry_flow_set_phase(t, g, MRY_FLOW_PHASE_CMD, 17 * SEC);
	cr_assert(eq(u64, mry_flow_deadline(t, g), 57 * SEC));
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u64, st.emergency_entered, 1));
	cr_assert(eq(u64, st.emergency_exited, 1));
	cr_assert(eq(u64, st.emergency_shortened, 1));
	cr_assert(eq(u64, st.emergency, 0));
	mry_flow_table_destroy(t);
}

Test(flow, own_flow_use_enters_emergency_mode)
{
	struct mry_flow_config c = test_cfg(10);
	struct mry_flow_table *t;
	struct mry_flow_stats st;

	c.emergency_high_pct = 80;
	c.emergency_low_pct = 60;
	c.emergency_timeout_pct = 50;
	t = mk_table(&c);
	for (uint16_t i = 0; i < 7; i++)
		mk_flow(t, CLIENT, (uint16_t)(1 + i), 0);
	mry_flow_expire(t, 0);
	cr_assert(not(mry_flow_emergency(t)));
	mk_flow(t, CLIENT, 100, 0);
	mry_flow_expire(t, 0);
	cr_assert(mry_flow_emergency(t));
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u64, st.pressure_pct, 80));
	/* the eight 10 s half-open deadlines were cut to 5 s */
	mry_flow_expire(t, 5 * SEC);
	cr_assert(eq(u32, ends.n, 8));
	mry_flow_expire(t, 5 * SEC);
	cr_assert(not(mry_flow_emergency(t)));
	mry_flow_table_destroy(t);
}

Test(flow, emergency_cut_is_bounded_per_expire_call)
{
	struct mry_flow_config c = test_cfg(64);
	struct mry_flow_table *t;
	struct mry_flow_stats st;

	c.emergency_high_pct = 80;
	c.emergency_low_pct = 10;
	c.expire_budget = 4;
	t = mk_table(&c);
	for (uint16_t i = 0; i < 20; i++)
		mry_flow_set_phase(t, mk_flow(t, CLIENT, (uint16_t)(1 + i), 0),
				   MRY_FLOW_PHASE_CMD, 0);
	mry_flow_set_pressure(t, 90, 0);
	mry_flow_expire(t, 0);
	mry_flow_get_stats(t, &st);
	cr_assert(le(u64, st.emergency_shortened, 4));
	for (int i = 0; i < 16; i++)
		mry_flow_expire(t, 0);
	mry_flow_get_stats(t, &st);
	cr_assert(eq(u64, st.emergency_shortened, 20));
	mry_flow_table_destroy(t);
}

Test(flow, bad_emergency_settings_are_refused)
{
	struct mry_flow_config c = test_cfg(16);

	c.emergency_high_pct = 50;
	c.emergency_low_pct = 70;
	cr_assert_null(mry_flow_table_create(mry_alloc_default(), &c, NULL, NULL));
	c.emergency_low_pct = 40;
	c.emergency_timeout_pct = 120;
	cr_assert_null(mry_flow_table_create(mry_alloc_default(), &c, NULL, NULL));
}

Test(flow, names_of_phases_and_classes)
{
	cr_assert_str_eq(mry_flow_phase_name(MRY_FLOW_PHASE_DATA_INIT), "data_init");
	cr_assert_str_eq(mry_flow_phase_name(MRY_FLOW_PHASE_DATA_END), "data_end");
	cr_assert_str_eq(mry_flow_phase_name(MRY_FLOW_PHASE_CLOSING), "closing");
	cr_assert_str_eq(mry_flow_evict_class_name(MRY_FLOW_EVICT_DATA_SLOW), "data_slow");
	cr_assert_str_eq(mry_flow_phase_name(MRY_FLOW_PHASE_MAX), "unknown");
}
