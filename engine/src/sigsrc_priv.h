/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Internals shared by sigsrc.c (set, moray format, compiler), sigsrc_hex.c
 * (ClamAV hex syntax -> Hyperscan), sigsrc_ndb.c (.ndb importer) and
 * sigsrc_buf.c (what the parsers share). Calls run one way: sigsrc.c uses
 * the parsers, sigsrc_ndb.c uses sigsrc_hex.c, and all of them use
 * sigsrc_buf.c, which uses none of them.
 */
#ifndef MORAY_SIGSRC_PRIV_H
#define MORAY_SIGSRC_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moray/sigsrc.h"

struct mry_sigsrc {
	struct mry_sigsrc_sig *sigs;
	uint32_t nb, cap;
	uint32_t nb_ndb_files;
	uint32_t nb_errors;
	char *errors[MRY_SIGSRC_MAX_ERRORS];
	uint32_t nb_notes, notes_cap;
	char **notes;
	struct mry_ndb_report ndb;
};

/* ---- sigsrc_buf.c ---- */

/* growable string; on allocation failure sets oom and ignores more input */
struct mry_sigsrc_sb {
	char *p;
	size_t len, cap;
	bool oom;
};

void mry_sigsrc_sb_putn(struct mry_sigsrc_sb *b, const char *s, size_t n);
void mry_sigsrc_sb_puts(struct mry_sigsrc_sb *b, const char *s);
void mry_sigsrc_sb_printf(struct mry_sigsrc_sb *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/** Append "\xHH". */
void mry_sigsrc_sb_byte(struct mry_sigsrc_sb *b, unsigned v);

/** Count an error; keep "file:line:col: message" for the first ones. */
void mry_sigsrc_add_error(struct mry_sigsrc *s, const char *fname, size_t line,
			  size_t col, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/** Keep a note (skipped .ndb signature). 0 or -ENOMEM. */
int mry_sigsrc_add_note(struct mry_sigsrc *s, const char *text);
/** Append @g, taking ownership of its strings (freed on failure). 0 or -ENOMEM. */
int mry_sigsrc_add_sig(struct mry_sigsrc *s, const struct mry_sigsrc_sig *g);
void mry_sigsrc_sig_clear(struct mry_sigsrc_sig *g);
/** Hyperscan's verdict on one expression; false with @msg when refused
 * or when it can match the empty string. */
bool mry_sigsrc_hs_check(const char *expr, unsigned flags, const struct mry_sigsrc_sig *g,
			 char *msg, size_t msg_len);
/** malloc'ed "file:line", NULL on no memory. */
char *mry_sigsrc_origin(const char *fname, size_t line);

typedef int (*mry_sigsrc_line_fn)(struct mry_sigsrc *s, const char *fname, size_t line,
				  const char *l, size_t len, uint32_t id_base);
/** Call @fn per line (LF or CRLF), stopping at a negative return. */
int mry_sigsrc_for_each_line(struct mry_sigsrc *s, const char *fname, const char *text,
			     size_t len, mry_sigsrc_line_fn fn, uint32_t id_base);
bool mry_sigsrc_blank_or_comment(const char *l, size_t len);

/* ---- sigsrc_hex.c ---- */

/**
 * Translate ClamAV hex syntax into @out. *@wide (may be NULL) accumulates
 * bounds widened past MRY_SIGSRC_HS_BOUND_MAX.
 * @return 0, 1 + enum mry_ndb_skip with @err / *@err_col, or -ENOMEM.
 */
int mry_sigsrc_hex_translate(const char *hex, size_t len, struct mry_sigsrc_sb *out,
			     uint64_t *min_w, uint64_t *max_w, uint32_t *wide,
			     char *err, size_t err_len, size_t *err_col);

#endif /* MORAY_SIGSRC_PRIV_H */
