/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Signature sources and the database compiler (control path, tools only).
 *
 * A source set collects signatures from moray's own text format
 * (patterns/README.md) and from ClamAV body signatures (.ndb), each turned
 * into one Hyperscan expression with its metadata. Mistakes in moray sources
 * are errors carrying file:line:col; .ndb signatures Hyperscan cannot express
 * are never skipped silently: each is counted under a reason
 * (enum mry_ndb_skip) and listed. mry_sigsrc_compile() then builds a complete
 * database file image (sigdb.h format) in memory.
 */
#ifndef MORAY_SIGSRC_H
#define MORAY_SIGSRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moray/sigdb.h"

/* moray-format ids live below this; .ndb file k gets ids
 * MRY_SIGSRC_NDB_ID_BASE * (k + 1) + line number. */
#define MRY_SIGSRC_NDB_ID_BASE 1000000u
#define MRY_SIGSRC_NAME_MAX 255          /* bytes of a signature name */
#define MRY_SIGSRC_MAX_ERRORS 64         /* error messages kept (all counted) */
#define MRY_SIGSRC_HS_BOUND_MAX 32767    /* Hyperscan's largest {n,m} bound */

/* Why a .ndb signature was not translated. */
enum mry_ndb_skip {
	MRY_NDB_SKIP_SYNTAX = 0,         /* malformed line or hex signature */
	MRY_NDB_SKIP_OFFSET_EOF,         /* EOF-n: streams do not know their end */
	MRY_NDB_SKIP_OFFSET_EP,          /* EP+n / EP-n: PE entry point */
	MRY_NDB_SKIP_OFFSET_SECTION,     /* Sx+n, SEx, SL+n: PE sections */
	MRY_NDB_SKIP_OFFSET_OTHER,       /* VI, $macros, unknown offset forms */
	MRY_NDB_SKIP_OFFSET_RANGE,       /* absolute offset too far for a variable-width pattern */
	MRY_NDB_SKIP_ANCHOR,             /* (B) (L) (W) boundary anchors: no look-around */
	MRY_NDB_SKIP_NEG_MULTIBYTE,      /* !(aabb|cc..): negated multi-byte alternative */
	MRY_NDB_SKIP_TARGET,             /* target type 8, 13 or unknown */
	MRY_NDB_SKIP_HS_COMPILE,         /* Hyperscan refused the translation */
	MRY_NDB_SKIP_MAX,
};

struct mry_ndb_report {
	uint32_t lines;                  /* signature lines seen */
	uint32_t translated;
	uint32_t skipped[MRY_NDB_SKIP_MAX];
	uint32_t flevel_ignored;         /* MinFL/MaxFL fields present (ignored) */
	uint32_t wide_bounds;            /* {n-m} bounds > 32767 turned into .* */
};

/* One translated signature. */
struct mry_sigsrc_sig {
	uint32_t id;                     /* unique; the Hyperscan expression id */
	uint8_t action;                  /* enum mry_sig_action, never NONE */
	uint8_t targets;                 /* MRY_TARGET_* mask, non-zero */
	bool from_ndb;
	unsigned hs_flags;               /* HS_FLAG_* */
	uint64_t min_offset;             /* HS end-offset bounds, 0 = none */
	uint64_t max_offset;
	char *name;
	char *expr;                      /* Hyperscan (PCRE-subset) expression */
	char *origin;                    /* "file:line" */
};

struct mry_sigsrc;

/** An empty source set, or NULL (no memory). */
struct mry_sigsrc *mry_sigsrc_create(void);
void mry_sigsrc_destroy(struct mry_sigsrc *s);

/**
 * Parse moray-format text. @fname names it in messages. Every mistake is
 * counted and (up to MRY_SIGSRC_MAX_ERRORS) kept as "file:line:col: text".
 * @return 0, -EINVAL (errors recorded, valid lines still added), -ENOMEM.
 */
int mry_sigsrc_parse(struct mry_sigsrc *s, const char *fname,
		     const char *text, size_t len);

/**
 * Import ClamAV .ndb text. Untranslatable signatures are counted in the
 * set's report (mry_sigsrc_ndb_report) and listed as notes; they are not
 * errors. Ids: MRY_SIGSRC_NDB_ID_BASE * (k + 1) + line, k = number of .ndb
 * sources added before. @return 0 or -ENOMEM.
 */
int mry_sigsrc_parse_ndb(struct mry_sigsrc *s, const char *fname,
			 const char *text, size_t len);

/** Read @path and parse it: *.ndb as ClamAV, anything else moray format.
 * @return as above, or -errno when the file cannot be read (recorded). */
int mry_sigsrc_add_file(struct mry_sigsrc *s, const char *path);

uint32_t mry_sigsrc_nb_sigs(const struct mry_sigsrc *s);
const struct mry_sigsrc_sig *mry_sigsrc_sig_at(const struct mry_sigsrc *s, uint32_t i);
uint32_t mry_sigsrc_nb_errors(const struct mry_sigsrc *s);
/** Kept error @i ("file:line:col: message"), NULL past the kept ones. */
const char *mry_sigsrc_error(const struct mry_sigsrc *s, uint32_t i);
/** Notes about skipped .ndb signatures ("file:line: name: reason"). */
uint32_t mry_sigsrc_nb_notes(const struct mry_sigsrc *s);
const char *mry_sigsrc_note(const struct mry_sigsrc *s, uint32_t i);
const struct mry_ndb_report *mry_sigsrc_ndb_report(const struct mry_sigsrc *s);
/** Stable name of a skip reason ("offset_eof"). */
const char *mry_ndb_skip_name(enum mry_ndb_skip r);

/**
 * Translate one ClamAV hex signature (also moray's hex: patterns) into a
 * Hyperscan expression. On success *@expr is malloc'ed, *@min_w / *@max_w
 * receive the byte width range (max UINT64_MAX = unbounded). On failure a
 * reason and a message with the 0-based column are returned.
 * @return 0, or 1 + enum mry_ndb_skip on failure, or -ENOMEM.
 */
int mry_sigsrc_hex_to_expr(const char *hex, size_t len, char **expr,
			   uint64_t *min_w, uint64_t *max_w,
			   char *err, size_t err_len, size_t *err_col);

struct mry_sigc_opts {
	uint64_t generation;
	uint64_t created;                /* unix seconds */
	const uint8_t *sign_key;         /* Ed25519 secret key (64 bytes) or NULL */
};

struct mry_sigc_report {
	uint32_t nb_sigs;                /* signatures in the file */
	uint32_t per_slot[MRY_SLOT_MAX];
	size_t hs_size[MRY_SLOT_MAX];    /* serialised bytes per slot */
	size_t stream_size[MRY_SLOT_MAX];
	size_t scratch_size;
	double compile_s;
};

/**
 * Compile the set into a database image. Hyperscan compiles one
 * HS_MODE_STREAM database per slot. A .ndb signature Hyperscan refuses is
 * dropped and counted (MRY_NDB_SKIP_HS_COMPILE); a refused moray signature
 * is an error with its origin. *@out is malloc'ed (caller frees).
 * @return 0, -EINVAL (errors recorded), -ENOMEM, -ENOENT (no signatures).
 */
int mry_sigsrc_compile(struct mry_sigsrc *s, const struct mry_sigc_opts *o,
		       uint8_t **out, size_t *out_len, struct mry_sigc_report *rep);

#endif /* MORAY_SIGSRC_H */
