/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Blocklist of IPv4/IPv6 prefixes with optional expiry (DESIGN.md "Floods":
 * a runtime blocklist and --blocklist FILE).
 *
 * A list is built once and never changes: one allocation holding the entries
 * in listing order and a lookup copy sorted by (version, prefix length,
 * address) with one group per distinct prefix length. A match masks the
 * address to each length present and binary-searches that group, so it
 * costs (distinct lengths) x log2(entries) comparisons of two 64-bit words
 * and allocates nothing. Merging overlapping prefixes into ranges would make
 * one search enough, but each prefix keeps its own expiry, and blocklists
 * hold few distinct lengths (/32, /24, /128, /64 ...), so the groups win on
 * simplicity. Every change (add, remove, prune) builds a new list, which is
 * what a host publishing lists to workers by pointer swap needs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moray/blocklist.h"

#define MOD "blocklist"

/* lookup form of an entry: the address as two host-order words */
struct bl_key {
	uint64_t hi;
	uint64_t lo;
	uint64_t expires_ns;
};

struct bl_group {
	uint32_t start;            /* first key of this prefix length */
	uint32_t end;
	uint8_t prefix_len;
	uint8_t pad[7];
};

struct mry_blocklist {
	const struct mry_alloc *alloc;
	size_t n;
	uint32_t nb_groups[2];     /* [0] IPv4, [1] IPv6 */
	struct bl_group groups[2][129];
	struct bl_key *keys;       /* n, by (version, length, address) */
	struct mry_blocklist_entry *entries;   /* n, listing order */
};

static void set_err(char *err, size_t err_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || err_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

/* ---- addresses --------------------------------------------------------- */

static uint64_t load_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void addr_words(uint8_t ver, const uint8_t *addr, uint64_t *hi, uint64_t *lo)
{
	if (ver == 4) {
		*hi = (uint64_t)addr[0] << 56 | (uint64_t)addr[1] << 48 |
		      (uint64_t)addr[2] << 40 | (uint64_t)addr[3] << 32;
		*lo = 0;
	} else {
		*hi = load_be64(addr);
		*lo = load_be64(addr + 8);
	}
}

/* keep the top @len bits of (hi, lo) */
static void mask_words(unsigned len, uint64_t *hi, uint64_t *lo)
{
	if (len == 0) {
		*hi = 0;
		*lo = 0;
	} else if (len < 64) {
		*hi &= ~0ULL << (64 - len);
		*lo = 0;
	} else if (len == 64) {
		*lo = 0;
	} else if (len < 128) {
		*lo &= ~0ULL << (128 - len);
	}
}

static unsigned max_len(uint8_t ver)
{
	return ver == 4 ? 32 : 128;
}

/* 0 if @e is well formed; else a reason */
static const char *entry_check(const struct mry_blocklist_entry *e)
{
	uint64_t hi, lo, mhi, mlo;

	if (e->ip_version != 4 && e->ip_version != 6)
		return "IP version is neither 4 nor 6";
	if (e->prefix_len > max_len(e->ip_version))
		return "prefix length too long";
	if (e->ip_version == 4)
		for (int i = 4; i < 16; i++)
			if (e->addr[i] != 0)
				return "IPv4 address with bytes past the fourth";
	addr_words(e->ip_version, e->addr, &hi, &lo);
	mhi = hi;
	mlo = lo;
	mask_words(e->prefix_len, &mhi, &mlo);
	if (mhi != hi || mlo != lo)
		return "host bits set below the prefix length";
	return NULL;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

int mry_blocklist_parse_entry(const char *text, size_t len,
			      struct mry_blocklist_entry *e,
			      char *err, size_t err_len)
{
	char buf[INET6_ADDRSTRLEN];
	const char *slash, *end;
	size_t alen;
	unsigned plen = 0;
	const char *why;
	bool v6 = false;

	while (len > 0 && is_blank(*text)) {
		text++;
		len--;
	}
	while (len > 0 && is_blank(text[len - 1]))
		len--;
	memset(e, 0, sizeof(*e));
	end = text + len;
	slash = memchr(text, '/', len);
	alen = (size_t)((slash != NULL ? slash : end) - text);
	if (alen == 0) {
		set_err(err, err_len, "no address");
		return -EINVAL;
	}
	if (alen >= sizeof(buf)) {
		set_err(err, err_len, "address too long");
		return -EINVAL;
	}
	for (size_t i = 0; i < alen; i++) {
		char c = text[i];

		if (c == ':')
			v6 = true;
		else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			   (c >= 'A' && c <= 'F') || c == '.')) {
			set_err(err, err_len, "bad character in address");
			return -EINVAL;
		}
	}
	memcpy(buf, text, alen);
	buf[alen] = '\0';
	if (inet_pton(v6 ? AF_INET6 : AF_INET, buf, e->addr) != 1) {
		set_err(err, err_len, "not an IPv%d address", v6 ? 6 : 4);
		return -EINVAL;
	}
	e->ip_version = v6 ? 6 : 4;
	if (slash == NULL) {
		plen = max_len(e->ip_version);
	} else {
		const char *p = slash + 1;

		if (p == end || end - p > 3) {
			set_err(err, err_len, "bad prefix length");
			return -EINVAL;
		}
		for (; p < end; p++) {
			if (*p < '0' || *p > '9') {
				set_err(err, err_len, "bad prefix length");
				return -EINVAL;
			}
			plen = plen * 10 + (unsigned)(*p - '0');
		}
		if (plen > max_len(e->ip_version)) {
			set_err(err, err_len, "prefix length %u over %u", plen,
				max_len(e->ip_version));
			return -EINVAL;
		}
	}
	e->prefix_len = (uint8_t)plen;
	why = entry_check(e);
	if (why != NULL) {
		set_err(err, err_len, "%s", why);
		return -EINVAL;
	}
	return 0;
}

int mry_blocklist_format_entry(const struct mry_blocklist_entry *e,
			       char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	int n;

	if (inet_ntop(e->ip_version == 6 ? AF_INET6 : AF_INET, e->addr, a, sizeof(a)) == NULL)
		return -EINVAL;
	n = snprintf(buf, len, "%s/%u", a, e->prefix_len);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

/* ---- building ---------------------------------------------------------- */

/* listing order: version, address, prefix length */
static int entry_cmp(const void *pa, const void *pb)
{
	const struct mry_blocklist_entry *a = pa, *b = pb;
	int c;

	if (a->ip_version != b->ip_version)
		return a->ip_version < b->ip_version ? -1 : 1;
	c = memcmp(a->addr, b->addr, 16);
	if (c != 0)
		return c;
	return (int)a->prefix_len - (int)b->prefix_len;
}

/* a key with its version and length, sorted before they are dropped */
struct bl_sort {
	struct bl_key k;
	uint8_t ver;
	uint8_t len;
};

static int sort_cmp(const void *pa, const void *pb)
{
	const struct bl_sort *a = pa, *b = pb;

	if (a->ver != b->ver)
		return a->ver < b->ver ? -1 : 1;
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	if (a->k.hi != b->k.hi)
		return a->k.hi < b->k.hi ? -1 : 1;
	if (a->k.lo != b->k.lo)
		return a->k.lo < b->k.lo ? -1 : 1;
	return 0;
}

/* later expiry of two; 0 (never) wins */
static uint64_t exp_max(uint64_t a, uint64_t b)
{
	if (a == 0 || b == 0)
		return 0;
	return a > b ? a : b;
}

/*
 * Build from @n entries in @tmp (checked, sorted and deduplicated here, in
 * place; a duplicate keeps the later expiry).
 */
static struct mry_blocklist *build(const struct mry_alloc *a,
				   struct mry_blocklist_entry *tmp, size_t n,
				   char *err, size_t err_len)
{
	struct mry_blocklist *bl = NULL;
	struct bl_sort *srt = NULL;
	size_t i, m = 0;

	for (i = 0; i < n; i++) {
		const char *why = entry_check(&tmp[i]);

		if (why != NULL) {
			set_err(err, err_len, "entry %zu: %s", i + 1, why);
			return NULL;
		}
		memset(tmp[i].pad, 0, sizeof(tmp[i].pad));
	}
	if (n > MRY_BLOCKLIST_MAX_ENTRIES) {
		set_err(err, err_len, "%zu prefixes, more than %u", n, MRY_BLOCKLIST_MAX_ENTRIES);
		return NULL;
	}
	if (n > 0) {
		qsort(tmp, n, sizeof(*tmp), entry_cmp);
		for (i = 0; i < n; i++) {
			if (m > 0 && entry_cmp(&tmp[m - 1], &tmp[i]) == 0) {
				tmp[m - 1].expires_ns = exp_max(tmp[m - 1].expires_ns,
								tmp[i].expires_ns);
				continue;
			}
			tmp[m++] = tmp[i];
		}
	}
	bl = mry_zalloc(a, sizeof(*bl));
	if (bl == NULL)
		goto nomem;
	bl->alloc = a;
	bl->n = m;
	if (m > 0) {
		bl->entries = mry_zalloc(a, sizeof(*bl->entries) * m);
		bl->keys = mry_zalloc(a, sizeof(*bl->keys) * m);
		srt = mry_zalloc(a, sizeof(*srt) * m);
		if (bl->entries == NULL || bl->keys == NULL || srt == NULL)
			goto nomem;
		memcpy(bl->entries, tmp, sizeof(*tmp) * m);
		for (i = 0; i < m; i++) {
			addr_words(tmp[i].ip_version, tmp[i].addr, &srt[i].k.hi, &srt[i].k.lo);
			srt[i].k.expires_ns = tmp[i].expires_ns;
			srt[i].ver = tmp[i].ip_version;
			srt[i].len = tmp[i].prefix_len;
		}
		qsort(srt, m, sizeof(*srt), sort_cmp);
		for (i = 0; i < m; i++) {
			unsigned v = srt[i].ver == 6;
			struct bl_group *g;

			bl->keys[i] = srt[i].k;
			g = bl->nb_groups[v] > 0 ? &bl->groups[v][bl->nb_groups[v] - 1] : NULL;
			if (g == NULL || g->prefix_len != srt[i].len) {
				g = &bl->groups[v][bl->nb_groups[v]++];
				g->prefix_len = srt[i].len;
				g->start = (uint32_t)i;
			}
			g->end = (uint32_t)i + 1;
		}
		mry_free(a, srt);
	}
	return bl;
nomem:
	mry_free(a, srt);
	mry_blocklist_free(bl);
	set_err(err, err_len, "out of memory");
	return NULL;
}

struct mry_blocklist *mry_blocklist_build(const struct mry_alloc *a,
					  const struct mry_blocklist_entry *e,
					  size_t n, char *err, size_t err_len)
{
	struct mry_blocklist_entry *tmp = NULL;
	struct mry_blocklist *bl;

	if (n > MRY_BLOCKLIST_MAX_ENTRIES) {
		set_err(err, err_len, "%zu prefixes, more than %u", n, MRY_BLOCKLIST_MAX_ENTRIES);
		return NULL;
	}
	if (n > 0) {
		tmp = mry_zalloc(a, sizeof(*tmp) * n);
		if (tmp == NULL) {
			set_err(err, err_len, "out of memory");
			return NULL;
		}
		memcpy(tmp, e, sizeof(*tmp) * n);
	}
	bl = build(a, tmp, n, err, err_len);
	mry_free(a, tmp);
	return bl;
}

struct mry_blocklist *mry_blocklist_from_strings(const struct mry_alloc *a,
						 const char *const *s, size_t n,
						 char *err, size_t err_len)
{
	struct mry_blocklist_entry *tmp = NULL;
	struct mry_blocklist *bl = NULL;
	char why[96];

	if (n > MRY_BLOCKLIST_MAX_ENTRIES) {
		set_err(err, err_len, "%zu prefixes, more than %u", n, MRY_BLOCKLIST_MAX_ENTRIES);
		return NULL;
	}
	if (n > 0) {
		tmp = mry_zalloc(a, sizeof(*tmp) * n);
		if (tmp == NULL) {
			set_err(err, err_len, "out of memory");
			return NULL;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (mry_blocklist_parse_entry(s[i], strlen(s[i]), &tmp[i], why, sizeof(why)) != 0) {
			set_err(err, err_len, "'%.64s': %s", s[i], why);
			goto out;
		}
	}
	bl = build(a, tmp, n, err, err_len);
out:
	mry_free(a, tmp);
	return bl;
}

struct mry_blocklist *mry_blocklist_parse(const struct mry_alloc *a,
					  const char *text, size_t len,
					  char *err, size_t err_len)
{
	struct mry_blocklist_entry *tmp = NULL;
	struct mry_blocklist *bl = NULL;
	size_t cap = 1, n = 0, line = 0, pos = 0;
	char why[96];

	for (size_t i = 0; i < len; i++)
		cap += text[i] == '\n';
	if (cap > MRY_BLOCKLIST_MAX_ENTRIES)
		cap = MRY_BLOCKLIST_MAX_ENTRIES + 1;
	tmp = mry_zalloc(a, sizeof(*tmp) * cap);
	if (tmp == NULL) {
		set_err(err, err_len, "out of memory");
		return NULL;
	}
	while (pos < len) {
		const char *l = text + pos;
		const char *nl = memchr(l, '\n', len - pos);
		size_t ll = nl != NULL ? (size_t)(nl - l) : len - pos;
		const char *hash = memchr(l, '#', ll);
		size_t body = hash != NULL ? (size_t)(hash - l) : ll;
		size_t s = 0;

		line++;
		pos += ll + (nl != NULL);
		if (ll > MRY_BLOCKLIST_MAX_LINE) {
			set_err(err, err_len, "line %zu: longer than %u bytes", line,
				MRY_BLOCKLIST_MAX_LINE);
			goto out;
		}
		while (s < body && is_blank(l[s]))
			s++;
		while (body > s && is_blank(l[body - 1]))
			body--;
		if (body == s)
			continue;
		if (n >= MRY_BLOCKLIST_MAX_ENTRIES) {
			set_err(err, err_len, "line %zu: more than %u prefixes", line,
				MRY_BLOCKLIST_MAX_ENTRIES);
			goto out;
		}
		if (mry_blocklist_parse_entry(l + s, body - s, &tmp[n], why, sizeof(why)) != 0) {
			set_err(err, err_len, "line %zu: '%.*s': %s", line,
				(int)MRY_MIN(body - s, 64), l + s, why);
			goto out;
		}
		n++;
	}
	bl = build(a, tmp, n, err, err_len);
out:
	mry_free(a, tmp);
	return bl;
}

struct mry_blocklist *mry_blocklist_load_file(const struct mry_alloc *a,
					      const char *path,
					      char *err, size_t err_len)
{
	struct mry_blocklist *bl = NULL;
	FILE *fp = fopen(path, "rb");
	char *text = NULL;
	long sz;

	if (fp == NULL) {
		set_err(err, err_len, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(fp, 0, SEEK_END) != 0 || (sz = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0) {
		set_err(err, err_len, "%s: cannot size: %s", path, strerror(errno));
		goto out;
	}
	if ((unsigned long)sz > (unsigned long)MRY_BLOCKLIST_MAX_ENTRIES * (MRY_BLOCKLIST_MAX_LINE + 2)) {
		set_err(err, err_len, "%s: %ld bytes, too large for a blocklist", path, sz);
		goto out;
	}
	text = mry_zalloc(a, (size_t)sz + 1);
	if (text == NULL) {
		set_err(err, err_len, "%s: out of memory", path);
		goto out;
	}
	if (sz > 0 && fread(text, 1, (size_t)sz, fp) != (size_t)sz) {
		set_err(err, err_len, "%s: short read", path);
		goto out;
	}
	{
		char why[192];

		bl = mry_blocklist_parse(a, text, (size_t)sz, why, sizeof(why));
		if (bl == NULL)
			set_err(err, err_len, "%s: %s", path, why);
	}
out:
	mry_free(a, text);
	fclose(fp);
	return bl;
}

/* ---- changes ----------------------------------------------------------- */

int mry_blocklist_add(const struct mry_alloc *a, const struct mry_blocklist *bl,
		      const struct mry_blocklist_entry *e, struct mry_blocklist **out)
{
	size_t n = bl != NULL ? bl->n : 0, m = 0;
	struct mry_blocklist_entry *tmp;

	*out = NULL;
	if (entry_check(e) != NULL)
		return -EINVAL;
	if (n >= MRY_BLOCKLIST_MAX_ENTRIES)
		return -ENOSPC;
	tmp = mry_zalloc(a, sizeof(*tmp) * (n + 1));
	if (tmp == NULL)
		return -ENOMEM;
	/* the same prefix already listed takes the new expiry: drop the old */
	for (size_t i = 0; i < n; i++)
		if (bl->entries[i].ip_version != e->ip_version ||
		    bl->entries[i].prefix_len != e->prefix_len ||
		    memcmp(bl->entries[i].addr, e->addr, 16) != 0)
			tmp[m++] = bl->entries[i];
	tmp[m++] = *e;
	*out = build(a, tmp, m, NULL, 0);
	mry_free(a, tmp);
	return *out != NULL ? 0 : -ENOMEM;
}

/* new list of the entries of @bl for which @keep says true */
static int filter(const struct mry_alloc *a, const struct mry_blocklist *bl,
		  bool (*keep)(const struct mry_blocklist_entry *x, const void *arg),
		  const void *arg, struct mry_blocklist **out)
{
	struct mry_blocklist_entry *tmp = NULL;
	size_t n = bl != NULL ? bl->n : 0, m = 0;
	int dropped;

	*out = NULL;
	if (n > 0) {
		tmp = mry_zalloc(a, sizeof(*tmp) * n);
		if (tmp == NULL)
			return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		if (keep(&bl->entries[i], arg))
			tmp[m++] = bl->entries[i];
	dropped = (int)(n - m);
	if (dropped > 0) {
		*out = build(a, tmp, m, NULL, 0);
		if (*out == NULL)
			dropped = -ENOMEM;
	}
	mry_free(a, tmp);
	return dropped;
}

static bool keep_other(const struct mry_blocklist_entry *x, const void *arg)
{
	const struct mry_blocklist_entry *e = arg;

	return x->ip_version != e->ip_version || x->prefix_len != e->prefix_len ||
	       memcmp(x->addr, e->addr, 16) != 0;
}

int mry_blocklist_remove(const struct mry_alloc *a, const struct mry_blocklist *bl,
			 const struct mry_blocklist_entry *e, struct mry_blocklist **out)
{
	int r = filter(a, bl, keep_other, e, out);

	if (r < 0)
		return r;
	return r == 0 ? -ENOENT : 0;
}

static bool keep_live(const struct mry_blocklist_entry *x, const void *arg)
{
	uint64_t now = *(const uint64_t *)arg;

	return x->expires_ns == 0 || now < x->expires_ns;
}

int mry_blocklist_prune(const struct mry_alloc *a, const struct mry_blocklist *bl,
			uint64_t now_ns, struct mry_blocklist **out)
{
	return filter(a, bl, keep_live, &now_ns, out);
}

void mry_blocklist_free(struct mry_blocklist *bl)
{
	if (bl == NULL)
		return;
	mry_free(bl->alloc, bl->keys);
	mry_free(bl->alloc, bl->entries);
	mry_free(bl->alloc, bl);
}

/* ---- queries ----------------------------------------------------------- */

bool mry_blocklist_match(const struct mry_blocklist *bl, uint8_t ip_version,
			 const uint8_t *addr, uint64_t now_ns)
{
	unsigned v;
	uint64_t hi, lo;

	if (bl == NULL || (ip_version != 4 && ip_version != 6))
		return false;
	v = ip_version == 6;
	addr_words(ip_version, addr, &hi, &lo);
	for (uint32_t gi = 0; gi < bl->nb_groups[v]; gi++) {
		const struct bl_group *g = &bl->groups[v][gi];
		uint64_t mh = hi, ml = lo;
		uint32_t l = g->start, r = g->end;

		mask_words(g->prefix_len, &mh, &ml);
		while (l < r) {
			uint32_t mid = l + (r - l) / 2;
			const struct bl_key *k = &bl->keys[mid];

			if (k->hi == mh && k->lo == ml) {
				if (k->expires_ns == 0 || now_ns < k->expires_ns)
					return true;
				break;
			}
			if (k->hi < mh || (k->hi == mh && k->lo < ml))
				l = mid + 1;
			else
				r = mid;
		}
	}
	return false;
}

size_t mry_blocklist_count(const struct mry_blocklist *bl)
{
	return bl != NULL ? bl->n : 0;
}

const struct mry_blocklist_entry *mry_blocklist_entry_at(const struct mry_blocklist *bl,
							 size_t i)
{
	return bl != NULL && i < bl->n ? &bl->entries[i] : NULL;
}
