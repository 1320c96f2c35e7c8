/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ClamAV .ndb import: Name:TargetType:Offset:HexSignature[:MinFL[:MaxFL]].
 * What Hyperscan can express is translated (hex syntax via sigsrc_hex.c,
 * absolute offsets by anchoring or Hyperscan offset bounds); everything
 * else is counted under a reason and kept as a note, never dropped
 * silently (patterns/README.md lists the mapping).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hs/hs.h>

#include "moray/sigsrc.h"
#include "sigsrc_priv.h"

static const char *const skip_names[MRY_NDB_SKIP_MAX] = {
	[MRY_NDB_SKIP_SYNTAX] = "syntax",
	[MRY_NDB_SKIP_OFFSET_EOF] = "offset_eof",
	[MRY_NDB_SKIP_OFFSET_EP] = "offset_ep",
	[MRY_NDB_SKIP_OFFSET_SECTION] = "offset_section",
	[MRY_NDB_SKIP_OFFSET_OTHER] = "offset_other",
	[MRY_NDB_SKIP_OFFSET_RANGE] = "offset_range",
	[MRY_NDB_SKIP_ANCHOR] = "anchor",
	[MRY_NDB_SKIP_NEG_MULTIBYTE] = "neg_multibyte",
	[MRY_NDB_SKIP_TARGET] = "target",
	[MRY_NDB_SKIP_HS_COMPILE] = "hs_compile",
};

const char *mry_ndb_skip_name(enum mry_ndb_skip r)
{
	if ((unsigned)r >= MRY_NDB_SKIP_MAX)
		return "unknown";
	return skip_names[r];
}


static int ndb_skip(struct mry_sigsrc *s, const char *fname, size_t line,
		    const char *name, size_t name_len, enum mry_ndb_skip r,
		    const char *why)
{
	char note[512];

	s->ndb.skipped[r]++;
	snprintf(note, sizeof(note), "%s:%zu: %.*s: %s: %s", fname, line,
		 (int)MRY_MIN(name_len, 200), name, mry_ndb_skip_name(r), why);
	return mry_sigsrc_add_note(s, note);
}

static int ndb_line(struct mry_sigsrc *s, const char *fname, size_t line,
		    const char *l, size_t len, uint32_t id_base)
{
	const char *fld[7];
	size_t fl[7], nf = 0, p = 0;
	struct mry_sigsrc_sig g = { 0 };
	struct mry_sigsrc_sb expr = { 0 };
	uint64_t mn, mx, off_n = 0, off_m = 0;
	bool anchored = false;
	char herr[160], hsmsg[256];
	unsigned long tt;
	char num[24], *endp;
	int rc;

	if (mry_sigsrc_blank_or_comment(l, len))
		return 0;
	s->ndb.lines++;
	while (nf < MRY_ARRAY_SIZE(fld)) {
		size_t e = p;

		while (e < len && l[e] != ':')
			e++;
		fld[nf] = l + p;
		fl[nf] = e - p;
		nf++;
		if (e >= len)
			break;
		p = e + 1;
	}
	if (nf < 4 || nf > 6)
		return ndb_skip(s, fname, line, fld[0], fl[0], MRY_NDB_SKIP_SYNTAX,
				"expected Name:TargetType:Offset:HexSignature[:MinFL[:MaxFL]]");
	if (fl[0] == 0 || fl[0] > MRY_SIGSRC_NAME_MAX)
		return ndb_skip(s, fname, line, fld[0], fl[0], MRY_NDB_SKIP_SYNTAX,
				"empty or overlong name");
	for (size_t i = 0; i < fl[0]; i++)
		if (!isgraph((unsigned char)fld[0][i]))
			return ndb_skip(s, fname, line, fld[0], fl[0], MRY_NDB_SKIP_SYNTAX,
					"blank or control character in name");
	if (nf > 4)
		s->ndb.flevel_ignored++;
	/* target type */
	if (fl[1] == 0 || fl[1] >= sizeof(num))
		return ndb_skip(s, fname, line, fld[0], fl[0], MRY_NDB_SKIP_SYNTAX,
				"bad target type");
	memcpy(num, fld[1], fl[1]);
	num[fl[1]] = '\0';
	tt = strtoul(num, &endp, 10);
	if (*endp != '\0' || !isdigit((unsigned char)num[0]))
		return ndb_skip(s, fname, line, fld[0], fl[0], MRY_NDB_SKIP_SYNTAX,
				"bad target type");
	switch (tt) {
	case 0: /* any file */
	case 4: /* mail: the message and what it carries */
		g.targets = MRY_TARGET_RAW | MRY_TARGET_DECODED;
		break;
	case 1: case 2: case 5: case 6: case 9: case 10: case 11: case 12:
	case 14:
		/* file types only exist once a MIME part is decoded */
		g.targets = MRY_TARGET_DECODED;
		break;
	case 3: case 7:
		/* HTML / ASCII: ClamAV matches normalised text; the closest we
		 * have is the decoded part (no normalisation: may miss) */
		g.targets = MRY_TARGET_DECODED;
		break;
	default:
		return ndb_skip(s, fname, line, fld[0], fl[0], MRY_NDB_SKIP_TARGET,
				"target type not mappable to a scan stream");
	}
	/* offset */
	if (fl[2] == 1 && fld[2][0] == '*') {
		/* anywhere */
	} else if (fl[2] > 0 && isdigit((unsigned char)fld[2][0])) {
		size_t i = 0;

		off_n = 0;
		while (i < fl[2] && isdigit((unsigned char)fld[2][i]) && off_n < 1000000000ULL)
			off_n = off_n * 10 + (uint64_t)(fld[2][i++] - '0');
		if (i < fl[2] && fld[2][i] == ',') {
			size_t j = ++i;

			while (i < fl[2] && isdigit((unsigned char)fld[2][i]) && off_m < 1000000000ULL)
				off_m = off_m * 10 + (uint64_t)(fld[2][i++] - '0');
			if (i == j)
				i = fl[2] + 1;   /* force syntax error */
		}
		if (i != fl[2])
			return ndb_skip(s, fname, line, fld[0], fl[0], MRY_NDB_SKIP_SYNTAX,
					"bad offset");
		anchored = true;
	} else if (fl[2] >= 4 && memcmp(fld[2], "EOF-", 4) == 0) {
		return ndb_skip(s, fname, line, fld[0], fl[0], MRY_NDB_SKIP_OFFSET_EOF,
				"offset from end of file: a stream's end is unknown while matching");
	} else if (fl[2] >= 3 && (memcmp(fld[2], "EP+", 3) == 0 || memcmp(fld[2], "EP-", 3) == 0)) {
		return ndb_skip(s, fname, line, fld[0], fl[0], MRY_NDB_SKIP_OFFSET_EP,
				"offset from the PE entry point needs PE parsing");
	} else if (fl[2] >= 2 && fld[2][0] == 'S' &&
		   (isdigit((unsigned char)fld[2][1]) || fld[2][1] == 'E' || fld[2][1] == 'L')) {
		return ndb_skip(s, fname, line, fld[0], fl[0], MRY_NDB_SKIP_OFFSET_SECTION,
				"offset relative to a PE section needs PE parsing");
	} else {
		return ndb_skip(s, fname, line, fld[0], fl[0], MRY_NDB_SKIP_OFFSET_OTHER,
				"offset form not supported (VI, macros, unknown)");
	}
	/* hex body */
	rc = mry_sigsrc_hex_translate(fld[3], fl[3], &expr, &mn, &mx, &s->ndb.wide_bounds,
			   herr, sizeof(herr), NULL);
	if (rc < 0) {
		free(expr.p);
		return rc;
	}
	if (rc > 0) {
		free(expr.p);
		return ndb_skip(s, fname, line, fld[0], fl[0],
				(enum mry_ndb_skip)(rc - 1), herr);
	}
	/* existence is all a verdict needs (SINGLEMATCH, no SOM); ClamAV
	 * wildcards are bytes, newlines included (DOTALL) */
	g.hs_flags = HS_FLAG_SINGLEMATCH | HS_FLAG_DOTALL;
	if (anchored) {
		if (off_n + off_m <= MRY_SIGSRC_HS_BOUND_MAX) {
			/* start of stream, then exactly n (or n..n+m) bytes */
			struct mry_sigsrc_sb a = { 0 };

			if (off_m == 0)
				mry_sigsrc_sb_printf(&a, "^.{%llu}(?:", (unsigned long long)off_n);
			else
				mry_sigsrc_sb_printf(&a, "^.{%llu,%llu}(?:", (unsigned long long)off_n,
					  (unsigned long long)(off_n + off_m));
			mry_sigsrc_sb_puts(&a, expr.p);
			mry_sigsrc_sb_puts(&a, ")");
			free(expr.p);
			expr = a;
			if (expr.oom) {
				free(expr.p);
				return -ENOMEM;
			}
		} else if (mn == mx) {
			/* fixed width: Hyperscan bounds the match end instead */
			g.min_offset = off_n + mn;
			g.max_offset = off_n + off_m + mn;
		} else {
			free(expr.p);
			return ndb_skip(s, fname, line, fld[0], fl[0], MRY_NDB_SKIP_OFFSET_RANGE,
					"offset beyond 32767 on a variable-width pattern");
		}
	}
	if (!mry_sigsrc_hs_check(expr.p, g.hs_flags, &g, hsmsg, sizeof(hsmsg))) {
		free(expr.p);
		return ndb_skip(s, fname, line, fld[0], fl[0], MRY_NDB_SKIP_HS_COMPILE, hsmsg);
	}
	if (line >= MRY_SIGSRC_NDB_ID_BASE)
		return ndb_skip(s, fname, line, fld[0], fl[0], MRY_NDB_SKIP_SYNTAX,
				"line number beyond the id range of one .ndb file");
	g.id = id_base + (uint32_t)line;
	g.action = MRY_ACTION_REJECT;
	g.from_ndb = true;
	g.name = strndup(fld[0], fl[0]);
	g.origin = mry_sigsrc_origin(fname, line);
	g.expr = expr.p;
	if (g.name == NULL || g.origin == NULL) {
		mry_sigsrc_sig_clear(&g);
		return -ENOMEM;
	}
	s->ndb.translated++;
	return mry_sigsrc_add_sig(s, &g);
}

int mry_sigsrc_parse_ndb(struct mry_sigsrc *s, const char *fname,
			 const char *text, size_t len)
{
	uint32_t base;

	if (s->nb_ndb_files >= UINT32_MAX / MRY_SIGSRC_NDB_ID_BASE - 1) {
		mry_sigsrc_add_error(s, fname, 0, 0, "too many .ndb files");
		return -EINVAL;
	}
	base = MRY_SIGSRC_NDB_ID_BASE * (s->nb_ndb_files + 1);
	s->nb_ndb_files++;
	return mry_sigsrc_for_each_line(s, fname, text, len, ndb_line, base);
}
