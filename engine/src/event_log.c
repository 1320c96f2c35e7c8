/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The verdict-log events: every event type is formatted here, for moray
 * (workers and control thread) and moray-scan alike, so the two programs'
 * logs carry the same field names, units and nulls. The fields are those of
 * docs/verdict-log.schema.json; a change here is a change there.
 */
#include <string.h>

#include "moray/blocklist.h"
#include "moray/engine.h"
#include "moray/event.h"
#include "moray/flow.h"
#include "moray/scan.h"
#include "moray/sigdb.h"

/* Every per-connection event starts alike: kind, time, connection (client first). */
static void begin_conn(struct mry_json *j, char *buf, size_t cap, const char *event,
		       uint64_t ts_ns, const struct mry_engine_conn *c)
{
	mry_json_begin(j, buf, cap);
	mry_json_str(j, "event", event);
	mry_json_ts(j, "ts", ts_ns);
	mry_json_str(j, "src", c->src);
	mry_json_u64(j, "sport", c->sport);
	mry_json_str(j, "dst", c->dst);
	mry_json_u64(j, "dport", c->dport);
}

/*
 * A string field of a control-path event, cut to @max bytes when longer:
 * its first bytes and MRY_EVENT_CUT_MARK, so the event keeps its bound
 * (event.h) and the log shows the cut. NULL is written as null.
 */
static void str_cut(struct mry_json *j, const char *key, const char *val, size_t max)
{
	static _Thread_local char tmp[MRY_EVENT_FILE_MAX + 1];
	size_t n = val != NULL ? strlen(val) : 0, keep;

	if (n <= max) {
		mry_json_str(j, key, val);
		return;
	}
	keep = max - (sizeof(MRY_EVENT_CUT_MARK) - 1);
	memcpy(tmp, val, keep);
	memcpy(tmp + keep, MRY_EVENT_CUT_MARK, sizeof(MRY_EVENT_CUT_MARK));
	mry_json_strn(j, key, tmp, max);
}

_Static_assert(MRY_EVENT_FILE_MAX >= MRY_EVENT_REASON_MAX &&
	       MRY_EVENT_REASON_MAX >= MRY_EVENT_NAME_MAX &&
	       MRY_EVENT_NAME_MAX > sizeof(MRY_EVENT_CUT_MARK),
	       "str_cut's buffer holds every cut field, each longer than the mark");
_Static_assert(MRY_SIGDB_REASON_MAX - 1 <= MRY_EVENT_REASON_MAX,
	       "a database reason is never cut");

static void generation(struct mry_json *j, uint64_t g)
{
	if (g != 0)
		mry_json_u64(j, "generation", g);
	else
		mry_json_null(j, "generation");
}

size_t mry_event_message(char *buf, size_t cap, uint64_t ts_ns, const struct mry_event_msg *m)
{
	const struct mry_scan_result *res = m->res;
	const char *r = m->rcpt;
	struct mry_json j;
	uint32_t i;

	begin_conn(&j, buf, cap, "message", ts_ns, m->conn);
	mry_json_u64(&j, "msg_index", m->msg_index);
	mry_json_str(&j, "mail_from", m->mail_from);
	mry_json_array_begin(&j, "rcpt_to");
	for (i = 0; i < m->nb_rcpt; i++) {
		mry_json_array_str(&j, r);
		r += strlen(r) + 1;
	}
	mry_json_array_end(&j);
	mry_json_u64(&j, "size", m->size);
	generation(&j, m->generation);
	mry_json_str(&j, "verdict", m->verdict);
	if (m->server_reply != 0)
		mry_json_u64(&j, "server_reply", m->server_reply);
	else
		mry_json_null(&j, "server_reply");
	mry_json_str(&j, "action", m->action);
	mry_json_array_begin(&j, "signatures");
	for (i = 0; res != NULL && i < res->nb_sigs; i++) {
		mry_json_object_begin(&j, NULL);
		mry_json_u64(&j, "id", res->sig_ids[i]);
		mry_json_str(&j, "name", res->sig_names[i]);
		mry_json_object_end(&j);
	}
	mry_json_array_end(&j);
	mry_json_array_begin(&j, "evasions");
	for (i = 0; i < m->nb_evasions; i++)
		mry_json_array_str(&j, m->evasions[i]);
	mry_json_array_end(&j);
	if (m->held)
		mry_json_u64(&j, "held_ms", m->held_ms);
	if (m->reason != NULL)
		mry_json_str(&j, "reason", m->reason);
	return mry_json_end(&j);
}

size_t mry_event_hold(char *buf, size_t cap, uint64_t ts_ns, const char *event,
		      const struct mry_engine_conn *c, uint32_t msg_index, uint64_t size,
		      const char *reason)
{
	struct mry_json j;

	begin_conn(&j, buf, cap, event, ts_ns, c);
	mry_json_u64(&j, "msg_index", msg_index);
	mry_json_u64(&j, "size", size);
	if (reason != NULL)
		mry_json_str(&j, "reason", reason);
	return mry_json_end(&j);
}

size_t mry_event_flow(char *buf, size_t cap, uint64_t ts_ns, const struct mry_engine_conn *c,
		      const char *reason)
{
	return mry_event_flow_evasions(buf, cap, ts_ns, c, reason, NULL, 0);
}

size_t mry_event_flow_evasions(char *buf, size_t cap, uint64_t ts_ns,
			       const struct mry_engine_conn *c, const char *reason,
			       const char *const *evasions, uint32_t n)
{
	struct mry_json j;
	uint32_t i;

	begin_conn(&j, buf, cap, "flow", ts_ns, c);
	mry_json_str(&j, "reason", reason);
	if (n > 0) {
		mry_json_array_begin(&j, "evasions");
		for (i = 0; i < n; i++)
			mry_json_array_str(&j, evasions[i]);
		mry_json_array_end(&j);
	}
	return mry_json_end(&j);
}

size_t mry_event_db(char *buf, size_t cap, uint64_t ts_ns, const struct mry_event_db *d)
{
	struct mry_json j;

	mry_json_begin(&j, buf, cap);
	mry_json_str(&j, "event", "db");
	mry_json_ts(&j, "ts", ts_ns);
	generation(&j, d->generation);
	mry_json_str(&j, "state", d->valid ? "valid" : "invalid");
	str_cut(&j, "reason", d->reason, MRY_EVENT_REASON_MAX);
	str_cut(&j, "file", d->file, MRY_EVENT_FILE_MAX);
	str_cut(&j, "offer", d->offer, MRY_EVENT_NAME_MAX);
	return mry_json_end(&j);
}

size_t mry_event_alarm(char *buf, size_t cap, uint64_t ts_ns, bool alarm, const char *reasons)
{
	struct mry_json j;

	mry_json_begin(&j, buf, cap);
	mry_json_str(&j, "event", "alarm");
	mry_json_ts(&j, "ts", ts_ns);
	mry_json_bool(&j, "alarm", alarm);
	str_cut(&j, "reason", reasons, MRY_EVENT_REASON_MAX);
	return mry_json_end(&j);
}

size_t mry_event_shed(char *buf, size_t cap, uint64_t ts_ns, const char *reason,
		      uint64_t count, uint64_t interval_ms, const uint64_t *phases,
		      unsigned nb_phases, const struct mry_event_shed_src *top, unsigned nb_top)
{
	struct mry_json j;

	mry_json_begin(&j, buf, cap);
	mry_json_str(&j, "event", "shed");
	mry_json_ts(&j, "ts", ts_ns);
	mry_json_str(&j, "reason", reason);
	mry_json_u64(&j, "count", count);
	mry_json_u64(&j, "interval_ms", interval_ms);
	mry_json_object_begin(&j, "phases");
	for (unsigned i = 0; i < nb_phases; i++)
		mry_json_u64(&j, mry_flow_phase_name((enum mry_flow_phase)i), phases[i]);
	mry_json_object_end(&j);
	mry_json_array_begin(&j, "top_sources");
	for (unsigned i = 0; i < nb_top; i++) {
		mry_json_object_begin(&j, NULL);
		mry_json_str(&j, "src", top[i].src);
		mry_json_u64(&j, "count", top[i].count);
		mry_json_object_end(&j);
	}
	mry_json_array_end(&j);
	return mry_json_end(&j);
}

size_t mry_event_blocklist(char *buf, size_t cap, uint64_t ts_ns, const char *action,
			   const struct mry_blocklist_entry *e, uint64_t entries)
{
	struct mry_json j;
	char pfx[MRY_EVENT_BLOCKLIST_PREFIX_MAX + 1];

	mry_json_begin(&j, buf, cap);
	mry_json_str(&j, "event", "blocklist");
	mry_json_ts(&j, "ts", ts_ns);
	str_cut(&j, "action", action, MRY_EVENT_NAME_MAX);
	if (e != NULL && mry_blocklist_format_entry(e, pfx, sizeof(pfx)) == 0)
		mry_json_str(&j, "prefix", pfx);
	else
		mry_json_null(&j, "prefix");
	if (e != NULL && e->expires_ns != 0)
		mry_json_ts(&j, "expires", e->expires_ns);
	else
		mry_json_null(&j, "expires");
	mry_json_u64(&j, "entries", entries);
	return mry_json_end(&j);
}

size_t mry_event_emergency(char *buf, size_t cap, uint64_t ts_ns, bool on,
			   uint32_t pressure_pct, const char *pool, uint32_t high_pct,
			   uint32_t low_pct)
{
	struct mry_json j;

	mry_json_begin(&j, buf, cap);
	mry_json_str(&j, "event", "emergency");
	mry_json_ts(&j, "ts", ts_ns);
	mry_json_bool(&j, "emergency", on);
	mry_json_u64(&j, "pressure_pct", pressure_pct);
	mry_json_str(&j, "pool", pool);
	mry_json_u64(&j, "high_pct", high_pct);
	mry_json_u64(&j, "low_pct", low_pct);
	return mry_json_end(&j);
}
