/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Private to the MIME parser (mime*.c) and its unit tests. Dependencies run
 * one way: mime.c (the body parser) drives the header-block reader and the
 * header-field parser of mime_hdr.c, which return results and never call
 * back; both use the decoders (mime_b64.c, mime_qp.c, mime_uu.c).
 */
#ifndef MORAY_MIME_PRIV_H
#define MORAY_MIME_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moray/mime.h"

#define MRY_MIME_CT_MAX 96          /* "type/subtype", lower case */
#define MRY_MIME_CHARSET_MAX 48
#define MRY_MIME_NAME_MAX 256       /* decoded filename, truncated beyond */
#define MRY_MIME_BOUNDARY_MAX 200   /* RFC 2046 allows 70; longer is an anomaly */
#define MRY_MIME_FIELD_MAX 4096     /* one unfolded header field kept for parsing */

/* What the parser keeps from one entity's header block. */
struct mry_mime_hdr {
	char ct[MRY_MIME_CT_MAX];
	char charset[MRY_MIME_CHARSET_MAX];
	char filename[MRY_MIME_NAME_MAX];   /* Content-Disposition filename */
	char name[MRY_MIME_NAME_MAX];       /* Content-Type name */
	char boundary[MRY_MIME_BOUNDARY_MAX + 1];
	uint16_t boundary_len;
	bool have_ct;
	bool have_cte;
	bool have_boundary;
	bool boundary_too_long;
	bool attachment;
	enum mry_mime_encoding enc;
	uint32_t anomalies;                 /* bit per enum mry_mime_anomaly */
};

/**
 * Parse one unfolded header field. @name is the field name (any case),
 * @value its body after the colon. Content-Type, Content-Transfer-Encoding
 * and Content-Disposition update @h; other names are ignored.
 */
void mry_mime_hdr_field(struct mry_mime_hdr *h, const char *name, size_t name_len,
			const char *value, size_t value_len);

/*
 * One header block read line by line: fields are unfolded into a bounded
 * buffer (@field, MRY_MIME_FIELD_MAX bytes, owned by the caller) and each
 * complete field is parsed into @hdr. Pure: no callbacks; anomalies are
 * left as bits in hdr.anomalies for the caller to report.
 */
struct mry_mime_hdr_block {
	struct mry_mime_hdr hdr;
	char *field;
	uint32_t field_len;
	uint32_t bytes;                     /* raw bytes seen in this block */
	uint32_t max_bytes;                 /* past it, fields are not parsed */
	uint32_t lines;                     /* lines that belong to the block */
	bool capped;
	bool skip;                          /* field not parsed: only counted, not copied */
};

/* What one line of a header block turned out to be. */
enum mry_mime_hdr_line {
	MRY_MIME_HL_FIELD = 0,   /* a field, a continuation, or a piece of a long line */
	MRY_MIME_HL_END,         /* the empty line that ends the block */
	MRY_MIME_HL_NOT_FIELD,   /* not a header line: no field name before a colon */
};

/** Start a block; @field is the caller's unfolding buffer. */
void mry_mime_hdr_block_init(struct mry_mime_hdr_block *b, char *field, uint32_t max_bytes);

/**
 * Account one line of the block (or a piece of a line longer than the
 * caller's line buffer: @line_start false). @n counts the line end, @clen
 * does not. A NOT_FIELD line is not taken into the block (lines unchanged);
 * the field before it is complete.
 */
enum mry_mime_hdr_line mry_mime_hdr_block_line(struct mry_mime_hdr_block *b,
					       const uint8_t *p, size_t n,
					       size_t clen, bool line_start);

/** Parse the field still being unfolded (the block ends). */
void mry_mime_hdr_block_finish(struct mry_mime_hdr_block *b);

/**
 * Decode RFC 2047 encoded-words in @in (NUL-terminated) into @out, UTF-8
 * for utf-8/us-ascii/iso-8859-1 (latin1 converted), raw bytes otherwise.
 * Always NUL-terminates; truncates at @cap - 1.
 */
void mry_mime_decode_2047(const char *in, char *out, size_t cap);

/**
 * The first line start in [p, p + n) (p[n - 1] is a LF, the line at p is
 * not looked at) that begins with '-' or, with @uu, with "begin" whole
 * within the range; NULL when none does. mime_line.c.
 */
const uint8_t *mry_mime_line_mark(const uint8_t *p, size_t n, bool uu);

/*
 * Parser state, shared by mime.c (the parser) and mime_ctx.c (the per-worker
 * context that sizes and pools it). Nothing else looks inside.
 */

#define MIME_SLICE 4096            /* input decoded per step into m->out */
#define MIME_OUT_MAX (MRY_QP_DEC_BOUND(MIME_SLICE) + 128)

enum mime_state {
	ST_HEADERS = 0,  /* an entity's header block */
	ST_BODY,         /* a leaf body, through its decoder */
	ST_SKIP,         /* epilogue, empty container: ignored */
	ST_PREAMBLE,     /* before a multipart's first delimiter: held in m->pre */
	ST_UU,           /* a uuencoded region found inside a text leaf */
	ST_TEXT_RESUME,  /* text after such a region, not yet reopened */
	ST_DEAD,         /* part cap reached: nothing more is parsed */
};

enum frame_kind {
	FR_MULTIPART = 0,
	FR_MESSAGE,
};

struct mime_frame {
	uint8_t kind;
	bool digest;
	bool seen;                          /* one of its delimiters appeared */
	uint16_t blen;
	char boundary[MRY_MIME_BOUNDARY_MAX];
};

struct mry_mime_ctx {
	const struct mry_alloc *alloc;
	struct mry_mime_config cfg;
	struct mry_mime_callbacks cb;
	struct mry_pool *pool;
	struct mry_pool *nested_pool;       /* layers for encoded messages only */
	size_t off_frames;
	size_t off_line;
	size_t off_field;
	size_t off_pre;
	struct mry_mime_stats st;
};

struct mry_mime {
	struct mry_mime_ctx *ctx;
	void *user;
	struct mry_mime *root;              /* outermost layer (this one at top level) */
	struct mry_mime *child;             /* layer parsing this one's decoded body */
	bool nested;                        /* from nested_pool */
	uint32_t depth_base;                /* depth of this layer's first entity */
	enum mime_state state;
	uint32_t nframes;
	struct mime_frame *frames;          /* [cfg.max_depth] */

	uint8_t *line;                      /* [cfg.max_line] */
	uint32_t line_len;
	bool in_long_line;                  /* the next bytes continue a line */
	bool first_line;
	uint8_t eol[2];                     /* held-back EOL of the last body line */
	uint8_t eol_len;

	char *field;                        /* [MRY_MIME_FIELD_MAX] */
	uint8_t *pre;                       /* [cfg.max_preamble] */
	uint32_t pre_len;
	bool pre_text;                      /* a held line has more than blanks */
	struct mry_mime_hdr_block hb;       /* the header block being read */

	uint32_t entity_index;
	uint32_t entity_depth;

	struct mry_mime_part_info pi;
	enum mry_mime_encoding dec_enc;
	union {
		struct mry_b64_dec b64;
		struct mry_qp_dec qp;
		struct mry_uu_dec uu;
	} dec;
	bool uu_scan;
	uint32_t an_mask;                   /* anomalies reported once per entity */
	uint64_t part_bytes;
	uint64_t msg_bytes;
	bool part_over;
	bool msg_over;
	uint32_t nparts;
	/*
	 * MIME_NOZERO_FROM on: buffers written before they are read, which
	 * the pool does not zero per message (4.5 KB of the 5.7 KB struct).
	 */
	char uu_name[MRY_MIME_NAME_MAX];    /* written by mry_uu_is_begin() */
	uint8_t out[MIME_OUT_MAX];          /* decoder output of one slice */
};

#define MIME_NOZERO_FROM offsetof(struct mry_mime, uu_name)

#endif /* MORAY_MIME_PRIV_H */
