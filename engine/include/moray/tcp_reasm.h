/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TCP reassembly: one in-order byte stream per direction. In-order segments
 * are delivered zero-copy (the consumer gets pointers into the packet);
 * out-of-order segments are copied into a per-worker segment pool (so
 * receive buffers are never pinned), capped per stream and per worker.
 * Overlaps with identical bytes are retransmissions (absorbed); overlaps with
 * different bytes are an evasion (Ptacek & Newsham 1998; Novak & Sturges
 * "Target-based TCP stream reassembly" 2007): detected, counted, reported,
 * and answered by policy. Stream offsets are 64-bit counts of bytes after
 * the ISN, so sequence wrap-around is invisible to consumers.
 */
#ifndef MORAY_TCP_REASM_H
#define MORAY_TCP_REASM_H

#include <stdbool.h>
#include <stdint.h>

#include "moray/common.h"
#include "moray/decode.h"

enum mry_reasm_overlap_policy {
	MRY_REASM_OVERLAP_FIRST = 0, /* default: first copy wins, flow flagged */
	MRY_REASM_OVERLAP_LAST,      /* later copy replaces buffered (not yet delivered) bytes */
};

struct mry_reasm_config {
	uint32_t seg_pool_count;     /* per worker, default 65536 */
	uint32_t seg_size;           /* bytes per pooled segment buffer, default 2048 */
	uint32_t max_ooo_bytes;      /* per stream, default 256 KiB */
	uint32_t max_ooo_segs;       /* per stream, default 256 */
	enum mry_reasm_overlap_policy policy;
};

/* Stream flags */
#define MRY_STREAM_SYN_SEEN   0x01u  /* ISN known from a SYN */
#define MRY_STREAM_MIDSTREAM  0x02u  /* base taken from the first data segment */
#define MRY_STREAM_FIN_SEEN   0x04u  /* FIN received (maybe not yet in order) */
#define MRY_STREAM_FIN_DONE   0x08u  /* all bytes up to the FIN delivered */
#define MRY_STREAM_RST        0x10u
#define MRY_STREAM_CONFLICT   0x20u  /* a conflicting overlap happened */
#define MRY_STREAM_GAP        0x40u  /* bytes were skipped (ooo cap, forced gap) */
#define MRY_STREAM_STARTED    0x80u  /* base sequence known */

struct mry_reasm_seg;

/* Per-direction state, embedded in struct mry_flow (kept small). */
struct mry_tcp_stream {
	uint32_t base_seq;           /* sequence number of stream offset 0 */
	uint32_t next_seq;           /* next in-order sequence expected */
	uint32_t fin_seq;            /* sequence of the FIN (valid if FIN_SEEN) */
	uint16_t nb_ooo;             /* buffered out-of-order segments */
	uint8_t flags;
	uint8_t wscale;
	uint32_t ooo_bytes;
	uint32_t wrap_hi;            /* high 32 bits of the next in-order offset */
	struct mry_reasm_seg *ooo;   /* sorted list of buffered segments */
};

/* What happened to one segment (the engine acts on it). */
enum mry_reasm_result {
	MRY_REASM_EMPTY = 0,         /* no payload (pure ACK, SYN, FIN...) */
	MRY_REASM_IN_ORDER,          /* delivered (and possibly buffered followers) */
	MRY_REASM_OUT_OF_ORDER,      /* ahead of the stream: copied and buffered */
	MRY_REASM_RETRANSMIT,        /* all bytes already seen, identical: absorbed */
	MRY_REASM_CONFLICT,          /* overlap with different bytes: evasion */
	MRY_REASM_OOO_FULL,          /* ahead of the stream, but a cap was hit: not kept (counted) */
	MRY_REASM_AFTER_CLOSE,       /* data after FIN/RST: ignored (counted) */
	MRY_REASM_NOT_STARTED,       /* no base sequence yet (e.g. SYN-ACK missing) */
};

/* Segment description returned to the caller, for withholding decisions. */
struct mry_reasm_seg_info {
	uint64_t off;                /* stream offset of the first payload byte */
	uint32_t len;                /* payload length */
	enum mry_reasm_result result;
};

struct mry_reasm_stats {
	uint64_t segments;
	uint64_t in_order;
	uint64_t out_of_order;
	uint64_t retransmit;
	uint64_t overlap_same;
	uint64_t overlap_conflict;
	uint64_t ooo_stream_cap;     /* per-stream cap hit */
	uint64_t ooo_pool_empty;     /* per-worker pool empty */
	uint64_t after_close;
	uint64_t bytes_delivered;
	uint64_t bytes_buffered;     /* currently held in ooo buffers */
	uint64_t overlap_delivered;  /* partly before the delivered edge: old part not compared, new part delivered */
	uint64_t syn_mismatch;       /* SYN whose ISN differs from the known one: ignored */
	uint64_t fin_mismatch;       /* FIN at another sequence than the first FIN, or before delivered data: ignored */
};

struct mry_reasm;  /* per-worker: segment pool, config, stats */

/**
 * Consumer of in-order bytes. @data points into the packet or a pool buffer
 * and is valid only during the call. @off is the stream offset of data[0].
 */
typedef void (*mry_reasm_deliver_fn)(void *ctx, struct mry_tcp_stream *s,
				     const uint8_t *data, uint32_t len,
				     uint64_t off);

struct mry_reasm *mry_reasm_create(const struct mry_alloc *a,
				   const struct mry_reasm_config *cfg);
void mry_reasm_destroy(struct mry_reasm *r);

void mry_tcp_stream_init(struct mry_tcp_stream *s);
/** Return buffered segments to the pool (flow end / eviction). */
void mry_tcp_stream_release(struct mry_reasm *r, struct mry_tcp_stream *s);

/**
 * Process one segment of this direction: SYN sets the ISN, data is delivered
 * in order through @fn (possibly several calls: this segment, then buffered
 * segments it made contiguous), FIN/RST update flags. Fast-path safe.
 * @return the classification (also in info->result when @info is not NULL).
 */
enum mry_reasm_result mry_reasm_segment(struct mry_reasm *r,
					struct mry_tcp_stream *s,
					const struct mry_pkt *pkt,
					mry_reasm_deliver_fn fn, void *ctx,
					struct mry_reasm_seg_info *info);

/** Stream offset of sequence number @seq (wrap-safe, relative to next_seq). */
uint64_t mry_tcp_stream_offset(const struct mry_tcp_stream *s, uint32_t seq);

/** Next in-order offset (bytes delivered so far). */
uint64_t mry_tcp_stream_delivered(const struct mry_tcp_stream *s);

/**
 * Withholding: does @pkt (of this direction) carry any byte at or past stream
 * offset @off? A FIN at or past @off also counts.
 */
bool mry_tcp_stream_reaches(const struct mry_tcp_stream *s,
			    const struct mry_pkt *pkt, uint64_t off);

void mry_reasm_get_stats(const struct mry_reasm *r, struct mry_reasm_stats *st);

/**
 * The per-worker segment pool (read its stats, or make it fail with
 * mry_pool_debug_fail_every() in tests). Owned by @r.
 */
struct mry_pool *mry_reasm_pool(struct mry_reasm *r);

#endif /* MORAY_TCP_REASM_H */
