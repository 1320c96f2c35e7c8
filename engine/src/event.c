/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Bounded JSON writer for verdict-log events. Strings are escaped per
 * RFC 8259; bytes that are not valid UTF-8 (addresses and file names come
 * from the wire) are written as \u00XX of the byte so the line stays valid
 * JSON and nothing is silently lost.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "moray/event.h"

static void put(struct mry_json *j, const char *s, size_t n)
{
	if (j->overflow || j->len + n + 1 > j->cap) {
		j->overflow = true;
		return;
	}
	memcpy(j->buf + j->len, s, n);
	j->len += n;
	j->buf[j->len] = '\0';
}

static void putc_(struct mry_json *j, char c)
{
	put(j, &c, 1);
}

/* length of a valid UTF-8 sequence at s (max n bytes), or 0 */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t need, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		need = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		need = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		need = 4;
	else
		return 0;
	if (need > n)
		return 0;
	for (i = 1; i < need; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return need;
}

/* 1 for the printable ASCII bytes a JSON string takes as they are */
static const uint8_t json_plain[256] = {
	[0x20] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,           /* not '"' */
	[0x30] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	[0x40] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	[0x50] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,           /* not '\\' */
	[0x60] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	[0x70] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,           /* not DEL */
};

static void put_escaped(struct mry_json *j, const char *v, size_t n)
{
	const unsigned char *s = (const unsigned char *)v;
	char tmp[8];
	size_t i = 0;

	putc_(j, '"');
	while (i < n) {
		unsigned char c = s[i];
		size_t ul, run = i;

		/* printable ASCII that needs no escape goes out in one copy */
		while (run < n && json_plain[s[run]])
			run++;
		if (run > i) {
			put(j, (const char *)s + i, run - i);
			i = run;
			continue;
		}

		if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			put(j, tmp, 2);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(tmp, sizeof(tmp), "\\u%04x", c);
			put(j, tmp, 6);
			i++;
		} else if ((ul = utf8_len(s + i, n - i)) > 0) {
			put(j, (const char *)s + i, ul);
			i += ul;
		} else {
			snprintf(tmp, sizeof(tmp), "\\u%04x", c);
			put(j, tmp, 6);
			i++;
		}
	}
	putc_(j, '"');
}

static void key(struct mry_json *j, const char *k)
{
	const unsigned char *s = (const unsigned char *)k;
	size_t n = 0;

	if (!j->first)
		putc_(j, ',');
	j->first = false;
	if (k == NULL)
		return;
	/* keys are the engine's own names: plain, written in one copy */
	while (json_plain[s[n]])
		n++;
	if (s[n] != '\0' || j->overflow || j->len + n + 4 > j->cap) {
		put_escaped(j, k, n + strlen(k + n));
		putc_(j, ':');
		return;
	}
	j->buf[j->len] = '"';
	memcpy(j->buf + j->len + 1, k, n);
	j->len += n + 3;
	j->buf[j->len - 2] = '"';
	j->buf[j->len - 1] = ':';
	j->buf[j->len] = '\0';
}

void mry_json_begin(struct mry_json *j, char *buf, size_t cap)
{
	j->buf = buf;
	j->cap = cap;
	j->len = 0;
	j->overflow = cap < 2;
	j->first = true;
	if (!j->overflow) {
		buf[0] = '{';
		buf[1] = '\0';
		j->len = 1;
	}
}

size_t mry_json_end(struct mry_json *j)
{
	putc_(j, '}');
	return j->overflow ? 0 : j->len;
}

void mry_json_strn(struct mry_json *j, const char *k, const char *val, size_t n)
{
	if (val == NULL) {
		mry_json_null(j, k);
		return;
	}
	key(j, k);
	put_escaped(j, val, n);
}

void mry_json_str(struct mry_json *j, const char *k, const char *val)
{
	mry_json_strn(j, k, val, val != NULL ? strlen(val) : 0);
}

void mry_json_null(struct mry_json *j, const char *k)
{
	key(j, k);
	put(j, "null", 4);
}

void mry_json_raw(struct mry_json *j, const char *s)
{
	mry_json_str(j, NULL, s);
}

/* decimal digits of @v, right-aligned in tmp[0, 20); returns the first */
static char *u64_digits(char tmp[20], uint64_t v)
{
	char *p = tmp + 20;

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	return p;
}

void mry_json_u64(struct mry_json *j, const char *k, uint64_t v)
{
	char tmp[20];
	char *p = u64_digits(tmp, v);

	key(j, k);
	put(j, p, (size_t)(tmp + 20 - p));
}

void mry_json_bool(struct mry_json *j, const char *k, bool v)
{
	key(j, k);
	put(j, v ? "true" : "false", v ? 4 : 5);
}

void mry_json_ts(struct mry_json *j, const char *k, uint64_t unix_ns)
{
	/* the date and time change once a second: format them once per
	 * second per thread, the microseconds every time */
	static _Thread_local char secs[32];
	static _Thread_local size_t secs_len;
	static _Thread_local time_t secs_of = (time_t)-1;
	char tmp[40];
	time_t t = (time_t)(unix_ns / 1000000000ULL);
	unsigned us = (unsigned)((unix_ns % 1000000000ULL) / 1000ULL);

	if (t != secs_of) {
		struct tm tm;

		gmtime_r(&t, &tm);
		secs_len = strftime(secs, sizeof(secs), "%Y-%m-%dT%H:%M:%S", &tm);
		secs_of = t;
	}
	memcpy(tmp, secs, secs_len);
	tmp[secs_len] = '.';
	for (int d = 6; d >= 1; d--) {
		tmp[secs_len + (size_t)d] = (char)('0' + us % 10);
		us /= 10;
	}
	tmp[secs_len + 7] = 'Z';
	mry_json_strn(j, k, tmp, secs_len + 8);
}

void mry_json_array_begin(struct mry_json *j, const char *k)
{
	key(j, k);
	putc_(j, '[');
	j->first = true;
}

void mry_json_array_str(struct mry_json *j, const char *val)
{
	mry_json_str(j, NULL, val);
}

void mry_json_array_end(struct mry_json *j)
{
	putc_(j, ']');
	j->first = false;
}

void mry_json_object_begin(struct mry_json *j, const char *k)
{
	key(j, k);
	putc_(j, '{');
	j->first = true;
}

void mry_json_object_end(struct mry_json *j)
{
	putc_(j, '}');
	j->first = false;
}
