/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Scanning: Hyperscan streaming mode, per message. One stream over the raw
 * message, one over the current decoded part, one over header blocks; each
 * fed the chunks SMTP and MIME produce, zero-copy. Stream state exists only
 * while a message is in progress, from a per-worker pool. Matches map to
 * signature metadata; the most severe action wins.
 */
#ifndef MORAY_SCAN_H
#define MORAY_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "moray/common.h"
#include "moray/sigdb.h"

#define MRY_SCAN_MAX_SIGS 16     /* signatures reported per message */
#define MRY_SCAN_NAME_MAX 96

struct mry_scan_result {
	enum mry_sig_action action;  /* most severe matched action, NONE if clean */
	uint64_t generation;         /* the generation that judged it */
	uint32_t nb_sigs;            /* distinct signatures matched (<= MRY_SCAN_MAX_SIGS kept) */
	uint32_t nb_sigs_total;
	uint32_t sig_ids[MRY_SCAN_MAX_SIGS];
	char sig_names[MRY_SCAN_MAX_SIGS][MRY_SCAN_NAME_MAX];
	uint8_t sig_actions[MRY_SCAN_MAX_SIGS];
	bool scan_error;             /* Hyperscan failed mid-message: treat as not scanned */
};

struct mry_scan_stats {
	uint64_t messages;
	uint64_t bytes_raw;
	uint64_t bytes_decoded;
	uint64_t bytes_headers;
	uint64_t matches;
	uint64_t msg_pool_empty;
	uint64_t stream_pool_empty;
	uint64_t scratch_errors;
	uint64_t scratch_handed;     /* scratch taken ready from a generation (control-side made) */
	uint64_t scratch_grown;      /* scratch grown on the worker (hs_alloc_scratch) */
	uint64_t hs_errors;
	uint64_t prepare_lazy;       /* msg_begin had to prepare a generation itself */
};

struct mry_scanner;      /* per worker: scratch per generation, pools */
struct mry_scan_msg;     /* one message in progress */

/** @max_msgs: messages in progress at once on this worker (pool size). */
struct mry_scanner *mry_scanner_create(const struct mry_alloc *a, uint32_t max_msgs);
void mry_scanner_destroy(struct mry_scanner *s);
/** Same with an explicit stream-state pool size (default 3 per message:
 * raw, headers, current part). Tests use it to reach "stream pool empty". */
struct mry_scanner *mry_scanner_create_ex(const struct mry_alloc *a, uint32_t max_msgs,
					  uint32_t max_streams);
/** Bytes of this worker's Hyperscan scratch (0 before prepare). */
size_t mry_scanner_scratch_size(const struct mry_scanner *s);

/**
 * Make sure this worker's scratch fits @g: take the one @g brings for a
 * worker (made by the controller), else grow its own with hs_alloc_scratch. Call
 * on the worker when it first sees a new generation; not per packet.
 * Returns 0, -ENOMEM.
 */
int mry_scanner_prepare(struct mry_scanner *s, struct mry_sigdb_gen *g);

/**
 * Begin a message judged by @g: takes a reference on @g (released by
 * mry_scan_msg_end/abort), opens the streams. NULL when a pool is empty
 * (counted): the caller must not pass the message as clean.
 */
struct mry_scan_msg *mry_scan_msg_begin(struct mry_scanner *s, struct mry_sigdb_gen *g);

void mry_scan_msg_raw(struct mry_scan_msg *m, const uint8_t *data, size_t len);
/* all header blocks of a message (top level and parts) share one stream */
void mry_scan_msg_headers(struct mry_scan_msg *m, const uint8_t *data, size_t len);
/* a decoded leaf part: a fresh stream per part so offsets are per part */
void mry_scan_msg_part_begin(struct mry_scan_msg *m);
void mry_scan_msg_part_data(struct mry_scan_msg *m, const uint8_t *data, size_t len);
void mry_scan_msg_part_end(struct mry_scan_msg *m);

/** Close all streams (end-anchored matches fire), fill @res, release. */
void mry_scan_msg_end(struct mry_scan_msg *m, struct mry_scan_result *res);
/** Release without a verdict. */
void mry_scan_msg_abort(struct mry_scan_msg *m);

/**
 * Convenience for tests, rescans and bench: scan a whole in-memory message
 * (raw target only, no MIME) with @g in one call.
 */
int mry_scan_buffer(struct mry_scanner *s, struct mry_sigdb_gen *g,
		    const uint8_t *data, size_t len, struct mry_scan_result *res);

void mry_scan_get_stats(const struct mry_scanner *s, struct mry_scan_stats *st);

#endif /* MORAY_SCAN_H */
