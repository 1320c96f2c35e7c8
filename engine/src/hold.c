/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The hold store and the hold queue. A message whose data began while no
 * usable generation existed is copied here, chunk by chunk, until it can be
 * judged; the queue keeps held messages in arrival order so the oldest is
 * released (or times out) first. The store has a byte cap and a message cap:
 * past either, the message is tempfailed, never forwarded unjudged.
 */
#include <inttypes.h>
#include <string.h>

#include "engine_priv.h"

/* ---- hold store ------------------------------------------------------------ */

void mry_hold_free_bytes(struct mry_engine *e, struct msg *m)
{
	struct hold_chunk *c = m->chunks, *n;

	while (c != NULL) {
		n = c->next;
		mry_pool_put(e->chunk_pool, c);
		c = n;
	}
	m->chunks = NULL;
	m->chunk_tail = NULL;
	if (m->eom_frame != NULL) {
		mry_pool_put(e->chunk_pool, (uint8_t *)m->eom_frame -
			     offsetof(struct hold_chunk, data));
		m->eom_frame = NULL;
	}
	e->st.hold_bytes -= m->hold_bytes;
	m->hold_bytes = 0;
}

void mry_hold_store_full(struct mry_engine *e, struct msg *m)
{
	uint64_t sup = 0;

	m->store_full = true;
	mry_hold_free_bytes(e, m);
	e->st.hold_store_full++;
	note_evasion(e, m->sess, EV_HOLD_STORE_FULL);
	if (mry_ratelimit_ok(&e->rl_hold_full, e->now_ns, 10 * MRY_NS_PER_SEC, &sup))
		mry_log(MRY_LOG_WARNING, MOD,
			"hold store full (%" PRIu64 " bytes cap): message %s:%u #%u will be tempfailed (%" PRIu64 " more since last line)",
			e->cfg.hold_store_bytes, m->conn.src, m->conn.sport, m->index, sup);
}

void mry_hold_keep_frame(struct mry_engine *e, struct msg *m, const uint8_t *frame,
			 uint32_t len)
{
	struct hold_chunk *c;

	if (m->eom_frame != NULL || e->chunk_pool == NULL ||
	    len > HOLD_CHUNK - sizeof(struct hold_chunk) ||
	    e->st.hold_bytes + HOLD_CHUNK > e->cfg.hold_store_bytes)
		return;
	c = mry_pool_get(e->chunk_pool);
	if (c == NULL)
		return;
	c->next = NULL;
	c->len = len;
	memcpy(c->data, frame, len);
	m->eom_frame = c->data;
	m->eom_frame_len = len;
	m->hold_bytes += HOLD_CHUNK;
	e->st.hold_bytes += HOLD_CHUNK;
}

void mry_hold_append(struct mry_engine *e, struct msg *m, const uint8_t *d, size_t len)
{
	const size_t room = HOLD_CHUNK - sizeof(struct hold_chunk);

	while (len > 0 && !m->store_full) {
		struct hold_chunk *c = m->chunk_tail;
		size_t n;

		if (c == NULL || c->len == room) {
			if (e->st.hold_bytes + HOLD_CHUNK > e->cfg.hold_store_bytes ||
			    (c = mry_pool_get(e->chunk_pool)) == NULL) {
				mry_hold_store_full(e, m);
				return;
			}
			if (m->chunk_tail != NULL)
				m->chunk_tail->next = c;
			else
				m->chunks = c;
			m->chunk_tail = c;
			m->hold_bytes += HOLD_CHUNK;
			e->st.hold_bytes += HOLD_CHUNK;
		}
		n = MRY_MIN(len, room - c->len);
		memcpy(c->data + c->len, d, n);
		c->len += (uint32_t)n;
		d += n;
		len -= n;
	}
}

void mry_hold_queue_add(struct mry_engine *e, struct msg *m)
{
	m->hold_prev = e->hold_tail;
	m->hold_next = NULL;
	if (e->hold_tail != NULL)
		e->hold_tail->hold_next = m;
	else
		e->hold_head = m;
	e->hold_tail = m;
	e->st.hold_msgs++;
	m->sess->flow->flags |= MRY_FLOW_F_HELD;
}

void mry_hold_queue_del(struct mry_engine *e, struct msg *m)
{
	if (m->hold_prev != NULL)
		m->hold_prev->hold_next = m->hold_next;
	else
		e->hold_head = m->hold_next;
	if (m->hold_next != NULL)
		m->hold_next->hold_prev = m->hold_prev;
	else
		e->hold_tail = m->hold_prev;
	m->hold_next = m->hold_prev = NULL;
	e->st.hold_msgs--;
	m->sess->flow->flags &= (uint8_t)~MRY_FLOW_F_HELD;
	/* released or answered: the wait for the final reply (DATA_END) or
	 * the next command starts now, not when the message ended */
	mry_flow_rearm(e->flows, m->sess->flow, e->now_ns);
}
