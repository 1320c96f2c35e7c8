/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Signature sources: the set, moray's text format, and the compiler that
 * turns the set into a database image (one HS_MODE_STREAM database per scan
 * slot). The hex translator lives in sigsrc_hex.c, the ClamAV .ndb importer
 * in sigsrc_ndb.c, and what the parsers share (growable string, error and
 * note lists, adding a signature, the line splitter) in sigsrc_buf.c: this
 * file uses those, none of them uses this one.
 *
 * Trade-off: every pattern kind becomes a regular expression, even plain
 * literals (as \xHH escapes), so one hs_compile_ext_multi() per slot holds
 * everything; Hyperscan extracts the literals itself. Each expression is
 * checked with hs_expression_ext_info() as it is parsed, so a mistake is
 * reported at its file:line:col rather than as a failed compile of the
 * whole set. Control path only: plain malloc, no pools.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <hs/hs.h>

#include "moray/sigsrc.h"
#include "sigdb_priv.h"
#include "sigsrc_priv.h"

/* ---- set ------------------------------------------------------------- */

struct mry_sigsrc *mry_sigsrc_create(void)
{
	return calloc(1, sizeof(struct mry_sigsrc));
}

void mry_sigsrc_destroy(struct mry_sigsrc *s)
{
	uint32_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->nb; i++)
		mry_sigsrc_sig_clear(&s->sigs[i]);
	free(s->sigs);
	for (i = 0; i < MRY_MIN(s->nb_errors, MRY_SIGSRC_MAX_ERRORS); i++)
		free(s->errors[i]);
	for (i = 0; i < s->nb_notes; i++)
		free(s->notes[i]);
	free(s->notes);
	free(s);
}

uint32_t mry_sigsrc_nb_sigs(const struct mry_sigsrc *s) { return s->nb; }

const struct mry_sigsrc_sig *mry_sigsrc_sig_at(const struct mry_sigsrc *s, uint32_t i)
{
	return i < s->nb ? &s->sigs[i] : NULL;
}

uint32_t mry_sigsrc_nb_errors(const struct mry_sigsrc *s) { return s->nb_errors; }

const char *mry_sigsrc_error(const struct mry_sigsrc *s, uint32_t i)
{
	if (i >= MRY_MIN(s->nb_errors, MRY_SIGSRC_MAX_ERRORS))
		return NULL;
	return s->errors[i];
}

uint32_t mry_sigsrc_nb_notes(const struct mry_sigsrc *s) { return s->nb_notes; }

const char *mry_sigsrc_note(const struct mry_sigsrc *s, uint32_t i)
{
	return i < s->nb_notes ? s->notes[i] : NULL;
}

const struct mry_ndb_report *mry_sigsrc_ndb_report(const struct mry_sigsrc *s)
{
	return &s->ndb;
}

/* ---- moray format ------------------------------------------------------ */

struct line_ctx {
	struct mry_sigsrc *s;
	const char *fname;
	size_t line;
	const char *l;       /* line start */
	size_t len;
	size_t pos;
};

static bool lc_ws(struct line_ctx *c)
{
	size_t p0 = c->pos;

	while (c->pos < c->len && (c->l[c->pos] == ' ' || c->l[c->pos] == '\t'))
		c->pos++;
	return c->pos > p0;
}

/* next whitespace-delimited field; returns its length */
static size_t lc_field(struct line_ctx *c, const char **f)
{
	size_t p0 = c->pos;

	while (c->pos < c->len && c->l[c->pos] != ' ' && c->l[c->pos] != '\t')
		c->pos++;
	*f = c->l + p0;
	return c->pos - p0;
}

#define LERR(c, col, ...) mry_sigsrc_add_error((c)->s, (c)->fname, (c)->line, (col) + 1, __VA_ARGS__)

static bool field_is(const char *f, size_t n, const char *w)
{
	return strlen(w) == n && memcmp(f, w, n) == 0;
}

static int parse_targets(const char *f, size_t n, uint8_t *t)
{
	size_t i = 0;

	*t = 0;
	while (i < n) {
		size_t j = i;

		while (j < n && f[j] != ',')
			j++;
		if (field_is(f + i, j - i, "raw"))
			*t |= MRY_TARGET_RAW;
		else if (field_is(f + i, j - i, "decoded"))
			*t |= MRY_TARGET_DECODED;
		else if (field_is(f + i, j - i, "headers"))
			*t |= MRY_TARGET_HEADERS;
		else if (field_is(f + i, j - i, "any"))
			*t |= MRY_TARGET_ANY;
		else
			return (int)i;
		i = j + 1;
	}
	return *t == 0 ? 0 : -1;
}

/* lit:"..."[i] -> escaped regex; returns false on error (reported) */
static bool parse_literal(struct line_ctx *c, size_t start, struct mry_sigsrc_sb *out,
			  unsigned *flags)
{
	size_t p = start, nbytes = 0;

	if (p >= c->len || c->l[p] != '"') {
		LERR(c, p, "literal must start with '\"'");
		return false;
	}
	p++;
	for (;;) {
		unsigned char ch;

		if (p >= c->len) {
			LERR(c, start, "unterminated literal: no closing '\"'");
			return false;
		}
		ch = (unsigned char)c->l[p];
		if (ch == '"')
			break;
		if (ch == '\\') {
			if (p + 1 >= c->len) {
				LERR(c, p, "unterminated escape");
				return false;
			}
			switch (c->l[p + 1]) {
			case 'n': ch = '\n'; break;
			case 'r': ch = '\r'; break;
			case 't': ch = '\t'; break;
			case '\\': ch = '\\'; break;
			case '"': ch = '"'; break;
			case 'x': {
				int a = p + 3 < c->len ? mry_hex_val(c->l[p + 2]) : -1;
				int b = p + 3 < c->len ? mry_hex_val(c->l[p + 3]) : -1;

				if (a < 0 || b < 0) {
					LERR(c, p, "bad escape: \\x needs two hex digits");
					return false;
				}
				ch = (unsigned char)(a << 4 | b);
				p += 2;
				break;
			}
			default:
				LERR(c, p, "unknown escape '\\%c' (known: \\xHH \\n \\r \\t \\\\ \\\")",
				     c->l[p + 1]);
				return false;
			}
			p += 2;
		} else {
			p++;
		}
		if (isalnum(ch))
			mry_sigsrc_sb_putn(out, (const char *)&ch, 1);
		else
			mry_sigsrc_sb_byte(out, ch);
		nbytes++;
	}
	p++;
	if (nbytes == 0) {
		LERR(c, start, "empty literal");
		return false;
	}
	while (p < c->len && c->l[p] != ' ' && c->l[p] != '\t') {
		if (c->l[p] == 'i') {
			*flags |= HS_FLAG_CASELESS;
		} else {
			LERR(c, p, "unknown literal flag '%c' (known: i)", c->l[p]);
			return false;
		}
		p++;
	}
	c->pos = p;
	return true;
}

/* re:/.../flags, the regex runs to the last '/' on the line */
static bool parse_regex(struct line_ctx *c, size_t start, struct mry_sigsrc_sb *out,
			unsigned *flags)
{
	size_t end = c->len, p;

	while (end > start && (c->l[end - 1] == ' ' || c->l[end - 1] == '\t'))
		end--;
	if (start >= end || c->l[start] != '/') {
		LERR(c, start, "regex must be written /.../flags");
		return false;
	}
	p = end;
	while (p > start + 1 && c->l[p - 1] != '/')
		p--;
	if (p <= start + 1) {
		LERR(c, start, "unterminated regex: no closing '/'");
		return false;
	}
	if (p - 1 == start + 1) {
		LERR(c, start, "empty regex");
		return false;
	}
	mry_sigsrc_sb_putn(out, c->l + start + 1, p - 2 - start);
	for (size_t q = p; q < end; q++) {
		switch (c->l[q]) {
		case 'i': *flags |= HS_FLAG_CASELESS; break;
		case 's': *flags |= HS_FLAG_DOTALL; break;
		case 'm': *flags |= HS_FLAG_MULTILINE; break;
		case 'u': *flags |= HS_FLAG_UTF8 | HS_FLAG_UCP; break;
		default:
			LERR(c, q, "unknown regex flag '%c' (known: i s m u)", c->l[q]);
			return false;
		}
	}
	c->pos = end;
	return true;
}

static const struct mry_sigsrc_sig *find_id(const struct mry_sigsrc *s, uint32_t id)
{
	for (uint32_t i = 0; i < s->nb; i++)
		if (s->sigs[i].id == id)
			return &s->sigs[i];
	return NULL;
}

/* one non-blank, non-comment line; returns -ENOMEM or 0 */
static int parse_line(struct line_ctx *c)
{
	struct mry_sigsrc_sig g = { 0 };
	struct mry_sigsrc_sb expr = { 0 };
	const char *f;
	size_t n, col, pat_col;
	unsigned long long id;
	char *endp, hsmsg[256], num[16];
	const struct mry_sigsrc_sig *dup;
	int bad;

	/* id */
	lc_ws(c);
	col = c->pos;
	n = lc_field(c, &f);
	if (n == 0 || n >= sizeof(num)) {
		LERR(c, col, "bad id: expected a number 1..%u", MRY_SIGSRC_NDB_ID_BASE - 1);
		return 0;
	}
	memcpy(num, f, n);
	num[n] = '\0';
	errno = 0;
	id = strtoull(num, &endp, 10);
	if (*endp != '\0' || !isdigit((unsigned char)num[0]) || id == 0 ||
	    id >= MRY_SIGSRC_NDB_ID_BASE) {
		LERR(c, col, "bad id '%s': expected a number 1..%u", num,
		     MRY_SIGSRC_NDB_ID_BASE - 1);
		return 0;
	}
	dup = find_id(c->s, (uint32_t)id);
	if (dup != NULL) {
		LERR(c, col, "duplicate id %llu (first defined at %s)", id, dup->origin);
		return 0;
	}
	g.id = (uint32_t)id;

	/* name */
	if (!lc_ws(c) || c->pos >= c->len) {
		LERR(c, c->pos, "missing name");
		return 0;
	}
	col = c->pos;
	n = lc_field(c, &f);
	if (n > MRY_SIGSRC_NAME_MAX) {
		LERR(c, col, "name longer than %d bytes", MRY_SIGSRC_NAME_MAX);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (!isgraph((unsigned char)f[i]) || f[i] == '"') {
			LERR(c, col + i, "bad character in name");
			return 0;
		}
	}
	/* action */
	if (!lc_ws(c) || c->pos >= c->len) {
		LERR(c, c->pos, "missing action (reject, tempfail, log)");
		return 0;
	}
	{
		const char *a;
		size_t an, acol = c->pos;

		an = lc_field(c, &a);
		if (field_is(a, an, "reject"))
			g.action = MRY_ACTION_REJECT;
		else if (field_is(a, an, "tempfail"))
			g.action = MRY_ACTION_TEMPFAIL;
		else if (field_is(a, an, "log"))
			g.action = MRY_ACTION_LOG;
		else {
			LERR(c, acol, "unknown action '%.*s' (known: reject, tempfail, log)",
			     (int)MRY_MIN(an, 32), a);
			return 0;
		}
	}
	/* target */
	if (!lc_ws(c) || c->pos >= c->len) {
		LERR(c, c->pos, "missing target (raw, decoded, headers, any)");
		return 0;
	}
	{
		const char *t;
		size_t tn, tcol = c->pos;

		tn = lc_field(c, &t);
		bad = parse_targets(t, tn, &g.targets);
		if (bad >= 0) {
			LERR(c, tcol + (size_t)bad,
			     "unknown target '%.*s' (known: raw, decoded, headers, any, comma-separated)",
			     (int)MRY_MIN(tn, 32), t);
			return 0;
		}
	}
	/* pattern */
	if (!lc_ws(c) || c->pos >= c->len) {
		LERR(c, c->pos, "missing pattern (hex:, lit:, re:)");
		return 0;
	}
	pat_col = c->pos;
	/* Every expression reports once per stream: we only need to know a
	 * signature matched, so HS_FLAG_SINGLEMATCH lets Hyperscan stop
	 * tracking it (smaller stream state, fewer callbacks). No SOM: the
	 * verdict never needs where a match started, and SOM would cost stream
	 * state and a horizon limit. */
	g.hs_flags = HS_FLAG_SINGLEMATCH;
	if (c->len - c->pos >= 4 && memcmp(c->l + c->pos, "hex:", 4) == 0) {
		uint64_t mn, mx;
		char herr[160];
		size_t ecol = 0;
		int rc;

		/* '??', '*', gaps: bytes, so '.' must match newlines too */
		g.hs_flags |= HS_FLAG_DOTALL;
		rc = mry_sigsrc_hex_translate(c->l + c->pos + 4, c->len - c->pos - 4, &expr,
				   &mn, &mx, NULL, herr, sizeof(herr), &ecol);
		if (rc < 0)
			goto nomem;
		if (rc > 0) {
			LERR(c, pat_col + 4 + ecol, "%s", herr);
			goto fail;
		}
		c->pos = c->len;
	} else if (c->len - c->pos >= 4 && memcmp(c->l + c->pos, "lit:", 4) == 0) {
		if (!parse_literal(c, c->pos + 4, &expr, &g.hs_flags))
			goto fail;
	} else if (c->len - c->pos >= 3 && memcmp(c->l + c->pos, "re:", 3) == 0) {
		if (!parse_regex(c, c->pos + 3, &expr, &g.hs_flags))
			goto fail;
	} else {
		LERR(c, pat_col, "unknown pattern kind (known: hex:, lit:\"...\", re:/.../flags)");
		goto fail;
	}
	if (expr.oom)
		goto nomem;
	lc_ws(c);
	if (c->pos < c->len) {
		LERR(c, c->pos, "unexpected text after pattern");
		goto fail;
	}
	if (!mry_sigsrc_hs_check(expr.p, g.hs_flags, &g, hsmsg, sizeof(hsmsg))) {
		LERR(c, pat_col, "Hyperscan refuses pattern: %s", hsmsg);
		goto fail;
	}
	g.name = strndup(f, n);
	g.origin = mry_sigsrc_origin(c->fname, c->line);
	g.expr = expr.p;
	if (g.name == NULL || g.origin == NULL) {
		free(g.name);
		free(g.origin);
		goto nomem;
	}
	return mry_sigsrc_add_sig(c->s, &g);
fail:
	free(expr.p);
	return 0;
nomem:
	free(expr.p);
	return -ENOMEM;
}

static int moray_line(struct mry_sigsrc *s, const char *fname, size_t line,
		      const char *l, size_t len, uint32_t id_base)
{
	(void)id_base;
	struct line_ctx c = { .s = s, .fname = fname, .line = line, .l = l, .len = len };

	if (mry_sigsrc_blank_or_comment(l, len))
		return 0;
	if (memchr(l, '\0', len) != NULL) {
		mry_sigsrc_add_error(s, fname, line, 1, "NUL byte in line");
		return 0;
	}
	return parse_line(&c);
}

int mry_sigsrc_parse(struct mry_sigsrc *s, const char *fname, const char *text,
		     size_t len)
{
	uint32_t before = s->nb_errors;
	int rc = mry_sigsrc_for_each_line(s, fname, text, len, moray_line, 0);

	if (rc < 0)
		return rc;
	return s->nb_errors != before ? -EINVAL : 0;
}

int mry_sigsrc_add_file(struct mry_sigsrc *s, const char *path)
{
	struct stat st;
	char *buf = NULL;
	size_t n, len;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		rc = -errno;
		mry_sigsrc_add_error(s, path, 0, 0, "cannot read: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	len = (size_t)st.st_size;
	buf = malloc(len + 1);
	if (buf == NULL) {
		close(fd);
		return -ENOMEM;
	}
	for (n = 0; n < len;) {
		ssize_t r = read(fd, buf + n, len - n);

		if (r <= 0) {
			rc = r == 0 ? -EIO : -errno;
			mry_sigsrc_add_error(s, path, 0, 0, "cannot read: %s", strerror(-rc));
			free(buf);
			close(fd);
			return rc;
		}
		n += (size_t)r;
	}
	close(fd);
	if (len >= 4 && strcmp(path + strlen(path) - 4, ".ndb") == 0)
		rc = mry_sigsrc_parse_ndb(s, path, buf, len);
	else
		rc = mry_sigsrc_parse(s, path, buf, len);
	free(buf);
	return rc;
}

/* ---- compile ------------------------------------------------------------ */

static int cmp_sig_id(const void *a, const void *b)
{
	const struct mry_sigsrc_sig *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static void free_dbs(hs_database_t **db)
{
	for (int i = 0; i < MRY_SLOT_MAX; i++) {
		hs_free_database(db[i]);
		db[i] = NULL;
	}
}

static int compile_slots(struct mry_sigsrc *s, hs_database_t **db, bool *retry)
{
	const char **exprs = NULL;
	unsigned *flags = NULL, *ids = NULL;
	hs_expr_ext_t *exts = NULL;
	const hs_expr_ext_t **extp = NULL;
	uint32_t *idx = NULL;
	int rc = 0;

	*retry = false;
	exprs = calloc(s->nb + 1, sizeof(*exprs));
	flags = calloc(s->nb + 1, sizeof(*flags));
	ids = calloc(s->nb + 1, sizeof(*ids));
	exts = calloc(s->nb + 1, sizeof(*exts));
	extp = calloc(s->nb + 1, sizeof(*extp));
	idx = calloc(s->nb + 1, sizeof(*idx));
	if (exprs == NULL || flags == NULL || ids == NULL || exts == NULL ||
	    extp == NULL || idx == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (int slot = 0; slot < MRY_SLOT_MAX; slot++) {
		hs_compile_error_t *cerr = NULL;
		unsigned n = 0;

		for (uint32_t i = 0; i < s->nb; i++) {
			struct mry_sigsrc_sig *g = &s->sigs[i];

			if ((g->targets & (1u << slot)) == 0)
				continue;
			exprs[n] = g->expr;
			flags[n] = g->hs_flags;
			ids[n] = g->id;
			memset(&exts[n], 0, sizeof(exts[n]));
			extp[n] = NULL;
			if (g->min_offset != 0 || g->max_offset != 0) {
				exts[n].flags = HS_EXT_FLAG_MIN_OFFSET | HS_EXT_FLAG_MAX_OFFSET;
				exts[n].min_offset = g->min_offset;
				exts[n].max_offset = g->max_offset;
				extp[n] = &exts[n];
			}
			idx[n] = i;
			n++;
		}
		if (n == 0)
			continue;
		/* streaming: messages arrive in segments and are never
		 * buffered whole. NULL platform: tuned for this CPU, which the
		 * file header records and the loader checks. */
		if (hs_compile_ext_multi(exprs, flags, ids, extp, n, HS_MODE_STREAM,
					 NULL, &db[slot], &cerr) == HS_SUCCESS)
			continue;
		if (cerr != NULL && cerr->expression >= 0 && (unsigned)cerr->expression < n) {
			struct mry_sigsrc_sig *g = &s->sigs[idx[cerr->expression]];

			if (g->from_ndb) {
				char note[512];

				snprintf(note, sizeof(note), "%s: %s: %s: %s", g->origin,
					 g->name, mry_ndb_skip_name(MRY_NDB_SKIP_HS_COMPILE),
					 cerr->message);
				s->ndb.translated--;
				s->ndb.skipped[MRY_NDB_SKIP_HS_COMPILE]++;
				g->targets = 0;    /* dropped everywhere */
				*retry = true;
				rc = mry_sigsrc_add_note(s, note);
			} else {
				mry_sigsrc_add_error(s, g->origin, 0, 0, "Hyperscan refuses %s: %s",
					  g->name, cerr->message);
				rc = -EINVAL;
			}
		} else {
			mry_sigsrc_add_error(s, "compile", 0, 0, "Hyperscan: %s",
				  cerr != NULL ? cerr->message : "failed");
			rc = -EINVAL;
		}
		hs_free_compile_error(cerr);
		goto out;
	}
out:
	free(exprs);
	free(flags);
	free(ids);
	free(exts);
	free(extp);
	free(idx);
	if (rc != 0 || *retry)
		free_dbs(db);
	return rc;
}

int mry_sigsrc_compile(struct mry_sigsrc *s, const struct mry_sigc_opts *o,
		       uint8_t **out, size_t *out_len, struct mry_sigc_report *rep)
{
	hs_database_t *db[MRY_SLOT_MAX] = { NULL };
	char *blob[MRY_SLOT_MAX] = { NULL };
	size_t blen[MRY_SLOT_MAX] = { 0 };
	struct mry_sig_meta *metas = NULL;
	struct mry_sigdb_build b = { 0 };
	struct timespec t0, t1;
	hs_scratch_t *scratch = NULL;
	uint32_t nb = 0;
	bool retry;
	int rc;

	memset(rep, 0, sizeof(*rep));
	*out = NULL;
	*out_len = 0;
	if (s->nb_errors != 0)
		return -EINVAL;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (s->nb > 0)
		qsort(s->sigs, s->nb, sizeof(*s->sigs), cmp_sig_id);
	do {
		rc = compile_slots(s, db, &retry);
		if (rc != 0)
			return rc;
	} while (retry);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	rep->compile_s = (double)(t1.tv_sec - t0.tv_sec) +
			 (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

	metas = calloc(s->nb + 1, sizeof(*metas));
	if (metas == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < s->nb; i++) {
		const struct mry_sigsrc_sig *g = &s->sigs[i];

		if (g->targets == 0)
			continue;
		metas[nb].id = g->id;
		metas[nb].action = g->action;
		metas[nb].targets = g->targets;
		metas[nb].name = g->name;
		for (int k = 0; k < MRY_SLOT_MAX; k++)
			if (g->targets & (1u << k))
				rep->per_slot[k]++;
		nb++;
	}
	if (nb == 0) {
		mry_sigsrc_add_error(s, "compile", 0, 0, "no signatures to compile");
		rc = -ENOENT;
		goto out;
	}
	for (int k = 0; k < MRY_SLOT_MAX; k++) {
		if (db[k] == NULL)
			continue;
		if (hs_serialize_database(db[k], &blob[k], &blen[k]) != HS_SUCCESS ||
		    hs_alloc_scratch(db[k], &scratch) != HS_SUCCESS) {
			rc = -ENOMEM;
			goto out;
		}
		hs_stream_size(db[k], &rep->stream_size[k]);
		rep->hs_size[k] = blen[k];
	}
	if (scratch != NULL)
		hs_scratch_size(scratch, &rep->scratch_size);
	b.generation = o->generation;
	b.created = o->created;
	b.nb_sigs = nb;
	b.metas = metas;
	for (int k = 0; k < MRY_SLOT_MAX; k++) {
		b.hs_blob[k] = blob[k];
		b.hs_len[k] = blen[k];
	}
	b.sign_key = o->sign_key;
	rc = mry_sigdb_file_build(&b, out, out_len);
	rep->nb_sigs = nb;
out:
	hs_free_scratch(scratch);
	for (int k = 0; k < MRY_SLOT_MAX; k++)
		free(blob[k]);
	free_dbs(db);
	free(metas);
	return rc;
}
