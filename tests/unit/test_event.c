/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The verdict-log JSON writer: every event line a consumer parses goes
 * through it, so escaping, numbers, timestamps, nesting and the overflow
 * rule (a truncated event is dropped, never emitted half-written) are
 * checked byte for byte.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <string.h>

#include "moray/event.h"

static char buf[512];
static struct mry_json J;

static char *finish(void)
{
	size_t n = mry_json_end(&J);

	cr_assert(ne(sz, n, 0), "unexpected overflow");
	cr_assert(eq(sz, n, strlen(buf)));
	return buf;
}

TestSuite(event, .init = NULL);

Test(event, members_are_separated_and_typed)
{
	mry_json_begin(&J, buf, sizeof(buf));
	mry_json_str(&J, "a", "x");
	mry_json_u64(&J, "n", 0);
	mry_json_u64(&J, "max", UINT64_MAX);
	mry_json_bool(&J, "t", true);
	mry_json_bool(&J, "f", false);
	mry_json_str(&J, "null", NULL);
	cr_assert(eq(str, finish(),
		     "{\"a\":\"x\",\"n\":0,\"max\":18446744073709551615,\"t\":true,\"f\":false,"
		     "\"null\":null}"));
}

Test(event, strings_are_escaped_as_json_requires)
{
	const char in[] = "q\"b\\c\x01\x1f\x7f tab\t nl\n end";

	mry_json_begin(&J, buf, sizeof(buf));
	mry_json_strn(&J, "s", in, sizeof(in) - 1);
	cr_assert(eq(str, finish(),
		     "{\"s\":\"q\\\"b\\\\c\\u0001\\u001f\\u007f tab\\u0009 nl\\u000a end\"}"));
}

Test(event, valid_utf8_passes_invalid_bytes_are_escaped)
{
	/* é (2 bytes), € (3), 😀 (4); then a lone continuation byte, an
	 * overlong lead 0xc0, a truncated 3-byte sequence at the end */
	const char in[] = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\x80|\xc0\xaf|\xe2\x82";

	mry_json_begin(&J, buf, sizeof(buf));
	mry_json_strn(&J, "u", in, sizeof(in) - 1);
	cr_assert(eq(str, finish(),
		     "{\"u\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\\u0080|\\u00c0\\u00af|"
		     "\\u00e2\\u0082\"}"));
}

Test(event, timestamps_are_rfc3339_utc_with_microseconds)
{
	mry_json_begin(&J, buf, sizeof(buf));
	mry_json_ts(&J, "a", 0);
	/* 2026-11-30T08:15:21.000123Z, then the same second again (cached
	 * date part) and the next second */
	mry_json_ts(&J, "b", 1796026521000123456ull);
	mry_json_ts(&J, "c", 1796026521999999999ull);
	mry_json_ts(&J, "d", 1796026522000000000ull);
	cr_assert(eq(str, finish(),
		     "{\"a\":\"1970-01-01T00:00:00.000000Z\",\"b\":\"2026-11-30T08:15:21.000123Z\","
		     "\"c\":\"2026-11-30T08:15:21.999999Z\",\"d\":\"2026-11-30T08:15:22.000000Z\"}"));
}

Test(event, arrays_and_objects_nest)
{
	mry_json_begin(&J, buf, sizeof(buf));
	mry_json_array_begin(&J, "rcpt");
	mry_json_array_str(&J, "a@x");
	mry_json_array_str(&J, "b@y");
	mry_json_array_end(&J);
	mry_json_array_begin(&J, "empty");
	mry_json_array_end(&J);
	mry_json_array_begin(&J, "sigs");
	mry_json_object_begin(&J, NULL);
	mry_json_str(&J, "name", "Eicar");
	mry_json_u64(&J, "id", 7);
	mry_json_object_end(&J);
	mry_json_array_end(&J);
	mry_json_u64(&J, "after", 1);
	cr_assert(eq(str, finish(),
		     "{\"rcpt\":[\"a@x\",\"b@y\"],\"empty\":[],\"sigs\":[{\"name\":\"Eicar\",\"id\":7}],"
		     "\"after\":1}"));
}

Test(event, overflow_drops_the_event_whole)
{
	char small[24];

	memset(small, 'Z', sizeof(small));
	mry_json_begin(&J, small, sizeof(small));
	mry_json_str(&J, "k", "0123456789");
	mry_json_str(&J, "l", "0123456789");
	cr_assert(eq(sz, mry_json_end(&J), 0));
	cr_assert(J.overflow);
	/* never written past the buffer, and what is there stays terminated */
	cr_assert(lt(sz, strlen(small), sizeof(small)));

	mry_json_begin(&J, small, 1);
	cr_assert(eq(sz, mry_json_end(&J), 0));
}

Test(event, an_exact_fit_is_not_an_overflow)
{
	char exact[sizeof("{\"k\":\"v\"}")];

	mry_json_begin(&J, exact, sizeof(exact));
	mry_json_str(&J, "k", "v");
	cr_assert(eq(sz, mry_json_end(&J), sizeof(exact) - 1));
	cr_assert(eq(str, exact, "{\"k\":\"v\"}"));
}
