/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Database loader, generations and the generation state (DESIGN.md,
 * "Signature database and generations").
 *
 * The loader reads the whole file and checks it front to back before a
 * generation object exists: size and magic first (cheap, and they explain
 * most broken files), then the digest over everything, the Ed25519
 * signature, this CPU's Hyperscan platform, the section layout, the
 * metadata, Hyperscan deserialisation, and last the generation number. Every
 * refusal has its own status and a one-line detail. Trade-off: the file is
 * held in memory twice while loading (file + deserialised databases); it
 * happens on the control path once per generation, so simplicity wins.
 *
 * Generations are reference counted with C11 atomics. The controller keeps
 * the active generation behind an atomic pointer: the control thread
 * publishes with a release store, workers read with an acquire load.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hs/hs.h>
#include <sodium.h>

#include "moray/sigdb.h"
#include "sigdb_priv.h"

#define SIGDB_MAX_FILE (1ull << 31)   /* refuse absurd sizes before reading */

struct mry_sigdb_gen {
	atomic_uint refs;
	uint64_t uid;
	uint64_t number;
	uint64_t created;
	uint32_t nb_sigs;
	bool is_signed;
	struct mry_sig_meta *metas;   /* sorted by id */
	char *names;
	hs_database_t *db[MRY_SLOT_MAX];
	hs_scratch_t *proto;          /* scratch prototype fitting every slot */
	size_t scratch_size;
	/* one scratch per worker, cloned on the control side before the
	 * generation is published (gen_prepare_scratch); a worker takes one
	 * and leaves the scratch it held in its place, freed with the gen */
	hs_scratch_t **wscratch;
	uint32_t nb_wscratch;
	atomic_uint wscratch_next;
	uint64_t lineage;             /* 0: none; see gen_prepare_scratch */
	size_t db_size[MRY_SLOT_MAX];
	size_t stream_size[MRY_SLOT_MAX];
	uint8_t digest[MRY_SIGDB_DIGEST_LEN];
	char hs_info[MRY_SIGDB_HS_INFO_LEN];
};

static atomic_ullong gen_uid_next = 1;
static atomic_ullong gen_live;

uint64_t mry_sigdb_gen_nb_live(void)
{
	return atomic_load(&gen_live);
}

static const char *const status_names[MRY_SIGDB_STATUS_MAX] = {
	[MRY_SIGDB_OK] = "ok",
	[MRY_SIGDB_IO_ERROR] = "io_error",
	[MRY_SIGDB_TRUNCATED] = "truncated",
	[MRY_SIGDB_TOO_LONG] = "too_long",
	[MRY_SIGDB_BAD_MAGIC] = "bad_magic",
	[MRY_SIGDB_BAD_VERSION] = "bad_version",
	[MRY_SIGDB_BAD_HEADER] = "bad_header",
	[MRY_SIGDB_DIGEST_MISMATCH] = "digest_mismatch",
	[MRY_SIGDB_UNSIGNED] = "unsigned",
	[MRY_SIGDB_BAD_SIG] = "bad_signature",
	[MRY_SIGDB_PLATFORM] = "platform",
	[MRY_SIGDB_HS_DESERIALIZE] = "hs_deserialize",
	[MRY_SIGDB_BAD_META] = "bad_meta",
	[MRY_SIGDB_STALE_GEN] = "stale_generation",
	[MRY_SIGDB_NO_MEM] = "no_memory",
};

const char *mry_sigdb_status_name(enum mry_sigdb_status st)
{
	if ((unsigned)st >= MRY_SIGDB_STATUS_MAX)
		return "unknown";
	return status_names[st];
}

/* ---- generation object ------------------------------------------------ */

static void gen_free(struct mry_sigdb_gen *g)
{
	if (g == NULL)
		return;
	for (int k = 0; k < MRY_SLOT_MAX; k++)
		hs_free_database(g->db[k]);
	hs_free_scratch(g->proto);
	for (uint32_t i = 0; i < g->nb_wscratch; i++)
		hs_free_scratch(g->wscratch[i]);
	free(g->wscratch);
	free(g->metas);
	free(g->names);
	free(g);
}

void mry_sigdb_gen_ref(struct mry_sigdb_gen *g)
{
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}

void mry_sigdb_gen_unref(struct mry_sigdb_gen *g)
{
	if (g == NULL)
		return;
	/* acq_rel: the freeing thread must see every other holder's work */
	if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1) {
		mry_log(MRY_LOG_INFO, "sigdb", "gen %llu freed",
			(unsigned long long)g->number);
		gen_free(g);
		atomic_fetch_sub(&gen_live, 1);
	}
}

uint64_t mry_sigdb_gen_uid(const struct mry_sigdb_gen *g) { return g->uid; }
uint64_t mry_sigdb_gen_number(const struct mry_sigdb_gen *g) { return g->number; }
uint64_t mry_sigdb_gen_created(const struct mry_sigdb_gen *g) { return g->created; }
uint32_t mry_sigdb_gen_nb_sigs(const struct mry_sigdb_gen *g) { return g->nb_sigs; }
bool mry_sigdb_gen_signed(const struct mry_sigdb_gen *g) { return g->is_signed; }
const uint8_t *mry_sigdb_gen_digest(const struct mry_sigdb_gen *g) { return g->digest; }
const char *mry_sigdb_gen_hs_info(const struct mry_sigdb_gen *g) { return g->hs_info; }

const struct mry_sig_meta *mry_sigdb_gen_sig(const struct mry_sigdb_gen *g, uint32_t id)
{
	uint32_t lo = 0, hi = g->nb_sigs;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (g->metas[mid].id == id)
			return &g->metas[mid];
		if (g->metas[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct mry_sig_meta *mry_sigdb_gen_sig_at(const struct mry_sigdb_gen *g, uint32_t i)
{
	return i < g->nb_sigs ? &g->metas[i] : NULL;
}

const void *mry_sigdb_gen_hs_db(const struct mry_sigdb_gen *g, enum mry_sigdb_slot slot)
{
	return (unsigned)slot < MRY_SLOT_MAX ? g->db[slot] : NULL;
}

size_t mry_sigdb_gen_db_size(const struct mry_sigdb_gen *g, enum mry_sigdb_slot slot)
{
	return (unsigned)slot < MRY_SLOT_MAX ? g->db_size[slot] : 0;
}

size_t mry_sigdb_gen_scratch_size(const struct mry_sigdb_gen *g)
{
	return g->scratch_size;
}

size_t mry_sigdb_gen_stream_size(const struct mry_sigdb_gen *g, enum mry_sigdb_slot slot)
{
	return (unsigned)slot < MRY_SLOT_MAX ? g->stream_size[slot] : 0;
}

/* ---- scratch handed to workers ------------------------------------------ */

/*
 * hs_alloc_scratch() checks the database's CRC over all its bytecode before
 * it looks at the scratch: 0.3 ms per slot for the default 2.6 MB file, on
 * every call, even when the scratch already fits. A worker must not pay it
 * when a new generation arrives, so the control side does: it grows one
 * process-wide prototype with every generation it publishes (the lineage:
 * a clone of it at step L fits every generation of lineage <= L, since
 * hs_alloc_scratch only grows) and clones it once per worker into the
 * generation. A worker swaps its scratch for one of those clones (an atomic
 * index, no allocation, no CRC) and so can still scan the messages it has
 * in flight on older generations. Control path only; the lock is never
 * taken by a worker.
 */
static pthread_mutex_t lineage_lock = PTHREAD_MUTEX_INITIALIZER;
static hs_scratch_t *lineage_proto;
static uint64_t lineage_step;

static hs_error_t gen_prepare_scratch(struct mry_sigdb_gen *g, uint32_t n)
{
	hs_error_t hr = HS_SUCCESS;

	g->wscratch = calloc(n, sizeof(*g->wscratch));
	if (g->wscratch == NULL)
		return HS_NOMEM;
	g->nb_wscratch = n;
	pthread_mutex_lock(&lineage_lock);
	for (int k = 0; k < MRY_SLOT_MAX && hr == HS_SUCCESS; k++)
		if (g->db[k] != NULL)
			hr = hs_alloc_scratch(g->db[k], &lineage_proto);
	for (uint32_t i = 0; i < n && hr == HS_SUCCESS; i++)
		hr = hs_clone_scratch(lineage_proto, &g->wscratch[i]);
	if (hr == HS_SUCCESS)
		g->lineage = ++lineage_step;
	pthread_mutex_unlock(&lineage_lock);
	return hr;
}

uint64_t mry_sigdb_gen_lineage(const struct mry_sigdb_gen *g)
{
	return g->lineage;
}

void *mry_sigdb_gen_scratch_take(struct mry_sigdb_gen *g, uint32_t *slot)
{
	uint32_t i;
	void *sc;

	if (g->lineage == 0)
		return NULL;
	i = atomic_fetch_add_explicit(&g->wscratch_next, 1, memory_order_relaxed);
	if (i >= g->nb_wscratch)
		return NULL;
	sc = g->wscratch[i];
	g->wscratch[i] = NULL;
	*slot = i;
	return sc;
}

void mry_sigdb_gen_scratch_give(struct mry_sigdb_gen *g, uint32_t slot, void *old)
{
	/* this worker owns the slot since it took it; the last unref frees */
	g->wscratch[slot] = old;
}

/* ---- loader ------------------------------------------------------------ */

#define FAIL(status, ...) do { \
	if (detail != NULL && detail_len > 0) \
		snprintf(detail, detail_len, __VA_ARGS__); \
	st = (status); \
	goto out; \
} while (0)

static enum mry_sigdb_status parse_meta(struct mry_sigdb_gen *g, const uint8_t *m,
					size_t len, uint8_t *slot_used,
					char *detail, size_t detail_len)
{
	enum mry_sigdb_status st = MRY_SIGDB_OK;
	size_t p = 4, names_len = 0, np = 0;
	uint32_t n;

	if (len < 4)
		FAIL(MRY_SIGDB_BAD_META, "metadata section of %zu bytes", len);
	n = mry_rd32(m);
	if (n != g->nb_sigs)
		FAIL(MRY_SIGDB_BAD_META, "metadata holds %u entries, header says %u",
		     n, g->nb_sigs);
	if (n == 0)
		FAIL(MRY_SIGDB_BAD_META, "no signatures");
	if (n > len / 8)
		FAIL(MRY_SIGDB_BAD_META, "%u entries cannot fit in %zu bytes", n, len);
	g->metas = calloc(n, sizeof(*g->metas));
	g->names = malloc(len);     /* names + NULs fit in the section */
	if (g->metas == NULL || g->names == NULL)
		FAIL(MRY_SIGDB_NO_MEM, "metadata: out of memory");
	for (uint32_t i = 0; i < n; i++) {
		struct mry_sig_meta *e = &g->metas[i];
		size_t nl;

		if (len - p < 8)
			FAIL(MRY_SIGDB_BAD_META, "entry %u runs past the section", i);
		e->id = mry_rd32(m + p);
		e->action = m[p + 4];
		e->targets = m[p + 5];
		nl = (size_t)m[p + 6] | (size_t)m[p + 7] << 8;
		p += 8;
		if (i > 0 && e->id <= g->metas[i - 1].id)
			FAIL(MRY_SIGDB_BAD_META, "entry %u: id %u not above %u", i, e->id,
			     g->metas[i - 1].id);
		if (e->action < MRY_ACTION_LOG || e->action > MRY_ACTION_REJECT)
			FAIL(MRY_SIGDB_BAD_META, "id %u: action %u unknown", e->id, e->action);
		if (e->targets == 0 || (e->targets & ~MRY_TARGET_ANY) != 0)
			FAIL(MRY_SIGDB_BAD_META, "id %u: targets 0x%x invalid", e->id, e->targets);
		if (nl == 0 || len - p < ((nl + 3u) & ~(size_t)3u))
			FAIL(MRY_SIGDB_BAD_META, "id %u: name length %zu invalid", e->id, nl);
		for (size_t k = 0; k < nl; k++)
			if (m[p + k] < 0x21 || m[p + k] > 0x7e)
				FAIL(MRY_SIGDB_BAD_META, "id %u: byte 0x%02x in name", e->id, m[p + k]);
		memcpy(g->names + np, m + p, nl);
		g->names[np + nl] = '\0';
		np += nl + 1;
		names_len = np;
		p += (nl + 3u) & ~(size_t)3u;
		for (int k = 0; k < MRY_SLOT_MAX; k++)
			if (e->targets & (1u << k))
				slot_used[k] = 1;
	}
	if (p != len)
		FAIL(MRY_SIGDB_BAD_META, "%zu bytes after the last entry", len - p);
	/* names moved into place once the buffer no longer moves */
	np = 0;
	for (uint32_t i = 0; i < n; i++) {
		g->metas[i].name = g->names + np;
		np += strlen(g->names + np) + 1;
	}
	(void)names_len;
out:
	return st;
}

enum mry_sigdb_status mry_sigdb_load_mem(const uint8_t *buf, size_t len,
					 const struct mry_sigdb_load_opts *opts,
					 struct mry_sigdb_gen **out,
					 char *detail, size_t detail_len)
{
	enum mry_sigdb_status st = MRY_SIGDB_OK;
	struct mry_sigdb_gen *g = NULL;
	uint64_t payload, expected;
	uint32_t flags, ver;
	hs_platform_info_t plat;
	uint8_t digest[MRY_SIGDB_DIGEST_LEN];
	uint8_t slot_used[MRY_SLOT_MAX] = { 0 };
	const uint8_t *p, *end;
	char hsver[MRY_SIGDB_HS_VERSION_LEN + 1];
	const uint8_t *pubkey = opts != NULL ? opts->pubkey : NULL;
	uint64_t min_gen = opts != NULL ? opts->min_generation : 0;

	*out = NULL;
	if (detail != NULL && detail_len > 0)
		detail[0] = '\0';
	if (sodium_init() < 0)
		FAIL(MRY_SIGDB_NO_MEM, "libsodium initialisation failed");
	/* -- sizes and fixed header -- */
	if (len < MRY_SIGDB_MAGIC_LEN)
		FAIL(MRY_SIGDB_TRUNCATED, "%zu bytes, shorter than the magic", len);
	if (memcmp(buf, MRY_SIGDB_MAGIC, MRY_SIGDB_MAGIC_LEN) != 0)
		FAIL(MRY_SIGDB_BAD_MAGIC, "not a moray database (magic mismatch)");
	if (len < MRY_SIGDB_OFF_HDR_LEN + 4)
		FAIL(MRY_SIGDB_TRUNCATED, "%zu bytes, header cut short", len);
	ver = mry_rd32(buf + MRY_SIGDB_OFF_VERSION);
	if (ver != MRY_SIGDB_FORMAT_VERSION)
		FAIL(MRY_SIGDB_BAD_VERSION, "format version %u, this build reads %u",
		     ver, MRY_SIGDB_FORMAT_VERSION);
	if (len < MRY_SIGDB_HDR_LEN)
		FAIL(MRY_SIGDB_TRUNCATED, "%zu bytes, header needs %u", len, MRY_SIGDB_HDR_LEN);
	if (mry_rd32(buf + MRY_SIGDB_OFF_HDR_LEN) != MRY_SIGDB_HDR_LEN)
		FAIL(MRY_SIGDB_BAD_HEADER, "header length %u, expected %u",
		     mry_rd32(buf + MRY_SIGDB_OFF_HDR_LEN), MRY_SIGDB_HDR_LEN);
	flags = mry_rd32(buf + MRY_SIGDB_OFF_FLAGS);
	if ((flags & ~MRY_SIGDB_F_SIGNED) != 0 || mry_rd32(buf + MRY_SIGDB_OFF_RESERVED) != 0)
		FAIL(MRY_SIGDB_BAD_HEADER, "unknown flags 0x%x or reserved bits set", flags);
	payload = mry_rd64(buf + MRY_SIGDB_OFF_PAYLOAD_LEN);
	if (payload > SIGDB_MAX_FILE)
		FAIL(MRY_SIGDB_TRUNCATED, "header claims a %llu-byte payload, file has %zu bytes",
		     (unsigned long long)payload, len);
	expected = MRY_SIGDB_HDR_LEN + payload + MRY_SIGDB_DIGEST_LEN +
		   ((flags & MRY_SIGDB_F_SIGNED) ? MRY_SIGDB_SIG_LEN : 0);
	if (len < expected)
		FAIL(MRY_SIGDB_TRUNCATED, "%zu bytes, header says %llu", len,
		     (unsigned long long)expected);
	if (len > expected)
		FAIL(MRY_SIGDB_TOO_LONG, "%zu bytes, header says %llu", len,
		     (unsigned long long)expected);
	/* -- integrity -- */
	crypto_generichash(digest, sizeof(digest), buf, MRY_SIGDB_HDR_LEN + payload, NULL, 0);
	if (sodium_memcmp(digest, buf + MRY_SIGDB_HDR_LEN + payload, sizeof(digest)) != 0)
		FAIL(MRY_SIGDB_DIGEST_MISMATCH, "BLAKE2b digest does not match the contents");
	if (pubkey != NULL) {
		if ((flags & MRY_SIGDB_F_SIGNED) == 0)
			FAIL(MRY_SIGDB_UNSIGNED, "a public key is configured, the file is not signed");
		if (crypto_sign_verify_detached(buf + MRY_SIGDB_HDR_LEN + payload +
						MRY_SIGDB_DIGEST_LEN, digest,
						sizeof(digest), pubkey) != 0)
			FAIL(MRY_SIGDB_BAD_SIG, "Ed25519 signature does not verify with the configured key");
	}
	/* -- platform: same Hyperscan, no CPU feature this machine lacks -- */
	memcpy(hsver, buf + MRY_SIGDB_OFF_HS_VERSION, MRY_SIGDB_HS_VERSION_LEN);
	hsver[MRY_SIGDB_HS_VERSION_LEN] = '\0';
	if (strcmp(hsver, hs_version()) != 0)
		FAIL(MRY_SIGDB_PLATFORM, "built for Hyperscan '%.64s', this is '%s'",
		     hsver, hs_version());
	if (hs_populate_platform(&plat) != HS_SUCCESS)
		FAIL(MRY_SIGDB_PLATFORM, "cannot read this CPU's platform");
	if ((mry_rd64(buf + MRY_SIGDB_OFF_CPU_FEATURES) & ~(uint64_t)plat.cpu_features) != 0)
		FAIL(MRY_SIGDB_PLATFORM, "built for CPU features 0x%llx, this CPU has 0x%llx",
		     (unsigned long long)mry_rd64(buf + MRY_SIGDB_OFF_CPU_FEATURES),
		     (unsigned long long)plat.cpu_features);

	g = calloc(1, sizeof(*g));
	if (g == NULL)
		FAIL(MRY_SIGDB_NO_MEM, "out of memory");
	atomic_init(&g->refs, 1);
	g->number = mry_rd64(buf + MRY_SIGDB_OFF_GENERATION);
	g->created = mry_rd64(buf + MRY_SIGDB_OFF_CREATED);
	g->nb_sigs = mry_rd32(buf + MRY_SIGDB_OFF_NB_SIGS);
	g->is_signed = (flags & MRY_SIGDB_F_SIGNED) != 0;
	memcpy(g->digest, digest, sizeof(digest));
	memcpy(g->hs_info, buf + MRY_SIGDB_OFF_HS_INFO, MRY_SIGDB_HS_INFO_LEN);
	g->hs_info[MRY_SIGDB_HS_INFO_LEN - 1] = '\0';

	/* -- sections -- */
	p = buf + MRY_SIGDB_HDR_LEN;
	end = p + payload;
	for (uint32_t sec = MRY_SIGDB_SEC_META; sec <= MRY_SIGDB_SEC_HS_HEADERS; sec++) {
		uint64_t slen, padded;

		if ((size_t)(end - p) < 16)
			FAIL(MRY_SIGDB_BAD_HEADER, "section %u missing", sec);
		if (mry_rd32(p) != sec || mry_rd32(p + 4) != 0)
			FAIL(MRY_SIGDB_BAD_HEADER, "section %u: tag %u", sec, mry_rd32(p));
		slen = mry_rd64(p + 8);
		p += 16;
		padded = (slen + 7u) & ~(uint64_t)7u;
		if (slen > (uint64_t)(end - p) || padded > (uint64_t)(end - p))
			FAIL(MRY_SIGDB_BAD_HEADER, "section %u: %llu bytes past the payload",
			     sec, (unsigned long long)slen);
		if (sec == MRY_SIGDB_SEC_META) {
			st = parse_meta(g, p, slen, slot_used, detail, detail_len);
			if (st != MRY_SIGDB_OK)
				goto out;
		} else {
			int k = (int)(sec - MRY_SIGDB_SEC_HS_RAW);
			char *info = NULL;
			hs_error_t hr;

			if ((slen != 0) != (slot_used[k] != 0))
				FAIL(MRY_SIGDB_BAD_META, "slot %d: database %s but metadata %s",
				     k, slen != 0 ? "present" : "absent",
				     slot_used[k] ? "targets it" : "does not");
			if (slen != 0) {
				hr = hs_serialized_database_info((const char *)p, slen, &info);
				if (hr != HS_SUCCESS)
					FAIL(MRY_SIGDB_HS_DESERIALIZE, "slot %d: not a Hyperscan database (%d)",
					     k, hr);
				hr = strstr(info, "Mode: STREAM") != NULL ? HS_SUCCESS : HS_INVALID;
				free(info);
				if (hr != HS_SUCCESS)
					FAIL(MRY_SIGDB_HS_DESERIALIZE, "slot %d: not a streaming-mode database", k);
				info = NULL;
				hr = hs_deserialize_database((const char *)p, slen, &g->db[k]);
				if (hr == HS_DB_VERSION_ERROR || hr == HS_DB_PLATFORM_ERROR)
					FAIL(MRY_SIGDB_PLATFORM, "slot %d: Hyperscan refuses this platform/version (%d)",
					     k, hr);
				if (hr == HS_NOMEM)
					FAIL(MRY_SIGDB_NO_MEM, "slot %d: out of memory", k);
				if (hr != HS_SUCCESS)
					FAIL(MRY_SIGDB_HS_DESERIALIZE, "slot %d: hs_deserialize_database: %d",
					     k, hr);
				if (hs_database_info(g->db[k], &info) != HS_SUCCESS)
					FAIL(MRY_SIGDB_HS_DESERIALIZE, "slot %d: hs_database_info failed", k);
				free(info);
				info = NULL;
				g->db_size[k] = slen;
				hs_stream_size(g->db[k], &g->stream_size[k]);
				/* proves the database usable here before anyone
				 * relies on it; workers size their own scratch
				 * from it (mry_scanner_prepare) */
				hr = hs_alloc_scratch(g->db[k], &g->proto);
				if (hr == HS_NOMEM)
					FAIL(MRY_SIGDB_NO_MEM, "slot %d: no memory for scratch", k);
				if (hr != HS_SUCCESS)
					FAIL(MRY_SIGDB_HS_DESERIALIZE, "slot %d: hs_alloc_scratch: %d", k, hr);
			}
			free(info);
		}
		for (uint64_t i = slen; i < padded; i++)
			if (p[i] != 0)
				FAIL(MRY_SIGDB_BAD_HEADER, "section %u: non-zero padding", sec);
		p += padded;
	}
	if (p != end)
		FAIL(MRY_SIGDB_BAD_HEADER, "%zu bytes after the last section", (size_t)(end - p));
	if (g->proto != NULL)
		hs_scratch_size(g->proto, &g->scratch_size);
	if (min_gen != 0 && g->number <= min_gen)
		FAIL(MRY_SIGDB_STALE_GEN, "generation %llu is not above %llu (rollback refused)",
		     (unsigned long long)g->number, (unsigned long long)min_gen);
	g->uid = atomic_fetch_add(&gen_uid_next, 1);
	atomic_fetch_add(&gen_live, 1);
	*out = g;
	g = NULL;
	if (detail != NULL && detail_len > 0)
		snprintf(detail, detail_len, "ok");
out:
	gen_free(g);
	return st;
}

enum mry_sigdb_status mry_sigdb_load_file(const char *path,
					  const struct mry_sigdb_load_opts *opts,
					  struct mry_sigdb_gen **out,
					  char *detail, size_t detail_len)
{
	enum mry_sigdb_status st;
	struct stat sb;
	uint8_t *buf = NULL;
	size_t n = 0;
	int fd;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) != 0) {
		if (detail != NULL && detail_len > 0)
			snprintf(detail, detail_len, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return MRY_SIGDB_IO_ERROR;
	}
	if ((uint64_t)sb.st_size > SIGDB_MAX_FILE) {
		if (detail != NULL && detail_len > 0)
			snprintf(detail, detail_len, "%s: %lld bytes, above the %llu-byte cap",
				 path, (long long)sb.st_size, (unsigned long long)SIGDB_MAX_FILE);
		close(fd);
		return MRY_SIGDB_TOO_LONG;
	}
	buf = malloc((size_t)sb.st_size + 1);
	if (buf == NULL) {
		close(fd);
		return MRY_SIGDB_NO_MEM;
	}
	while (n < (size_t)sb.st_size) {
		ssize_t r = read(fd, buf + n, (size_t)sb.st_size - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	/* a file shrinking while we read is simply a short file */
	st = mry_sigdb_load_mem(buf, n, opts, out, detail, detail_len);
	free(buf);
	if (st != MRY_SIGDB_OK)
		mry_log(MRY_LOG_ERR, "sigdb", "%s rejected: %s: %s", path,
			mry_sigdb_status_name(st), detail != NULL ? detail : "");
	return st;
}

/* ---- generation state ------------------------------------------------ */

struct mry_sigdb_ctl {
	enum mry_db_policy policy;
	uint64_t max_age_s;
	bool has_key;
	uint8_t pubkey[MRY_SIGDB_PUBKEY_LEN];
	uint32_t nb_scratch;
	_Atomic(struct mry_sigdb_gen *) active;
	_Atomic(struct mry_sigdb_gen *) usable;
	atomic_int state;
	atomic_ullong version;
	bool candidate_rejected;
	bool too_old;
	char reason[MRY_SIGDB_REASON_MAX];
	uint64_t rejected[MRY_SIGDB_STATUS_MAX];
};

struct mry_sigdb_ctl *mry_sigdb_ctl_create(const struct mry_sigdb_ctl_config *cfg)
{
	struct mry_sigdb_ctl *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		mry_log(MRY_LOG_ERR, "sigdb", "ctl: out of memory");
		return NULL;
	}
	c->policy = cfg != NULL ? cfg->policy : MRY_DB_POLICY_HOLD;
	c->max_age_s = cfg != NULL ? cfg->max_age_s : 0;
	c->nb_scratch = cfg != NULL && cfg->nb_scratch != 0 ? cfg->nb_scratch : 1;
	if (cfg != NULL && cfg->pubkey != NULL) {
		memcpy(c->pubkey, cfg->pubkey, sizeof(c->pubkey));
		c->has_key = true;
	}
	atomic_init(&c->active, NULL);
	atomic_init(&c->usable, NULL);
	atomic_init(&c->state, MRY_DB_INVALID);
	atomic_init(&c->version, 0);
	snprintf(c->reason, sizeof(c->reason), "no_database");
	return c;
}

void mry_sigdb_ctl_destroy(struct mry_sigdb_ctl *c)
{
	if (c == NULL)
		return;
	mry_sigdb_gen_unref(atomic_load(&c->active));
	free(c);
}

/* Recompute state, reason and the usable pointer; true when changed. */
static bool ctl_update(struct mry_sigdb_ctl *c, const char *why)
{
	struct mry_sigdb_gen *act = atomic_load_explicit(&c->active, memory_order_relaxed);
	enum mry_db_state ns;
	struct mry_sigdb_gen *nu;
	char reason[sizeof(c->reason)];
	bool changed;

	if (act == NULL)
		snprintf(reason, sizeof(reason), "no_database");
	else if (c->candidate_rejected)
		snprintf(reason, sizeof(reason), "candidate_rejected: %s", why);
	else if (c->too_old)
		snprintf(reason, sizeof(reason), "too_old");
	else
		snprintf(reason, sizeof(reason), "ok");
	if (c->candidate_rejected && act == NULL)
		snprintf(reason, sizeof(reason), "candidate_rejected: %s", why);
	ns = (act != NULL && !c->candidate_rejected && !c->too_old) ? MRY_DB_VALID
								   : MRY_DB_INVALID;
	nu = (ns == MRY_DB_VALID || c->policy == MRY_DB_POLICY_LAST_GOOD) ? act : NULL;
	changed = ns != (enum mry_db_state)atomic_load(&c->state) ||
		  nu != atomic_load(&c->usable) || strcmp(reason, c->reason) != 0;
	snprintf(c->reason, sizeof(c->reason), "%s", reason);
	atomic_store_explicit(&c->usable, nu, memory_order_release);
	atomic_store_explicit(&c->state, (int)ns, memory_order_release);
	if (changed) {
		atomic_fetch_add_explicit(&c->version, 1, memory_order_release);
		mry_log(ns == MRY_DB_VALID ? MRY_LOG_INFO : MRY_LOG_WARNING, "sigdb",
			"state %s (%s), active gen %llu", ns == MRY_DB_VALID ? "valid" : "invalid",
			c->reason, act != NULL ? (unsigned long long)act->number : 0ULL);
	}
	return changed;
}

static bool is_too_old(const struct mry_sigdb_ctl *c, const struct mry_sigdb_gen *g,
		       uint64_t now_s)
{
	return c->max_age_s != 0 && g != NULL && now_s > g->created &&
	       now_s - g->created > c->max_age_s;
}

enum mry_sigdb_status mry_sigdb_ctl_offer(struct mry_sigdb_ctl *c, const char *path,
					  uint64_t now_s, struct mry_sigdb_gen **retired)
{
	struct mry_sigdb_load_opts opts = { .pubkey = c->has_key ? c->pubkey : NULL };
	struct mry_sigdb_gen *act = atomic_load_explicit(&c->active, memory_order_relaxed);
	struct mry_sigdb_gen *g = NULL;
	enum mry_sigdb_status st;
	char detail[256];

	*retired = NULL;
	if (path == NULL) {
		/* no file: nothing to validate. Without an active generation the
		 * state is invalid (no_database); an active one stays as it is,
		 * since the file vanishing does not change what it holds. */
		c->too_old = is_too_old(c, act, now_s);
		ctl_update(c, "no_database");
		return MRY_SIGDB_IO_ERROR;
	}
	st = mry_sigdb_load_file(path, &opts, &g, detail, sizeof(detail));
	if (st == MRY_SIGDB_OK && act != NULL &&
	    memcmp(g->digest, act->digest, sizeof(g->digest)) == 0) {
		/* the active file offered again: not a candidate */
		mry_sigdb_gen_unref(g);
		c->too_old = is_too_old(c, act, now_s);
		ctl_update(c, mry_sigdb_status_name(st));
		return MRY_SIGDB_OK;
	}
	if (st == MRY_SIGDB_OK && act != NULL && g->number <= act->number) {
		snprintf(detail, sizeof(detail),
			 "generation %llu is not above the active %llu (rollback refused)",
			 (unsigned long long)g->number, (unsigned long long)act->number);
		mry_log(MRY_LOG_ERR, "sigdb", "%s rejected: %s", path, detail);
		mry_sigdb_gen_unref(g);
		g = NULL;
		st = MRY_SIGDB_STALE_GEN;
	}
	if (st == MRY_SIGDB_OK && gen_prepare_scratch(g, c->nb_scratch) != HS_SUCCESS) {
		mry_log(MRY_LOG_ERR, "sigdb", "%s rejected: no memory for %u worker scratch",
			path, c->nb_scratch);
		mry_sigdb_gen_unref(g);
		g = NULL;
		st = MRY_SIGDB_NO_MEM;
	}
	if (st != MRY_SIGDB_OK) {
		c->rejected[st]++;
		c->candidate_rejected = true;
		c->too_old = is_too_old(c, act, now_s);
		ctl_update(c, mry_sigdb_status_name(st));
		return st;
	}
	mry_log(MRY_LOG_INFO, "sigdb", "gen %llu active (%u signatures) from %s",
		(unsigned long long)g->number, g->nb_sigs, path);
	atomic_store_explicit(&c->active, g, memory_order_release);
	c->candidate_rejected = false;
	c->too_old = is_too_old(c, g, now_s);
	ctl_update(c, "ok");
	*retired = act;
	return MRY_SIGDB_OK;
}

bool mry_sigdb_ctl_tick(struct mry_sigdb_ctl *c, uint64_t now_s)
{
	struct mry_sigdb_gen *act = atomic_load_explicit(&c->active, memory_order_relaxed);
	bool old = is_too_old(c, act, now_s);
	char why[96];
	const char *colon;

	if (old == c->too_old)
		return false;
	c->too_old = old;
	/* keep a pending rejection's reason */
	colon = strchr(c->reason, ':');
	snprintf(why, sizeof(why), "%s", colon != NULL ? colon + 2 : "ok");
	return ctl_update(c, why);
}

struct mry_sigdb_gen *mry_sigdb_ctl_usable(const struct mry_sigdb_ctl *c)
{
	return atomic_load_explicit(&((struct mry_sigdb_ctl *)(uintptr_t)c)->usable,
				    memory_order_acquire);
}

struct mry_sigdb_gen *mry_sigdb_ctl_active(const struct mry_sigdb_ctl *c)
{
	return atomic_load_explicit(&((struct mry_sigdb_ctl *)(uintptr_t)c)->active,
				    memory_order_acquire);
}

enum mry_db_state mry_sigdb_ctl_state(const struct mry_sigdb_ctl *c)
{
	return (enum mry_db_state)atomic_load_explicit(
		&((struct mry_sigdb_ctl *)(uintptr_t)c)->state, memory_order_acquire);
}

const char *mry_sigdb_ctl_reason(const struct mry_sigdb_ctl *c)
{
	return c->reason;
}

uint64_t mry_sigdb_ctl_version(const struct mry_sigdb_ctl *c)
{
	return atomic_load_explicit(&((struct mry_sigdb_ctl *)(uintptr_t)c)->version,
				    memory_order_acquire);
}

uint64_t mry_sigdb_ctl_rejected(const struct mry_sigdb_ctl *c, enum mry_sigdb_status st)
{
	return (unsigned)st < MRY_SIGDB_STATUS_MAX ? c->rejected[st] : 0;
}
