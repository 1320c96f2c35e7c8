/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Option values as people write them (moray, its --config file, moray-scan):
 * numbers with k/M/G suffixes, never octal, ranges, and SMTP port lists.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>

#include "moray/common.h"

static int u64(const char *s, uint64_t min, uint64_t max, bool sfx, uint64_t *out)
{
	*out = 12345;
	return mry_parse_u64(s, min, max, sfx, out);
}

Test(parse, numbers_decimal_hex_and_sizes)
{
	uint64_t v;

	cr_assert(eq(int, u64("0", 0, 10, false, &v), 0));
	cr_assert(eq(u64, v, 0));
	cr_assert(eq(int, u64("010", 0, 100, false, &v), 0));
	cr_assert(eq(u64, v, 10), "a leading zero is not octal");
	cr_assert(eq(int, u64("0x1f", 0, 100, false, &v), 0));
	cr_assert(eq(u64, v, 31));
	cr_assert(eq(int, u64("18446744073709551615", 0, UINT64_MAX, false, &v), 0));
	cr_assert(eq(u64, v, UINT64_MAX));
	cr_assert(eq(int, u64("64k", 0, UINT64_MAX, true, &v), 0));
	cr_assert(eq(u64, v, 65536));
	cr_assert(eq(int, u64("256M", 0, UINT64_MAX, true, &v), 0));
	cr_assert(eq(u64, v, 256ull << 20));
	cr_assert(eq(int, u64("2g", 0, UINT64_MAX, true, &v), 0));
	cr_assert(eq(u64, v, 2ull << 30));
}

Test(parse, bad_numbers_are_refused_and_leave_the_output)
{
	static const char *const bad[] = {
		"", " 1", "1 ", "-1", "+1", "1x", "0x", "0xg", "12k", "k", "1.5",
		"99999999999999999999",
	};
	uint64_t v;

	for (size_t i = 0; i < MRY_ARRAY_SIZE(bad); i++) {
		cr_assert(eq(int, u64(bad[i], 0, UINT64_MAX, false, &v), -EINVAL), "'%s'", bad[i]);
		cr_assert(eq(u64, v, 12345), "'%s' wrote the output", bad[i]);
	}
	cr_assert(eq(int, u64("1kk", 0, UINT64_MAX, true, &v), -EINVAL));
	cr_assert(eq(int, u64("1T", 0, UINT64_MAX, true, &v), -EINVAL));
	cr_assert(eq(int, u64(NULL, 0, 1, false, &v), -EINVAL));
}

Test(parse, ranges_and_suffix_overflow)
{
	uint64_t v;

	cr_assert(eq(int, u64("0", 1, 10, false, &v), -ERANGE));
	cr_assert(eq(int, u64("11", 1, 10, false, &v), -ERANGE));
	cr_assert(eq(int, u64("10", 1, 10, false, &v), 0));
	cr_assert(eq(int, u64("1k", 0, 1000, true, &v), -ERANGE));
	cr_assert(eq(int, u64("17179869184G", 0, UINT64_MAX, true, &v), -ERANGE),
		  "2^34 GiB does not fit 64 bits");
	cr_assert(eq(u64, v, 12345));
}

Test(parse, port_lists)
{
	uint16_t p[4];

	cr_assert(eq(int, mry_parse_port_list("25", p, 4), 1));
	cr_assert(eq(u16, p[0], 25));
	cr_assert(eq(int, mry_parse_port_list("25,587, 2525 ,65535", p, 4), 4));
	cr_assert(eq(u16, p[1], 587));
	cr_assert(eq(u16, p[2], 2525));
	cr_assert(eq(u16, p[3], 65535));
	cr_assert(eq(int, mry_parse_port_list("1,2,3,4,5", p, 4), -E2BIG));
	static const char *const bad[] = { "", ",", "25,", ",25", "25,,587", "0", "65536",
					   "smtp", "25;587", "-25" };
	for (size_t i = 0; i < MRY_ARRAY_SIZE(bad); i++)
		cr_assert(eq(int, mry_parse_port_list(bad[i], p, 4), -EINVAL), "'%s'", bad[i]);
}

Test(parse, hex_digits)
{
	const char *d = "0123456789abcdefABCDEF";

	for (int i = 0; d[i] != '\0'; i++)
		cr_assert(eq(int, mry_hex_val(d[i]), i < 16 ? i : i - 6), "'%c'", d[i]);
	cr_assert(eq(int, mry_hex_val('g'), -1));
	cr_assert(eq(int, mry_hex_val('/'), -1));
	cr_assert(eq(int, mry_hex_val(':'), -1));
	cr_assert(eq(int, mry_hex_val('@'), -1));
	cr_assert(eq(int, mry_hex_val('`'), -1));
}
