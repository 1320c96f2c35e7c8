/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Signature database files, their loader, and generations. A file is either
 * completely right for this machine or never used: size, magic, version,
 * digest, signature, Hyperscan platform and generation number are all
 * checked before a generation object exists (DESIGN.md, "Signature database
 * and generations"). Generations are reference counted: a message pins the
 * generation that was active when its data began and finishes on it.
 */
#ifndef MORAY_SIGDB_H
#define MORAY_SIGDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moray/common.h"

/* Severity-ordered: the most severe matched action wins. */
enum mry_sig_action {
	MRY_ACTION_NONE = 0,
	MRY_ACTION_LOG = 1,
	MRY_ACTION_TEMPFAIL = 2,
	MRY_ACTION_REJECT = 3,
};

/* Scan targets (bit mask). */
#define MRY_TARGET_RAW      0x1u   /* the message as the server receives it */
#define MRY_TARGET_DECODED  0x2u   /* decoded MIME leaf bodies */
#define MRY_TARGET_HEADERS  0x4u   /* header blocks (top level and parts) */
#define MRY_TARGET_ANY      0x7u

/* Hyperscan database slots in a generation, one per target stream. */
enum mry_sigdb_slot {
	MRY_SLOT_RAW = 0,
	MRY_SLOT_DECODED,
	MRY_SLOT_HEADERS,
	MRY_SLOT_MAX,
};

/* Loader outcome: each reason distinct, counted, logged and tested. */
enum mry_sigdb_status {
	MRY_SIGDB_OK = 0,
	MRY_SIGDB_IO_ERROR,          /* cannot open/read (missing file included) */
	MRY_SIGDB_TRUNCATED,         /* shorter than its header says */
	MRY_SIGDB_TOO_LONG,          /* longer than its header says */
	MRY_SIGDB_BAD_MAGIC,
	MRY_SIGDB_BAD_VERSION,
	MRY_SIGDB_BAD_HEADER,        /* inconsistent lengths/counts */
	MRY_SIGDB_DIGEST_MISMATCH,
	MRY_SIGDB_UNSIGNED,          /* a public key is configured, file carries no signature */
	MRY_SIGDB_BAD_SIG,           /* signature does not verify with the configured key */
	MRY_SIGDB_PLATFORM,          /* built for another Hyperscan version/platform */
	MRY_SIGDB_HS_DESERIALIZE,    /* Hyperscan refused the serialised database */
	MRY_SIGDB_BAD_META,          /* metadata table malformed */
	MRY_SIGDB_STALE_GEN,         /* generation not above the active one (rollback) */
	MRY_SIGDB_NO_MEM,
	MRY_SIGDB_STATUS_MAX,
};

struct mry_sig_meta {
	uint32_t id;
	uint8_t action;              /* enum mry_sig_action */
	uint8_t targets;             /* MRY_TARGET_* */
	const char *name;
};

struct mry_sigdb_gen;            /* opaque, refcounted */

struct mry_sigdb_load_opts {
	const uint8_t *pubkey;       /* Ed25519 public key (32 bytes) or NULL */
	uint64_t min_generation;     /* must be strictly above this (0: any) */
};

/**
 * Validate and load a database file. On MRY_SIGDB_OK *out holds a new
 * generation with one reference. Otherwise *out is NULL and @detail (if not
 * NULL) receives a one-line human reason. Control path only.
 */
enum mry_sigdb_status mry_sigdb_load_file(const char *path,
					  const struct mry_sigdb_load_opts *opts,
					  struct mry_sigdb_gen **out,
					  char *detail, size_t detail_len);
/** Same, from memory (tests, fuzzing). The buffer is not retained. */
enum mry_sigdb_status mry_sigdb_load_mem(const uint8_t *buf, size_t len,
					 const struct mry_sigdb_load_opts *opts,
					 struct mry_sigdb_gen **out,
					 char *detail, size_t detail_len);

/** Stable snake_case name ("digest_mismatch"). */
const char *mry_sigdb_status_name(enum mry_sigdb_status st);

/* Reference counting (atomic; any thread). The last unref frees. */
void mry_sigdb_gen_ref(struct mry_sigdb_gen *g);
void mry_sigdb_gen_unref(struct mry_sigdb_gen *g);

uint64_t mry_sigdb_gen_number(const struct mry_sigdb_gen *g);
uint64_t mry_sigdb_gen_created(const struct mry_sigdb_gen *g);   /* unix seconds */
uint32_t mry_sigdb_gen_nb_sigs(const struct mry_sigdb_gen *g);
/** Metadata by Hyperscan expression id; NULL when unknown. */
const struct mry_sig_meta *mry_sigdb_gen_sig(const struct mry_sigdb_gen *g, uint32_t id);
/** Hyperscan database of a slot (NULL when that target has no signatures). Only scan.c uses it. */
const void *mry_sigdb_gen_hs_db(const struct mry_sigdb_gen *g, enum mry_sigdb_slot slot);

/* ---- additions: file writing, keys, introspection ---- */

#define MRY_SIGDB_DIGEST_BYTES 32
#define MRY_SIGDB_PUBKEY_BYTES 32
#define MRY_SIGDB_SECKEY_BYTES 64

/**
 * Write a database image atomically: PATH.tmp.<pid>, fsync, rename over
 * @path, fsync the directory. A reader never sees a partial file at @path.
 * @return 0 or a negative errno.
 */
int mry_sigdb_write_file(const char *path, const uint8_t *buf, size_t len);
/**
 * Read a key file: exactly @len raw bytes (what moray-sigc keygen writes) or
 * 2 x @len hexadecimal characters, trailing whitespace allowed. 0, or a
 * negative errno with a one-line reason in @why.
 */
int mry_sigdb_read_key(const char *path, uint8_t *key, size_t len, char *why, size_t whylen);
/** New Ed25519 key pair (libsodium). @return 0 or -EIO. */
int mry_sigdb_keygen(uint8_t pk[MRY_SIGDB_PUBKEY_BYTES], uint8_t sk[MRY_SIGDB_SECKEY_BYTES]);

/** Metadata by position (0 .. nb_sigs-1, sorted by id); NULL past the end. */
const struct mry_sig_meta *mry_sigdb_gen_sig_at(const struct mry_sigdb_gen *g, uint32_t i);
bool mry_sigdb_gen_signed(const struct mry_sigdb_gen *g);
/** BLAKE2b-256 digest of the file (MRY_SIGDB_DIGEST_BYTES). */
const uint8_t *mry_sigdb_gen_digest(const struct mry_sigdb_gen *g);
/** hs_serialized_database_info() of the file ("Version: 5.4.0 Features: ... Mode: STREAM"). */
const char *mry_sigdb_gen_hs_info(const struct mry_sigdb_gen *g);
/** Serialised size / stream state size of a slot's database (0 when empty). */
size_t mry_sigdb_gen_db_size(const struct mry_sigdb_gen *g, enum mry_sigdb_slot slot);
size_t mry_sigdb_gen_stream_size(const struct mry_sigdb_gen *g, enum mry_sigdb_slot slot);
/** Scratch bytes one worker needs for this generation (all slots). */
size_t mry_sigdb_gen_scratch_size(const struct mry_sigdb_gen *g);

/* ---- generation state (DESIGN.md): which generation is active, and valid? ---- */

enum mry_db_policy {
	MRY_DB_POLICY_HOLD = 0,      /* invalid state: hold messages (default, fail closed) */
	MRY_DB_POLICY_LAST_GOOD,     /* invalid state: scan with the active one, alarm */
};

enum mry_db_state {
	MRY_DB_VALID = 0,
	MRY_DB_INVALID,
};

struct mry_sigdb_ctl_config {
	enum mry_db_policy policy;
	uint64_t max_age_s;          /* 0 = no limit */
	const uint8_t *pubkey;       /* copied; NULL = signatures not required */
	/* workers (scanners) that use a generation: each new generation comes
	 * with this many Hyperscan scratch made on the control side, so no
	 * worker allocates one at a swap (0: 1) */
	uint32_t nb_scratch;
};

struct mry_sigdb_ctl;            /* owned by the control thread */

struct mry_sigdb_ctl *mry_sigdb_ctl_create(const struct mry_sigdb_ctl_config *cfg);
void mry_sigdb_ctl_destroy(struct mry_sigdb_ctl *c);

/**
 * Offer a candidate file (or NULL: "no file at all": without an active
 * generation the state is invalid "no_database", with one nothing changes;
 * returns MRY_SIGDB_IO_ERROR). Offering the active file again (same
 * digest) changes nothing and returns OK. Validates a candidate fully;
 * when valid it becomes active (the previous active generation's reference
 * is returned in *retired for the caller to unref after readers quiesced,
 * or NULL). Updates the state. Control path only. @now_s is unix time.
 */
enum mry_sigdb_status mry_sigdb_ctl_offer(struct mry_sigdb_ctl *c, const char *path,
					  uint64_t now_s, struct mry_sigdb_gen **retired);
/** Re-evaluate time-based state (max age). Returns true when the state changed. */
bool mry_sigdb_ctl_tick(struct mry_sigdb_ctl *c, uint64_t now_s);

/**
 * What a worker uses for a message whose data begins now: the active
 * generation if the state allows scanning (valid, or invalid under
 * last-good with an active one), else NULL (hold). Acquire load; any thread.
 * The pointer stays alive while the caller holds a reference taken with
 * mry_sigdb_gen_ref() before its next quiescent point.
 */
struct mry_sigdb_gen *mry_sigdb_ctl_usable(const struct mry_sigdb_ctl *c);
/** The active generation, valid or not (NULL if none). */
struct mry_sigdb_gen *mry_sigdb_ctl_active(const struct mry_sigdb_ctl *c);

enum mry_db_state mry_sigdb_ctl_state(const struct mry_sigdb_ctl *c);
/* Bytes of mry_sigdb_ctl_reason() with its NUL, at most (it goes into hold events). */
#define MRY_SIGDB_REASON_MAX 96

/** Reason of the current state ("ok", "no_database", "too_old", "candidate_rejected: digest_mismatch" ...).
 * Written by the control thread; read it there (or after mry_sigdb_ctl_version() changed). */
const char *mry_sigdb_ctl_reason(const struct mry_sigdb_ctl *c);
/** Increments on every state or active-generation change (any thread). */
uint64_t mry_sigdb_ctl_version(const struct mry_sigdb_ctl *c);

/** Candidates rejected since creation with reason @st (counter). */
uint64_t mry_sigdb_ctl_rejected(const struct mry_sigdb_ctl *c, enum mry_sigdb_status st);

#endif /* MORAY_SIGDB_H */
