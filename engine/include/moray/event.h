/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Verdict-log events as JSON lines (DESIGN.md, "Interfaces"). A tiny
 * bounded JSON writer: events are built per message, never per packet.
 */
#ifndef MORAY_EVENT_H
#define MORAY_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mry_json {
	char *buf;
	size_t cap;
	size_t len;
	bool first;       /* no comma before the next member */
	bool overflow;    /* output truncated: the event is dropped and counted */
};

void mry_json_begin(struct mry_json *j, char *buf, size_t cap);
/** Finish the object; returns its length, or 0 on overflow. */
size_t mry_json_end(struct mry_json *j);
void mry_json_str(struct mry_json *j, const char *key, const char *val);
void mry_json_strn(struct mry_json *j, const char *key, const char *val, size_t n);
void mry_json_u64(struct mry_json *j, const char *key, uint64_t v);
void mry_json_bool(struct mry_json *j, const char *key, bool v);
/** RFC 3339 UTC timestamp with microseconds from unix-epoch nanoseconds. */
void mry_json_ts(struct mry_json *j, const char *key, uint64_t unix_ns);
void mry_json_array_begin(struct mry_json *j, const char *key);
void mry_json_array_str(struct mry_json *j, const char *val);
void mry_json_array_end(struct mry_json *j);
void mry_json_object_begin(struct mry_json *j, const char *key);  /* key NULL inside arrays */
void mry_json_object_end(struct mry_json *j);
/* raw escaped string (no key), for array members inside objects */
void mry_json_raw(struct mry_json *j, const char *s);
/** JSON null: a field whose value is "none". */
void mry_json_null(struct mry_json *j, const char *key);

/*
 * The verdict-log events, one formatter per event type, shared by the
 * engine, the app's control thread and moray-scan so both programs write
 * the same fields (docs/verdict-log.schema.json describes them). Each
 * writes one JSON object (no newline) into buf and returns its length, or
 * 0 when it did not fit. Timestamps are unix-epoch nanoseconds, written as
 * RFC 3339 UTC with microseconds; NULL strings are written as null.
 */
struct mry_blocklist_entry;
struct mry_engine_conn;

/*
 * Bounds of the control-path events (db, alarm, blocklist), so their
 * callers can size a buffer that every event fits: test_event builds each
 * with every field at its bound (and past it) and shows it is written.
 * A string field longer than its bound is cut and ends with
 * MRY_EVENT_CUT_MARK, so a cut is visible in the log, never a lost event.
 */
#define MRY_EVENT_TS_LEN 27             /* "2554-07-21T23:34:33.709551Z" */
#define MRY_EVENT_ESC 6                 /* most bytes one input byte costs (\u00XX) */
#define MRY_EVENT_CUT_MARK "...[cut]"
#define MRY_EVENT_FILE_MAX 4095         /* "file" bytes kept: PATH_MAX - 1 */
#define MRY_EVENT_REASON_MAX 255        /* "reason" bytes kept (db, alarm) */
#define MRY_EVENT_NAME_MAX 31           /* "offer", "action" bytes kept */
#define MRY_EVENT_FIXED_MAX 256         /* keys, punctuation, numbers, timestamps */
#define MRY_EVENT_DB_MAX (MRY_EVENT_FIXED_MAX + MRY_EVENT_ESC * \
			  (MRY_EVENT_FILE_MAX + MRY_EVENT_REASON_MAX + MRY_EVENT_NAME_MAX))
#define MRY_EVENT_ALARM_MAX (MRY_EVENT_FIXED_MAX + MRY_EVENT_ESC * MRY_EVENT_REASON_MAX)
#define MRY_EVENT_BLOCKLIST_MAX (MRY_EVENT_FIXED_MAX + MRY_EVENT_ESC * MRY_EVENT_NAME_MAX + \
				 MRY_EVENT_BLOCKLIST_PREFIX_MAX)
#define MRY_EVENT_BLOCKLIST_PREFIX_MAX 43 /* "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128" */
struct mry_scan_result;

/** A message event's fields. */
struct mry_event_msg {
	const struct mry_engine_conn *conn;
	uint32_t msg_index;
	const char *mail_from;
	const char *rcpt;                  /* nb_rcpt NUL-terminated addresses, back to back */
	uint32_t nb_rcpt;
	uint64_t size;
	uint64_t generation;               /* 0: none (null) */
	const char *verdict;
	const char *action;
	const struct mry_scan_result *res; /* signatures; NULL: none */
	const char *const *evasions;       /* anomaly names */
	uint32_t nb_evasions;
	bool held;                         /* held_ms is written */
	uint64_t held_ms;
	const char *reason;                /* NULL: no reason field */
	uint16_t server_reply;             /* server's final reply to the end; 0: none (null) */
};

/** A database event's fields (strings cut at the bounds above). */
struct mry_event_db {
	uint64_t generation;               /* active generation, 0: none (null) */
	bool valid;
	const char *reason;
	const char *file;                  /* offered file; NULL: none */
	const char *offer;                 /* offer outcome; NULL: not after an offer */
};

size_t mry_event_message(char *buf, size_t cap, uint64_t ts_ns, const struct mry_event_msg *m);
/** "hold" or "release" (@event) of message @msg_index on @c; @reason may be NULL. */
size_t mry_event_hold(char *buf, size_t cap, uint64_t ts_ns, const char *event,
		      const struct mry_engine_conn *c, uint32_t msg_index, uint64_t size,
		      const char *reason);
/* One source of an aggregated "shed" event. */
struct mry_event_shed_src {
	char src[48];
	uint64_t count;
};

/**
 * {"event":"shed","ts":..,"reason":..,"count":N,"interval_ms":N,"phases":{..},
 *  "top_sources":[{"src":..,"count":n}, ...]}: flows moray ended for @reason
 * during the interval, by phase (names from mry_flow_phase_name()).
 */
size_t mry_event_shed(char *buf, size_t cap, uint64_t ts_ns, const char *reason,
		      uint64_t count, uint64_t interval_ms, const uint64_t *phases,
		      unsigned nb_phases, const struct mry_event_shed_src *top, unsigned nb_top);
size_t mry_event_flow(char *buf, size_t cap, uint64_t ts_ns, const struct mry_engine_conn *c,
		      const char *reason);
/** A flow event that also lists anomalies no message took (@n names). */
size_t mry_event_flow_evasions(char *buf, size_t cap, uint64_t ts_ns,
			       const struct mry_engine_conn *c, const char *reason,
			       const char *const *evasions, uint32_t n);
/** Fits MRY_EVENT_DB_MAX bytes whatever the lengths of its strings. */
size_t mry_event_db(char *buf, size_t cap, uint64_t ts_ns, const struct mry_event_db *d);
/**
 * The alarm turned on or off; @reasons: comma-separated causes, "" when off.
 * Fits MRY_EVENT_ALARM_MAX bytes.
 */
size_t mry_event_alarm(char *buf, size_t cap, uint64_t ts_ns, bool alarm, const char *reasons);
/**
 * {"event":"blocklist","ts":..,"action":..,"prefix":..,"expires":..,"entries":N}:
 * the runtime blocklist changed. @action is "block", "unblock" or "load";
 * @e the prefix blocked or unblocked ("prefix" in CIDR form, "expires" its
 * expiry or null for never), NULL when the change names no prefix (a file
 * (re)load, expired prefixes pruned): both fields null. @entries: prefixes
 * in the list after the change. Fits MRY_EVENT_BLOCKLIST_MAX bytes.
 */
size_t mry_event_blocklist(char *buf, size_t cap, uint64_t ts_ns, const char *action,
			   const struct mry_blocklist_entry *e, uint64_t entries);
/**
 * {"event":"emergency","ts":..,"emergency":bool,"pressure_pct":N,"pool":..,
 *  "high_pct":N,"low_pct":N}: a worker's emergency mode turned on (@on, the
 * fullest pool @pool at or above @high_pct) or off (below @low_pct).
 */
size_t mry_event_emergency(char *buf, size_t cap, uint64_t ts_ns, bool on,
			   uint32_t pressure_pct, const char *pool, uint32_t high_pct,
			   uint32_t low_pct);

#endif /* MORAY_EVENT_H */
