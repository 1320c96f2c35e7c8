/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "moray/blocklist.h"
#include "moray/event.h"

#define SEC MRY_NS_PER_SEC

static bool m4(const struct mry_blocklist *bl, const char *ip, uint64_t now)
{
	uint8_t a[4];

	cr_assert(eq(int, inet_pton(AF_INET, ip, a), 1), "%s", ip);
	return mry_blocklist_match(bl, 4, a, now);
}

static bool m6(const struct mry_blocklist *bl, const char *ip, uint64_t now)
{
	uint8_t a[16];

	cr_assert(eq(int, inet_pton(AF_INET6, ip, a), 1), "%s", ip);
	return mry_blocklist_match(bl, 6, a, now);
}

static struct mry_blocklist_entry ent(const char *s)
{
	struct mry_blocklist_entry e;
	char err[128];

	cr_assert(eq(int, mry_blocklist_parse_entry(s, strlen(s), &e, err, sizeof(err)), 0),
		  "%s: %s", s, err);
	return e;
}

static struct mry_blocklist *from(const char *const *s, size_t n)
{
	char err[128] = "";
	struct mry_blocklist *bl = mry_blocklist_from_strings(mry_alloc_default(), s, n,
							      err, sizeof(err));

	cr_assert_not_null(bl, "%s", err);
	return bl;
}

Test(blocklist, ipv4_prefixes_match_inside_and_not_outside)
{
	static const char *const s[] = { "192.0.2.0/24", "198.51.100.7", "10.0.0.0/8" };
	struct mry_blocklist *bl = from(s, 3);

	cr_assert(m4(bl, "192.0.2.0", 0));
	cr_assert(m4(bl, "192.0.2.255", 0));
	cr_assert(not(m4(bl, "192.0.3.0", 0)));
	cr_assert(not(m4(bl, "192.0.1.255", 0)));
	cr_assert(m4(bl, "198.51.100.7", 0));
	cr_assert(not(m4(bl, "198.51.100.6", 0)));
	cr_assert(not(m4(bl, "198.51.100.8", 0)));
	cr_assert(m4(bl, "10.255.0.1", 0));
	cr_assert(not(m4(bl, "11.0.0.0", 0)));
	/* an IPv4 list never matches IPv6 addresses */
	cr_assert(not(m6(bl, "::ffff:192.0.2.1", 0)));
	cr_assert(not(m6(bl, "c000:200::", 0)));
	mry_blocklist_free(bl);
}

Test(blocklist, ipv6_prefixes_match_on_every_length)
{
	static const char *const s[] = { "2001:db8::/32", "2001:db9:1:2::/64",
					 "2001:dba::1", "2001:dbb:8000::/33",
					 "2001:dbc:0:0:8000::/65" };
	struct mry_blocklist *bl = from(s, 5);

	cr_assert(m6(bl, "2001:db8::", 0));
	cr_assert(m6(bl, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 0));
	cr_assert(not(m6(bl, "2001:db7:ffff::", 0)));
	cr_assert(m6(bl, "2001:db9:1:2:abcd::1", 0));
	cr_assert(not(m6(bl, "2001:db9:1:3::", 0)));
	cr_assert(m6(bl, "2001:dba::1", 0));
	cr_assert(not(m6(bl, "2001:dba::2", 0)));
	cr_assert(m6(bl, "2001:dbb:8000::1", 0));
	cr_assert(not(m6(bl, "2001:dbb:7fff::1", 0)));
	cr_assert(m6(bl, "2001:dbc::8000:0:0:1", 0));
	cr_assert(not(m6(bl, "2001:dbc::7fff:0:0:1", 0)));
	cr_assert(not(m4(bl, "32.1.13.184", 0)));
	mry_blocklist_free(bl);
}

Test(blocklist, zero_length_prefix_matches_everything_of_its_version)
{
	static const char *const s[] = { "0.0.0.0/0" };
	struct mry_blocklist *bl = from(s, 1);

	cr_assert(m4(bl, "1.2.3.4", 0));
	cr_assert(m4(bl, "255.255.255.255", 0));
	cr_assert(not(m6(bl, "::1", 0)));
	mry_blocklist_free(bl);
}

Test(blocklist, expired_entries_stop_matching_and_are_pruned)
{
	struct mry_blocklist_entry e[2] = { ent("192.0.2.0/24"), ent("2001:db8::/32") };
	struct mry_blocklist *bl, *pruned;
	char err[64];

	e[0].expires_ns = 100 * SEC;
	bl = mry_blocklist_build(mry_alloc_default(), e, 2, err, sizeof(err));
	cr_assert_not_null(bl);
	cr_assert(m4(bl, "192.0.2.1", 99 * SEC));
	cr_assert(not(m4(bl, "192.0.2.1", 100 * SEC)));
	cr_assert(m6(bl, "2001:db8::1", 1000000 * SEC));
	cr_assert(eq(int, mry_blocklist_prune(mry_alloc_default(), bl, 50 * SEC, &pruned), 0));
	cr_assert_null(pruned);
	cr_assert(eq(int, mry_blocklist_prune(mry_alloc_default(), bl, 100 * SEC, &pruned), 1));
	cr_assert_not_null(pruned);
	cr_assert(eq(sz, mry_blocklist_count(pruned), 1));
	cr_assert(eq(u8, mry_blocklist_entry_at(pruned, 0)->ip_version, 6));
	mry_blocklist_free(bl);
	mry_blocklist_free(pruned);
}

Test(blocklist, overlapping_prefixes_keep_their_own_expiry)
{
	struct mry_blocklist_entry e[2] = { ent("10.0.0.0/8"), ent("10.1.0.0/16") };
	struct mry_blocklist *bl;

	e[0].expires_ns = 10 * SEC;
	e[1].expires_ns = 20 * SEC;
	bl = mry_blocklist_build(mry_alloc_default(), e, 2, NULL, 0);
	cr_assert_not_null(bl);
	cr_assert(m4(bl, "10.2.0.1", 5 * SEC));
	cr_assert(not(m4(bl, "10.2.0.1", 15 * SEC)));
	cr_assert(m4(bl, "10.1.0.1", 15 * SEC));
	cr_assert(not(m4(bl, "10.1.0.1", 20 * SEC)));
	mry_blocklist_free(bl);
}

Test(blocklist, add_and_remove_give_new_lists_and_leave_the_old_one)
{
	const struct mry_alloc *a = mry_alloc_default();
	struct mry_blocklist_entry e = ent("203.0.113.0/24");
	struct mry_blocklist *empty, *one, *two, *back, *upd;
	struct mry_blocklist_entry f = ent("2001:db8::/48");

	cr_assert(eq(int, mry_blocklist_add(a, NULL, &e, &one), 0));
	cr_assert(m4(one, "203.0.113.9", 0));
	cr_assert(eq(int, mry_blocklist_add(a, one, &f, &two), 0));
	cr_assert(eq(sz, mry_blocklist_count(one), 1));
	cr_assert(not(m6(one, "2001:db8::1", 0)));
	cr_assert(m6(two, "2001:db8::1", 0));
	cr_assert(m4(two, "203.0.113.9", 0));
	/* same prefix again: one entry, the new expiry */
	e.expires_ns = 30 * SEC;
	cr_assert(eq(int, mry_blocklist_add(a, two, &e, &upd), 0));
	cr_assert(eq(sz, mry_blocklist_count(upd), 2));
	cr_assert(not(m4(upd, "203.0.113.9", 30 * SEC)));
	cr_assert(m4(two, "203.0.113.9", 30 * SEC));
	/* removal is by exact prefix */
	cr_assert(eq(int, mry_blocklist_remove(a, two, &e, &back), 0));
	cr_assert(not(m4(back, "203.0.113.9", 0)));
	cr_assert(m6(back, "2001:db8::1", 0));
	cr_assert(m4(two, "203.0.113.9", 0));
	{
		struct mry_blocklist_entry g = ent("2001:db8::/32");
		struct mry_blocklist *none;

		cr_assert(eq(int, mry_blocklist_remove(a, back, &g, &none), -ENOENT));
		cr_assert_null(none);
	}
	cr_assert(eq(int, mry_blocklist_remove(a, back, &f, &empty), 0));
	cr_assert(eq(sz, mry_blocklist_count(empty), 0));
	cr_assert(not(m6(empty, "2001:db8::1", 0)));
	mry_blocklist_free(one);
	mry_blocklist_free(two);
	mry_blocklist_free(upd);
	mry_blocklist_free(back);
	mry_blocklist_free(empty);
}

Test(blocklist, entries_are_listed_sorted_unique_and_formatted_back)
{
	static const char *const s[] = { "2001:db8::/32", "192.0.2.0/24", "10.0.0.0/8",
					 "192.0.2.0/24", "10.0.0.0/16" };
	static const char *const want[] = { "10.0.0.0/8", "10.0.0.0/16", "192.0.2.0/24",
					    "2001:db8::/32" };
	struct mry_blocklist *bl = from(s, 5);
	char buf[64];

	cr_assert(eq(sz, mry_blocklist_count(bl), 4));
	for (size_t i = 0; i < 4; i++) {
		cr_assert(eq(int, mry_blocklist_format_entry(mry_blocklist_entry_at(bl, i),
							     buf, sizeof(buf)), 0));
		cr_assert_str_eq(buf, want[i]);
	}
	cr_assert_null(mry_blocklist_entry_at(bl, 4));
	cr_assert(eq(int, mry_blocklist_format_entry(mry_blocklist_entry_at(bl, 3), buf, 8),
		     -ENOSPC));
	mry_blocklist_free(bl);
}

Test(blocklist, bad_prefixes_are_refused_with_a_reason)
{
	static const char *const bad[] = {
		"", "/24", "192.0.2.0/", "192.0.2.0/33", "2001:db8::/129", "192.0.2.1/24",
		"2001:db8::1/32", "192.0.2", "192.0.2.256", "1.2.3.4/2x", "1.2.3.4/0024",
		"hello", "1.2.3.4 5", "::g", "1.2.3.4/-1",
	};
	struct mry_blocklist_entry e;
	char err[128];

	for (size_t i = 0; i < MRY_ARRAY_SIZE(bad); i++) {
		err[0] = '\0';
		cr_assert(eq(int, mry_blocklist_parse_entry(bad[i], strlen(bad[i]), &e,
							    err, sizeof(err)), -EINVAL),
			  "'%s' accepted", bad[i]);
		cr_assert(ne(sz, strlen(err), 0), "'%s' refused without a reason", bad[i]);
	}
	/* an embedded NUL must not cut the text short */
	cr_assert(eq(int, mry_blocklist_parse_entry("1.2.3.4\0junk", 12, &e, NULL, 0), -EINVAL));
	/* blanks around are fine */
	cr_assert(eq(int, mry_blocklist_parse_entry(" \t10.0.0.0/8 \r", 14, &e, NULL, 0), 0));
	cr_assert(eq(u8, e.prefix_len, 8));
}

Test(blocklist, file_text_with_comments_blank_lines_and_crlf)
{
	static const char text[] =
		"# blocked senders\r\n"
		"\r\n"
		"192.0.2.0/24   # a TEST-NET\r\n"
		"   2001:db8::/32\n"
		"\t\n"
		"198.51.100.1";
	char err[128] = "";
	struct mry_blocklist *bl = mry_blocklist_parse(mry_alloc_default(), text,
						       sizeof(text) - 1, err, sizeof(err));

	cr_assert_not_null(bl, "%s", err);
	cr_assert(eq(sz, mry_blocklist_count(bl), 3));
	cr_assert(m4(bl, "192.0.2.77", 0));
	cr_assert(m4(bl, "198.51.100.1", 0));
	cr_assert(m6(bl, "2001:db8:1::1", 0));
	mry_blocklist_free(bl);
}

Test(blocklist, a_bad_line_fails_the_whole_file_naming_its_line)
{
	static const char text[] = "192.0.2.0/24\n# fine\n\n10.0.0.1/8\n198.51.100.0/24\n";
	char err[128] = "";

	cr_assert_null(mry_blocklist_parse(mry_alloc_default(), text, sizeof(text) - 1,
					   err, sizeof(err)));
	cr_assert(not(eq(ptr, strstr(err, "line 4:"), NULL)), "%s", err);
	cr_assert(not(eq(ptr, strstr(err, "10.0.0.1/8"), NULL)), "%s", err);
	cr_assert(not(eq(ptr, strstr(err, "host bits"), NULL)), "%s", err);
}

Test(blocklist, overlong_line_is_refused)
{
	char text[400];
	char err[128] = "";

	memset(text, ' ', sizeof(text));
	memcpy(text + 300, "1.2.3.4", 7);
	cr_assert_null(mry_blocklist_parse(mry_alloc_default(), text, sizeof(text),
					   err, sizeof(err)));
	cr_assert(not(eq(ptr, strstr(err, "line 1:"), NULL)), "%s", err);
}

Test(blocklist, empty_text_gives_an_empty_list)
{
	struct mry_blocklist *bl = mry_blocklist_parse(mry_alloc_default(), "", 0, NULL, 0);

	cr_assert_not_null(bl);
	cr_assert(eq(sz, mry_blocklist_count(bl), 0));
	cr_assert(not(m4(bl, "1.2.3.4", 0)));
	cr_assert(not(mry_blocklist_match(NULL, 4, (const uint8_t *)"\1\2\3\4", 0)));
	mry_blocklist_free(bl);
}

Test(blocklist, file_from_the_repository_loads)
{
	char path[512], err[256] = "";
	struct mry_blocklist *bl;

	snprintf(path, sizeof(path), "%s/tests/data/blocklist/example.txt", MORAY_SRCDIR);
	bl = mry_blocklist_load_file(mry_alloc_default(), path, err, sizeof(err));
	cr_assert_not_null(bl, "%s", err);
	cr_assert(eq(sz, mry_blocklist_count(bl), 4));
	cr_assert(m4(bl, "203.0.113.200", 0));
	cr_assert(m6(bl, "2001:db8:dead::beef", 0));
	mry_blocklist_free(bl);
	cr_assert_null(mry_blocklist_load_file(mry_alloc_default(), "/nonexistent/moray-bl",
					       err, sizeof(err)));
	cr_assert(not(eq(ptr, strstr(err, "/nonexistent/moray-bl"), NULL)), "%s", err);
}

/* the lookup agrees with a linear scan over random lists and addresses */
Test(blocklist, match_agrees_with_a_linear_scan, .timeout = 60)
{
	enum { N = 300, Q = 20000 };
	struct mry_blocklist_entry *e = calloc(N, sizeof(*e));
	struct mry_blocklist *bl;
	uint32_t rnd = 12345;

	cr_assert_not_null(e);
	for (int i = 0; i < N; i++) {
		uint8_t ver = (i & 1) ? 6 : 4;
		unsigned len;
		struct mry_blocklist_entry *x = &e[i];

		rnd = rnd * 1103515245u + 12345u;
		len = ver == 4 ? 8 + (rnd >> 8) % 25 : 16 + (rnd >> 8) % 113;
		x->ip_version = ver;
		x->prefix_len = (uint8_t)len;
		/* few distinct top bytes so prefixes overlap and queries hit */
		for (int b = 0; b < (ver == 4 ? 4 : 16); b++) {
			rnd = rnd * 1103515245u + 12345u;
			x->addr[b] = b < 2 ? (uint8_t)((rnd >> 16) % 3) : (uint8_t)(rnd >> 16);
		}
		for (unsigned bit = len; bit < (ver == 4 ? 32u : 128u); bit++)
			x->addr[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
		x->expires_ns = (rnd >> 4) % 4 == 0 ? (uint64_t)(rnd % 100) * SEC : 0;
	}
	bl = mry_blocklist_build(mry_alloc_default(), e, N, NULL, 0);
	cr_assert_not_null(bl);
	for (int q = 0; q < Q; q++) {
		uint8_t a[16] = {0};
		uint8_t ver = (q & 1) ? 6 : 4;
		uint64_t now = (uint64_t)(q % 120) * SEC;
		bool want = false;

		for (int b = 0; b < (ver == 4 ? 4 : 16); b++) {
			rnd = rnd * 1103515245u + 12345u;
			a[b] = b < 2 ? (uint8_t)((rnd >> 16) % 3) : (uint8_t)(rnd >> 16);
		}
		for (int i = 0; i < N && !want; i++) {
			const struct mry_blocklist_entry *x = &e[i];
			bool in = x->ip_version == ver;

			for (unsigned bit = 0; in && bit < x->prefix_len; bit++)
				in = ((a[bit / 8] ^ x->addr[bit / 8]) & (0x80u >> (bit % 8))) == 0;
			want = in && (x->expires_ns == 0 || now < x->expires_ns);
		}
		cr_assert(eq(int, mry_blocklist_match(bl, ver, a, now), want), "query %d", q);
	}
	mry_blocklist_free(bl);
	free(e);
}

/*
 * A formatted prefix is at most MRY_EVENT_BLOCKLIST_PREFIX_MAX bytes (the
 * "blocklist" event's bound counts on it): eight full groups and /128 is the
 * longest; the dotted IPv6 forms inet_ntop uses are shorter.
 */
Test(blocklist, formatted_prefixes_fit_the_event_bound)
{
	static const char *const longest[] = {
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "::ffff:255.255.255.255/128",
		"::255.255.255.255/128", "255.255.255.255/32",
		"1111:2222:3333:4444:5555:6666:7777:8888/128",
	};
	struct mry_blocklist_entry e;
	char out[128];
	uint32_t x = 12345;

	for (size_t i = 0; i < sizeof(longest) / sizeof(longest[0]); i++) {
		cr_assert(eq(int, mry_blocklist_parse_entry(longest[i], strlen(longest[i]), &e,
							    NULL, 0), 0), "%s", longest[i]);
		cr_assert(eq(int, mry_blocklist_format_entry(&e, out, sizeof(out)), 0));
		cr_assert(le(sz, strlen(out), MRY_EVENT_BLOCKLIST_PREFIX_MAX), "%s", out);
	}
	/* random addresses of every length */
	for (int k = 0; k < 100000; k++) {
		memset(&e, 0, sizeof(e));
		e.ip_version = (k & 1) ? 6 : 4;
		for (int b = 0; b < 16; b++) {
			x = x * 1103515245u + 12345u;
			e.addr[b] = (uint8_t)(x >> 16);
			if ((x >> 8 & 3) == 0)
				e.addr[b] = 0;
		}
		e.prefix_len = e.ip_version == 6 ? 128 : 32;
		cr_assert(eq(int, mry_blocklist_format_entry(&e, out, sizeof(out)), 0));
		cr_assert(le(sz, strlen(out), MRY_EVENT_BLOCKLIST_PREFIX_MAX), "%s", out);
	}
}
