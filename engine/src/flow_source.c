/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-source accounting of the flow table: one entry per client address
 * (flows, flows in DATA, bytes when asked), found through an open-addressing
 * index; the per-source cap and the top talkers read it (flow_table.c has
 * the layout and the reasons).
 */
#include <string.h>

#include "flow_priv.h"

uint32_t flow_src_hash(uint8_t ip_version, const uint8_t *addr)
{
	uint64_t h = HASH_K1 ^ ip_version;

	h = hash_round(h, load64(addr));
	h = hash_round(h, load64(addr + 8));
	return hash_final(h);
}

/* ---- sources ----------------------------------------------------------- */

/* Index slot of the source (@ver, @addr), or of the empty slot ending its probe. */
static uint32_t src_slot(const struct mry_flow_table *t, uint8_t ver,
			 const uint8_t *addr, uint32_t h, bool *found)
{
	uint32_t i = h & t->src_idx_mask;

	for (;;) {
		const struct flow_idx *e = &t->src_idx[i];

		if (e->slot == FLOW_IDX_EMPTY) {
			*found = false;
			return i;
		}
		if (e->hash == h) {
			const struct flow_src *x = &t->src[e->slot];

			if (src_ver(x) == ver && memcmp(x->addr, addr, 16) == 0) {
				*found = true;
				return i;
			}
		}
		i = (i + 1) & t->src_idx_mask;
	}
}

static const struct flow_src *src_lookup(const struct mry_flow_table *t, uint8_t ver,
					 const uint8_t *addr)
{
	bool found;
	uint32_t i = src_slot(t, ver, addr, flow_src_hash(ver, addr), &found);

	return found ? &t->src[t->src_idx[i].slot] : NULL;
}

uint32_t flow_src_get(const struct mry_flow_table *t, uint8_t ver,
			const uint8_t *addr)
{
	const struct flow_src *e = src_lookup(t, ver, addr);

	return e != NULL ? src_count(e) : 0;
}

/* One more flow of source (@ver, @addr) (@counted: as a connection);
 * returns its id. Never fails: there are as many entries as flow slots. */
uint32_t flow_src_acquire(struct mry_flow_table *t, uint8_t ver, const uint8_t *addr,
			  bool counted)
{
	uint32_t h = flow_src_hash(ver, addr), id, i;
	bool found;
	struct flow_src *e;

	i = src_slot(t, ver, addr, h, &found);
	if (found) {
		id = t->src_idx[i].slot;
		t->src[id].refs++;
		t->src[id].flows += counted;
		return id;
	}
	id = t->src_free;
	MRY_ASSERT(id != UINT32_MAX);
	e = &t->src[id];
	t->src_free = e->data_flows;
	memcpy(e->addr, addr, 16);
	e->ver = ver;
	e->refs = 1;
	e->flows = counted;
	e->data_flows = 0;
	e->bytes = 0;
	t->src_idx[i].hash = h;
	t->src_idx[i].slot = id;
	t->nb_sources++;
	return id;
}

/* One flow fewer for source @id, taking its connection and DATA counts
 * along. */
void flow_src_release(struct mry_flow_table *t, uint32_t id, bool in_data,
		      bool counted)
{
	struct flow_src *e = &t->src[id];
	uint32_t h, i, j;
	bool found;

	if (in_data && e->data_flows > 0)
		e->data_flows--;
	if (counted && e->flows > 0)
		e->flows--;
	e->refs--;
	if (e->refs != 0)
		return;
	h = flow_src_hash(src_ver(e), e->addr);
	i = src_slot(t, src_ver(e), e->addr, h, &found);
	MRY_ASSERT(found);
	/* backward-shift deletion, as idx_remove() */
	j = i;
	for (;;) {
		uint32_t home;

		j = (j + 1) & t->src_idx_mask;
		if (t->src_idx[j].slot == FLOW_IDX_EMPTY)
			break;
		home = t->src_idx[j].hash & t->src_idx_mask;
		if (((j - home) & t->src_idx_mask) >= ((j - i) & t->src_idx_mask)) {
			t->src_idx[i] = t->src_idx[j];
			i = j;
		}
	}
	t->src_idx[i].slot = FLOW_IDX_EMPTY;
	t->src_idx[i].hash = 0;
	memset(e, 0, sizeof(*e));
	e->data_flows = t->src_free;
	t->src_free = id;
	t->nb_sources--;
}

uint32_t mry_flow_source_count(const struct mry_flow_table *t,
			       uint8_t ip_version, const uint8_t *addr)
{
	uint8_t a[16] = {0};

	memcpy(a, addr, ip_version == 6 ? 16 : 4);
	return flow_src_get(t, ip_version, a);
}
static uint64_t top_value(const struct mry_flow_source *s, enum mry_flow_top_key key)
{
	switch (key) {
	case MRY_FLOW_TOP_DATA_FLOWS:
		return s->data_flows;
	case MRY_FLOW_TOP_BYTES:
		return s->bytes;
	case MRY_FLOW_TOP_FLOWS:
	default:
		return s->flows;
	}
}

/* @a ranks before @b */
static bool top_before(const struct mry_flow_source *a, const struct mry_flow_source *b,
		       enum mry_flow_top_key key)
{
	uint64_t va = top_value(a, key), vb = top_value(b, key);
	int c;

	if (va != vb)
		return va > vb;
	if (a->flows != b->flows)
		return a->flows > b->flows;
	if (a->ip_version != b->ip_version)
		return a->ip_version < b->ip_version;
	c = memcmp(a->addr, b->addr, 16);
	return c < 0;
}

uint32_t mry_flow_top_sources(struct mry_flow_table *t,
			      enum mry_flow_top_key key, uint32_t n,
			      struct mry_flow_source *out)
{
	uint32_t nb = 0, id;

	if (n == 0 || out == NULL)
		return 0;
	for (id = 0; id < t->max_flows; id++)
		t->src[id].bytes = 0;
	for (id = 0; id < t->max_flows; id++)
		if (t->nodes[id].in_use)
			t->src[t->nodes[id].src_id].bytes += t->nodes[id].bytes;
	for (id = 0; id < t->max_flows; id++) {
		const struct flow_src *e = &t->src[id];
		struct mry_flow_source s;
		uint32_t pos;

		if (e->refs == 0)
			continue;
		memset(&s, 0, sizeof(s));
		memcpy(s.addr, e->addr, 16);
		s.ip_version = src_ver(e);
		s.flows = src_count(e);
		s.data_flows = e->data_flows;
		s.bytes = e->bytes;
		if (nb == n && !top_before(&s, &out[n - 1], key))
			continue;
		/* insertion into the sorted prefix */
		pos = nb < n ? nb : n - 1;
		while (pos > 0 && top_before(&s, &out[pos - 1], key)) {
			out[pos] = out[pos - 1];
			pos--;
		}
		out[pos] = s;
		if (nb < n)
			nb++;
	}
	return nb;
}

