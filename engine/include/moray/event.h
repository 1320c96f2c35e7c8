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

#endif /* MORAY_EVENT_H */
