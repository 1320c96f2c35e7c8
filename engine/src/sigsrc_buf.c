/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the signature-source parsers share: the growable string they write
 * expressions into, the error and note lists, adding a signature to the set,
 * Hyperscan's check of one expression, and the line splitter. The moray
 * format (sigsrc.c), the hex translator (sigsrc_hex.c) and the .ndb importer
 * (sigsrc_ndb.c) use these and nothing of each other's, so the dependencies
 * run one way: sigsrc.c -> sigsrc_ndb.c -> sigsrc_hex.c -> sigsrc_buf.c.
 * Control path only: plain malloc, no pools.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hs/hs.h>

#include "moray/sigsrc.h"
#include "sigsrc_priv.h"

/* ---- growable string ------------------------------------------------- */

void mry_sigsrc_sb_putn(struct mry_sigsrc_sb *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t nc = b->cap == 0 ? 64 : b->cap;
		char *np;

		while (nc < b->len + n + 1)
			nc *= 2;
		np = realloc(b->p, nc);
		if (np == NULL) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void mry_sigsrc_sb_puts(struct mry_sigsrc_sb *b, const char *s)
{
	mry_sigsrc_sb_putn(b, s, strlen(s));
}

void mry_sigsrc_sb_printf(struct mry_sigsrc_sb *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		mry_sigsrc_sb_putn(b, tmp, MRY_MIN((size_t)n, sizeof(tmp) - 1));
}

void mry_sigsrc_sb_byte(struct mry_sigsrc_sb *b, unsigned v)
{
	mry_sigsrc_sb_printf(b, "\\x%02x", v & 0xffu);
}

/* ---- error and note lists ------------------------------------------- */

void mry_sigsrc_add_error(struct mry_sigsrc *s, const char *fname, size_t line,
		      size_t col, const char *fmt, ...)
{
	char msg[384];
	char *full;
	va_list ap;
	int n;

	s->nb_errors++;
	if (s->nb_errors > MRY_SIGSRC_MAX_ERRORS)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = snprintf(NULL, 0, "%s:%zu:%zu: %s", fname, line, col, msg);
	full = malloc((size_t)n + 1);
	if (full == NULL)
		return;
	snprintf(full, (size_t)n + 1, "%s:%zu:%zu: %s", fname, line, col, msg);
	s->errors[s->nb_errors - 1] = full;
}

int mry_sigsrc_add_note(struct mry_sigsrc *s, const char *text)
{
	char *d;

	if (s->nb_notes == s->notes_cap) {
		uint32_t nc = s->notes_cap == 0 ? 16 : s->notes_cap * 2;
		char **nn = realloc(s->notes, nc * sizeof(*nn));

		if (nn == NULL)
			return -ENOMEM;
		s->notes = nn;
		s->notes_cap = nc;
	}
	d = strdup(text);
	if (d == NULL)
		return -ENOMEM;
	s->notes[s->nb_notes++] = d;
	return 0;
}

/* ---- signatures ---------------------------------------------------- */

void mry_sigsrc_sig_clear(struct mry_sigsrc_sig *g)
{
	free(g->name);
	free(g->expr);
	free(g->origin);
	memset(g, 0, sizeof(*g));
}

/* Takes ownership of name, expr, origin (freed on failure). */
int mry_sigsrc_add_sig(struct mry_sigsrc *s, const struct mry_sigsrc_sig *g)
{
	if (s->nb == s->cap) {
		uint32_t nc = s->cap == 0 ? 64 : s->cap * 2;
		struct mry_sigsrc_sig *n = realloc(s->sigs, nc * sizeof(*n));

		if (n == NULL) {
			struct mry_sigsrc_sig tmp = *g;

			mry_sigsrc_sig_clear(&tmp);
			return -ENOMEM;
		}
		s->sigs = n;
		s->cap = nc;
	}
	s->sigs[s->nb++] = *g;
	return 0;
}

/* Hyperscan's own verdict on one expression (NULL message = fine). */
bool mry_sigsrc_hs_check(const char *expr, unsigned flags, const struct mry_sigsrc_sig *g,
		     char *msg, size_t msg_len)
{
	hs_expr_info_t *info = NULL;
	hs_compile_error_t *cerr = NULL;
	hs_expr_ext_t ext = { 0 };
	hs_error_t rc;

	if (g->min_offset != 0) {
		ext.flags |= HS_EXT_FLAG_MIN_OFFSET;
		ext.min_offset = g->min_offset;
	}
	if (g->max_offset != 0) {
		ext.flags |= HS_EXT_FLAG_MAX_OFFSET;
		ext.max_offset = g->max_offset;
	}
	rc = hs_expression_ext_info(expr, flags, &ext, &info, &cerr);
	if (rc != HS_SUCCESS) {
		snprintf(msg, msg_len, "%s", cerr != NULL ? cerr->message : "rejected");
		hs_free_compile_error(cerr);
		return false;
	}
	if (info->min_width == 0) {
		/* would fire on every stream: certainly a mistake */
		snprintf(msg, msg_len, "pattern matches the empty string");
		free(info);
		return false;
	}
	free(info);
	return true;
}

char *mry_sigsrc_origin(const char *fname, size_t line)
{
	int n = snprintf(NULL, 0, "%s:%zu", fname, line);
	char *o = malloc((size_t)n + 1);

	if (o != NULL)
		snprintf(o, (size_t)n + 1, "%s:%zu", fname, line);
	return o;
}

/* ---- lines ---------------------------------------------------------- */

int mry_sigsrc_for_each_line(struct mry_sigsrc *s, const char *fname, const char *text,
			 size_t len, mry_sigsrc_line_fn fn, uint32_t id_base)
{
	size_t p = 0, line = 0;

	while (p < len) {
		size_t e = p, l;
		int rc;

		while (e < len && text[e] != '\n')
			e++;
		line++;
		l = e - p;
		if (l > 0 && text[p + l - 1] == '\r')
			l--;
		rc = fn(s, fname, line, text + p, l, id_base);
		if (rc < 0)
			return rc;
		p = e + 1;
	}
	return 0;
}

bool mry_sigsrc_blank_or_comment(const char *l, size_t len)
{
	size_t i = 0;

	while (i < len && (l[i] == ' ' || l[i] == '\t'))
		i++;
	return i == len || l[i] == '#';
}
