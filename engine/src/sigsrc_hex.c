/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ClamAV hex signature syntax -> Hyperscan expression, shared by .ndb
 * import and moray's hex: patterns. A recursive-descent parser emits the
 * regex as it goes and tracks the byte width range (anchored offsets need
 * it). Every byte is written \xHH, so no input byte can act as a regex
 * metacharacter. Failures carry the reason they are counted under and the
 * 0-based column. Trade-off: bounds above Hyperscan's 32767 are widened
 * (more matches, never fewer) rather than refused, as the shared data
 * README's table prescribes.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moray/sigsrc.h"
#include "sigsrc_priv.h"

struct hexp {
	const char *p;
	size_t len, pos;
	struct mry_sigsrc_sb *out;
	int fail;            /* 0 or 1 + enum mry_ndb_skip */
	size_t fail_col;
	char *err;
	size_t err_len;
	uint32_t wide;       /* bounds clamped */
};

#define W_INF UINT64_MAX

static uint64_t w_add(uint64_t a, uint64_t b)
{
	return (a == W_INF || b == W_INF || a + b < a) ? W_INF : a + b;
}

static void hp_fail(struct hexp *h, enum mry_ndb_skip r, size_t col,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void hp_fail(struct hexp *h, enum mry_ndb_skip r, size_t col,
		    const char *fmt, ...)
{
	va_list ap;

	if (h->fail != 0)
		return;
	h->fail = 1 + (int)r;
	h->fail_col = col;
	if (h->err != NULL && h->err_len > 0) {
		va_start(ap, fmt);
		vsnprintf(h->err, h->err_len, fmt, ap);
		va_end(ap);
	}
}

static void hp_ws(struct hexp *h)
{
	while (h->pos < h->len && (h->p[h->pos] == ' ' || h->p[h->pos] == '\t'))
		h->pos++;
}

/* decimal number; false when none */
static bool hp_num(struct hexp *h, uint64_t *v)
{
	size_t start = h->pos;
	uint64_t n = 0;

	while (h->pos < h->len && isdigit((unsigned char)h->p[h->pos])) {
		if (n > 100000000000ULL)
			n = 100000000000ULL;   /* saturate; far beyond any limit */
		else
			n = n * 10 + (uint64_t)(h->p[h->pos] - '0');
		h->pos++;
	}
	*v = n;
	return h->pos > start;
}

/* emit a gap of {lo,hi} any bytes (hi W_INF = unbounded) */
static void emit_gap(struct hexp *h, uint64_t lo, uint64_t hi)
{
	if (hi != W_INF && lo > hi)
		return;
	if (lo > MRY_SIGSRC_HS_BOUND_MAX) {
		h->wide++;
		mry_sigsrc_sb_puts(h->out, ".*");
		return;
	}
	if (hi != W_INF && hi > MRY_SIGSRC_HS_BOUND_MAX) {
		h->wide++;
		hi = W_INF;
	}
	if (hi == W_INF) {
		if (lo == 0)
			mry_sigsrc_sb_puts(h->out, ".*");
		else
			mry_sigsrc_sb_printf(h->out, ".{%llu,}", (unsigned long long)lo);
	} else if (lo == hi) {
		if (lo == 1)
			mry_sigsrc_sb_puts(h->out, ".");
		else if (lo > 1)
			mry_sigsrc_sb_printf(h->out, ".{%llu}", (unsigned long long)lo);
	} else {
		mry_sigsrc_sb_printf(h->out, ".{%llu,%llu}", (unsigned long long)lo,
			  (unsigned long long)hi);
	}
}

static void hp_seq(struct hexp *h, uint64_t *min_w, uint64_t *max_w, int depth);

/* after '(' (or '!('): alternatives until ')' */
static void hp_alt(struct hexp *h, bool negated, size_t open_col,
		   uint64_t *min_w, uint64_t *max_w, int depth)
{
	uint64_t amin = W_INF, amax = 0;
	size_t save_len = h->out->len;
	bool all_single = true;
	int nalt = 0;

	if (depth > 16) {
		hp_fail(h, MRY_NDB_SKIP_SYNTAX, open_col, "alternatives nested too deep");
		return;
	}
	if (!negated)
		mry_sigsrc_sb_puts(h->out, "(?:");
	for (;;) {
		uint64_t smin = 0, smax = 0;
		size_t before = h->out->len;

		if (nalt > 0 && !negated)
			mry_sigsrc_sb_puts(h->out, "|");
		hp_seq(h, &smin, &smax, depth + 1);
		if (h->fail != 0)
			return;
		if (smin == 0 && smax == 0) {
			hp_fail(h, MRY_NDB_SKIP_SYNTAX, h->pos, "empty alternative");
			return;
		}
		if (smin != 1 || smax != 1)
			all_single = false;
		/* a negated alternative must be one literal byte: "\xHH" */
		if (negated && (h->out->len - before != 4 || h->out->p[before] != '\\'))
			all_single = false;
		amin = MRY_MIN(amin, smin);
		amax = MRY_MAX(amax, smax);
		nalt++;
		hp_ws(h);
		if (h->pos >= h->len) {
			hp_fail(h, MRY_NDB_SKIP_SYNTAX, open_col, "unbalanced '(': no ')'");
			return;
		}
		if (h->p[h->pos] == '|') {
			h->pos++;
			continue;
		}
		if (h->p[h->pos] == ')') {
			h->pos++;
			break;
		}
		hp_fail(h, MRY_NDB_SKIP_SYNTAX, h->pos, "unexpected '%c' in alternative",
			h->p[h->pos]);
		return;
	}
	if (negated) {
		/* rebuild as a negated byte class from the emitted \xHH atoms */
		char *atoms;
		size_t n, i;

		if (!all_single) {
			hp_fail(h, MRY_NDB_SKIP_NEG_MULTIBYTE, open_col,
				"negated alternative with multi-byte or wildcard members");
			return;
		}
		n = h->out->len - save_len;
		atoms = malloc(n + 1);
		if (atoms == NULL) {
			h->out->oom = true;
			return;
		}
		memcpy(atoms, h->out->p + save_len, n);
		h->out->len = save_len;
		mry_sigsrc_sb_puts(h->out, "[^");
		for (i = 0; i + 4 <= n; i += 4)
			mry_sigsrc_sb_putn(h->out, atoms + i, 4);
		mry_sigsrc_sb_puts(h->out, "]");
		free(atoms);
		amin = amax = 1;
	} else {
		mry_sigsrc_sb_puts(h->out, ")");
	}
	*min_w = w_add(*min_w, amin);
	*max_w = w_add(*max_w, amax);
}

static void hp_seq(struct hexp *h, uint64_t *min_w, uint64_t *max_w, int depth)
{
	for (;;) {
		size_t col;
		char c;

		hp_ws(h);
		if (h->fail != 0 || h->pos >= h->len)
			return;
		col = h->pos;
		c = h->p[h->pos];
		if (c == '|' || c == ')')
			return;
		if (c == '*') {
			h->pos++;
			mry_sigsrc_sb_puts(h->out, ".*");
			*max_w = W_INF;
			continue;
		}
		if (c == '{') {
			uint64_t lo = 0, hi = W_INF;
			bool has_lo, has_hi = false;

			h->pos++;
			has_lo = hp_num(h, &lo);
			if (h->pos < h->len && h->p[h->pos] == '-') {
				h->pos++;
				has_hi = hp_num(h, &hi);
				if (!has_hi)
					hi = W_INF;
				if (!has_lo && !has_hi) {
					hp_fail(h, MRY_NDB_SKIP_SYNTAX, col, "empty gap '{-}'");
					return;
				}
			} else if (has_lo) {
				hi = lo;
			} else {
				hp_fail(h, MRY_NDB_SKIP_SYNTAX, col, "bad gap: expected {n}, {n-m}, {-n} or {n-}");
				return;
			}
			if (h->pos >= h->len || h->p[h->pos] != '}') {
				hp_fail(h, MRY_NDB_SKIP_SYNTAX, col, "unterminated gap '{'");
				return;
			}
			h->pos++;
			if (hi != W_INF && lo > hi) {
				hp_fail(h, MRY_NDB_SKIP_SYNTAX, col, "gap {%llu-%llu}: low bound above high",
					(unsigned long long)lo, (unsigned long long)hi);
				return;
			}
			emit_gap(h, lo, hi);
			*min_w = w_add(*min_w, lo);
			*max_w = w_add(*max_w, hi);
			continue;
		}
		if (c == '[') {
			uint64_t lo, hi;

			h->pos++;
			if (!hp_num(h, &lo) || h->pos >= h->len || h->p[h->pos] != '-') {
				hp_fail(h, MRY_NDB_SKIP_SYNTAX, col, "bad range: expected [n-m]");
				return;
			}
			h->pos++;
			if (!hp_num(h, &hi) || h->pos >= h->len || h->p[h->pos] != ']') {
				hp_fail(h, MRY_NDB_SKIP_SYNTAX, col, "bad range: expected [n-m]");
				return;
			}
			h->pos++;
			if (lo > hi) {
				hp_fail(h, MRY_NDB_SKIP_SYNTAX, col, "range [%llu-%llu]: low bound above high",
					(unsigned long long)lo, (unsigned long long)hi);
				return;
			}
			emit_gap(h, lo, hi);
			*min_w = w_add(*min_w, lo);
			*max_w = w_add(*max_w, hi);
			continue;
		}
		if (c == '!') {
			h->pos++;
			if (h->pos >= h->len || h->p[h->pos] != '(') {
				hp_fail(h, MRY_NDB_SKIP_SYNTAX, col, "'!' must precede '('");
				return;
			}
			h->pos++;
			hp_alt(h, true, col, min_w, max_w, depth);
			continue;
		}
		if (c == '(') {
			if (h->pos + 2 < h->len && h->p[h->pos + 2] == ')' &&
			    (h->p[h->pos + 1] == 'B' || h->p[h->pos + 1] == 'L' ||
			     h->p[h->pos + 1] == 'W')) {
				hp_fail(h, MRY_NDB_SKIP_ANCHOR, col,
					"boundary anchor (%c) needs look-around", h->p[h->pos + 1]);
				return;
			}
			h->pos++;
			hp_alt(h, false, col, min_w, max_w, depth);
			continue;
		}
		/* a byte: two nibbles, each a hex digit or '?' */
		if (h->pos + 1 >= h->len) {
			hp_fail(h, MRY_NDB_SKIP_SYNTAX, col, "odd number of hex digits");
			return;
		}
		{
			char c2 = h->p[h->pos + 1];
			int hi = mry_hex_val(c), lo = mry_hex_val(c2);

			if ((hi < 0 && c != '?') || (lo < 0 && c2 != '?')) {
				size_t bad = (hi < 0 && c != '?') ? col : col + 1;

				hp_fail(h, MRY_NDB_SKIP_SYNTAX, bad, "bad hex digit '%c'",
					h->p[bad]);
				return;
			}
			h->pos += 2;
			if (hi >= 0 && lo >= 0) {
				mry_sigsrc_sb_byte(h->out, (unsigned)(hi << 4 | lo));
			} else if (hi < 0 && lo < 0) {
				mry_sigsrc_sb_puts(h->out, ".");
			} else if (hi >= 0) {
				/* a? : high nibble fixed */
				mry_sigsrc_sb_puts(h->out, "[");
				mry_sigsrc_sb_byte(h->out, (unsigned)(hi << 4));
				mry_sigsrc_sb_puts(h->out, "-");
				mry_sigsrc_sb_byte(h->out, (unsigned)(hi << 4 | 0xf));
				mry_sigsrc_sb_puts(h->out, "]");
			} else {
				/* ?a : low nibble fixed, 16 bytes */
				int k;

				mry_sigsrc_sb_puts(h->out, "[");
				for (k = 0; k < 16; k++)
					mry_sigsrc_sb_byte(h->out, (unsigned)(k << 4 | lo));
				mry_sigsrc_sb_puts(h->out, "]");
			}
			*min_w = w_add(*min_w, 1);
			*max_w = w_add(*max_w, 1);
		}
	}
}

int mry_sigsrc_hex_translate(const char *hex, size_t len, struct mry_sigsrc_sb *out,
			 uint64_t *min_w, uint64_t *max_w, uint32_t *wide,
			 char *err, size_t err_len, size_t *err_col)
{
	struct hexp h = {
		.p = hex, .len = len, .out = out, .err = err, .err_len = err_len,
	};

	*min_w = 0;
	*max_w = 0;
	hp_seq(&h, min_w, max_w, 0);
	if (h.fail == 0 && h.pos < h.len)
		hp_fail(&h, MRY_NDB_SKIP_SYNTAX, h.pos, "unbalanced ')'");
	if (h.fail == 0 && *max_w == 0)
		hp_fail(&h, MRY_NDB_SKIP_SYNTAX, 0, "empty hex signature");
	if (h.fail == 0 && *min_w == 0)
		hp_fail(&h, MRY_NDB_SKIP_SYNTAX, 0, "hex signature can match nothing at all");
	if (out->oom)
		return -ENOMEM;
	if (wide != NULL)
		*wide += h.wide;
	if (err_col != NULL)
		*err_col = h.fail_col;
	return h.fail;
}

int mry_sigsrc_hex_to_expr(const char *hex, size_t len, char **expr,
			   uint64_t *min_w, uint64_t *max_w,
			   char *err, size_t err_len, size_t *err_col)
{
	struct mry_sigsrc_sb b = { 0 };
	int rc = mry_sigsrc_hex_translate(hex, len, &b, min_w, max_w, NULL, err, err_len,
			       err_col);

	if (rc != 0) {
		free(b.p);
		*expr = NULL;
		return rc;
	}
	*expr = b.p;
	return 0;
}
