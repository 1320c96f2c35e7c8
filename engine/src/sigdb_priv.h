/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Database file layout (sigdb_file.c) shared by the compiler (sigsrc.c),
 * the loader, unit tests and the fuzz target. Not part of the public API.
 *
 * All integers little endian. The file is
 *
 *   header   MRY_SIGDB_HDR_LEN bytes (struct layout below)
 *   payload  payload_len bytes: four sections, in this order:
 *              META, HS_RAW, HS_DECODED, HS_HEADERS
 *            each = u32 tag, u32 zero, u64 len, len bytes, zero pad to 8
 *   digest   32 bytes BLAKE2b-256 (libsodium crypto_generichash) over
 *            header + payload
 *   sig      64 bytes Ed25519 (crypto_sign_detached) over the digest,
 *            present iff header flag MRY_SIGDB_F_SIGNED
 *
 * META section: u32 nb; nb entries of {u32 id, u8 action, u8 targets,
 * u16 name_len, name bytes}, ids strictly increasing, padded to 4.
 * A HS_* section of length 0 means "no signature targets this slot".
 */
#ifndef MORAY_SIGDB_PRIV_H
#define MORAY_SIGDB_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "moray/sigdb.h"

#define MRY_SIGDB_MAGIC "MORAYSDB"
#define MRY_SIGDB_MAGIC_LEN 8
#define MRY_SIGDB_FORMAT_VERSION 1u
#define MRY_SIGDB_HDR_LEN 256u
#define MRY_SIGDB_DIGEST_LEN 32u
#define MRY_SIGDB_SIG_LEN 64u
#define MRY_SIGDB_PUBKEY_LEN 32u
#define MRY_SIGDB_SECKEY_LEN 64u
#define MRY_SIGDB_F_SIGNED 0x1u

/* header field offsets */
#define MRY_SIGDB_OFF_MAGIC 0u
#define MRY_SIGDB_OFF_VERSION 8u       /* u32 */
#define MRY_SIGDB_OFF_HDR_LEN 12u      /* u32, == MRY_SIGDB_HDR_LEN */
#define MRY_SIGDB_OFF_GENERATION 16u   /* u64 */
#define MRY_SIGDB_OFF_CREATED 24u      /* u64 unix seconds */
#define MRY_SIGDB_OFF_NB_SIGS 32u      /* u32 */
#define MRY_SIGDB_OFF_FLAGS 36u        /* u32 */
#define MRY_SIGDB_OFF_PAYLOAD_LEN 40u  /* u64 */
#define MRY_SIGDB_OFF_CPU_FEATURES 48u /* u64 hs_platform_info.cpu_features needed */
#define MRY_SIGDB_OFF_TUNE 56u         /* u32 */
#define MRY_SIGDB_OFF_RESERVED 60u     /* u32 zero */
#define MRY_SIGDB_OFF_HS_VERSION 64u   /* 64 bytes, hs_version(), NUL padded */
#define MRY_SIGDB_HS_VERSION_LEN 64u
#define MRY_SIGDB_OFF_HS_INFO 128u     /* 128 bytes, hs_serialized_database_info() */
#define MRY_SIGDB_HS_INFO_LEN 128u

enum mry_sigdb_section {
	MRY_SIGDB_SEC_META = 1,
	MRY_SIGDB_SEC_HS_RAW = 2,      /* MRY_SLOT_RAW + 2 */
	MRY_SIGDB_SEC_HS_DECODED = 3,
	MRY_SIGDB_SEC_HS_HEADERS = 4,
};

struct mry_sigdb_build {
	uint64_t generation;
	uint64_t created;
	uint32_t nb_sigs;
	const struct mry_sig_meta *metas;  /* sorted by id */
	const char *hs_blob[MRY_SLOT_MAX]; /* serialised databases (NULL: empty) */
	size_t hs_len[MRY_SLOT_MAX];
	const uint8_t *sign_key;           /* 64-byte Ed25519 secret key or NULL */
};

/**
 * Build a complete file image. *out is malloc'ed.
 * @return 0, -EINVAL (bad input), -ENOMEM.
 */
int mry_sigdb_file_build(const struct mry_sigdb_build *b, uint8_t **out,
			 size_t *out_len);

/** Recompute the digest of an unsigned image in place (tests, fuzzing:
 * reach the checks behind the digest). No-op when @len is too short. */
void mry_sigdb_file_reseal(uint8_t *buf, size_t len);

/** Process-unique serial of a generation (scan.c: "scratch prepared for"). */
uint64_t mry_sigdb_gen_uid(const struct mry_sigdb_gen *g);

/** Generations alive in this process (tests prove freeing with it). */
uint64_t mry_sigdb_gen_nb_live(void);

static inline uint32_t mry_rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t mry_rd64(const uint8_t *p)
{
	return (uint64_t)mry_rd32(p) | (uint64_t)mry_rd32(p + 4) << 32;
}

static inline void mry_wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void mry_wr64(uint8_t *p, uint64_t v)
{
	mry_wr32(p, (uint32_t)v);
	mry_wr32(p + 4, (uint32_t)(v >> 32));
}

/*
 * Scratch a generation brings for the workers (sigdb.c, used by scan.c only).
 * Lineage: 0 when the generation was not published through a controller
 * (loaded directly: tests, tools); else a clone it hands over fits it and
 * every generation of a lower lineage. take: one clone (hs_scratch_t *),
 * NULL when none is left; give: the scratch the worker held goes into the
 * slot it took, to be freed with the generation.
 */
uint64_t mry_sigdb_gen_lineage(const struct mry_sigdb_gen *g);
void *mry_sigdb_gen_scratch_take(struct mry_sigdb_gen *g, uint32_t *slot);
void mry_sigdb_gen_scratch_give(struct mry_sigdb_gen *g, uint32_t slot, void *old);

#endif /* MORAY_SIGDB_PRIV_H */
