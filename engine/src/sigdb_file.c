/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Database file writer: lays out header, payload sections, BLAKE2b-256
 * digest and optional Ed25519 signature (layout in sigdb_priv.h), and writes
 * the image atomically (temp file, fsync, rename, fsync of the directory) so
 * a watcher never sees a half-written generation at the published path.
 * The reader lives in sigdb.c next to the generation it creates.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hs/hs.h>
#include <sodium.h>

#include "moray/sigdb.h"
#include "sigdb_priv.h"

static size_t pad8(size_t n) { return (n + 7u) & ~(size_t)7u; }

static size_t meta_len(const struct mry_sigdb_build *b)
{
	size_t n = 4;

	for (uint32_t i = 0; i < b->nb_sigs; i++)
		n += 8 + ((strlen(b->metas[i].name) + 3u) & ~(size_t)3u);
	return n;
}

static uint8_t *put_section(uint8_t *p, uint32_t tag, size_t len)
{
	mry_wr32(p, tag);
	mry_wr32(p + 4, 0);
	mry_wr64(p + 8, len);
	return p + 16;
}

int mry_sigdb_file_build(const struct mry_sigdb_build *b, uint8_t **out,
			 size_t *out_len)
{
	size_t mlen = meta_len(b), payload, total;
	hs_platform_info_t plat;
	uint8_t *buf, *p;
	char *info = NULL;
	int k;

	*out = NULL;
	*out_len = 0;
	if (sodium_init() < 0 || hs_populate_platform(&plat) != HS_SUCCESS)
		return -EIO;
	for (uint32_t i = 0; i < b->nb_sigs; i++) {
		if (strlen(b->metas[i].name) > UINT16_MAX ||
		    (i > 0 && b->metas[i].id <= b->metas[i - 1].id))
			return -EINVAL;
	}
	payload = 16 + pad8(mlen);
	for (k = 0; k < MRY_SLOT_MAX; k++)
		payload += 16 + pad8(b->hs_len[k]);
	total = MRY_SIGDB_HDR_LEN + payload + MRY_SIGDB_DIGEST_LEN +
		(b->sign_key != NULL ? MRY_SIGDB_SIG_LEN : 0);
	buf = calloc(1, total);
	if (buf == NULL)
		return -ENOMEM;

	memcpy(buf + MRY_SIGDB_OFF_MAGIC, MRY_SIGDB_MAGIC, MRY_SIGDB_MAGIC_LEN);
	mry_wr32(buf + MRY_SIGDB_OFF_VERSION, MRY_SIGDB_FORMAT_VERSION);
	mry_wr32(buf + MRY_SIGDB_OFF_HDR_LEN, MRY_SIGDB_HDR_LEN);
	mry_wr64(buf + MRY_SIGDB_OFF_GENERATION, b->generation);
	mry_wr64(buf + MRY_SIGDB_OFF_CREATED, b->created);
	mry_wr32(buf + MRY_SIGDB_OFF_NB_SIGS, b->nb_sigs);
	mry_wr32(buf + MRY_SIGDB_OFF_FLAGS, b->sign_key != NULL ? MRY_SIGDB_F_SIGNED : 0);
	mry_wr64(buf + MRY_SIGDB_OFF_PAYLOAD_LEN, payload);
	mry_wr64(buf + MRY_SIGDB_OFF_CPU_FEATURES, plat.cpu_features);
	mry_wr32(buf + MRY_SIGDB_OFF_TUNE, plat.tune);
	snprintf((char *)buf + MRY_SIGDB_OFF_HS_VERSION, MRY_SIGDB_HS_VERSION_LEN,
		 "%s", hs_version());
	for (k = 0; k < MRY_SLOT_MAX; k++) {
		if (b->hs_len[k] == 0)
			continue;
		if (hs_serialized_database_info(b->hs_blob[k], b->hs_len[k], &info) == HS_SUCCESS) {
			snprintf((char *)buf + MRY_SIGDB_OFF_HS_INFO, MRY_SIGDB_HS_INFO_LEN,
				 "%s", info);
			free(info);
		}
		break;
	}

	p = put_section(buf + MRY_SIGDB_HDR_LEN, MRY_SIGDB_SEC_META, mlen);
	{
		uint8_t *m = p;

		mry_wr32(m, b->nb_sigs);
		m += 4;
		for (uint32_t i = 0; i < b->nb_sigs; i++) {
			size_t nl = strlen(b->metas[i].name);

			mry_wr32(m, b->metas[i].id);
			m[4] = b->metas[i].action;
			m[5] = b->metas[i].targets;
			m[6] = (uint8_t)nl;
			m[7] = (uint8_t)(nl >> 8);
			memcpy(m + 8, b->metas[i].name, nl);
			m += 8 + ((nl + 3u) & ~(size_t)3u);
		}
	}
	p += pad8(mlen);
	for (k = 0; k < MRY_SLOT_MAX; k++) {
		p = put_section(p, (uint32_t)(MRY_SIGDB_SEC_HS_RAW + k), b->hs_len[k]);
		if (b->hs_len[k] != 0)
			memcpy(p, b->hs_blob[k], b->hs_len[k]);
		p += pad8(b->hs_len[k]);
	}
	crypto_generichash(p, MRY_SIGDB_DIGEST_LEN, buf, (size_t)(p - buf), NULL, 0);
	if (b->sign_key != NULL)
		crypto_sign_detached(p + MRY_SIGDB_DIGEST_LEN, NULL, p,
				     MRY_SIGDB_DIGEST_LEN, b->sign_key);
	*out = buf;
	*out_len = total;
	return 0;
}

void mry_sigdb_file_reseal(uint8_t *buf, size_t len)
{
	uint64_t payload;

	if (len < MRY_SIGDB_HDR_LEN + MRY_SIGDB_DIGEST_LEN)
		return;
	payload = mry_rd64(buf + MRY_SIGDB_OFF_PAYLOAD_LEN);
	if (payload > len - MRY_SIGDB_HDR_LEN - MRY_SIGDB_DIGEST_LEN)
		return;
	crypto_generichash(buf + MRY_SIGDB_HDR_LEN + payload, MRY_SIGDB_DIGEST_LEN,
			   buf, MRY_SIGDB_HDR_LEN + payload, NULL, 0);
}

int mry_sigdb_write_file(const char *path, const uint8_t *buf, size_t len)
{
	char tmp[4096], dir[4096];
	size_t off = 0;
	int fd, dfd, rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t w = write(fd, buf + off, len - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		off += (size_t)w;
	}
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0) {
		unlink(tmp);
		return rc;
	}
	/* make the rename itself durable */
	snprintf(dir, sizeof(dir), "%s", path);
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		if (fsync(dfd) != 0)
			rc = -errno;
		close(dfd);
	}
	return rc;
}

int mry_sigdb_read_key(const char *path, uint8_t *key, size_t len, char *why, size_t whylen)
{
	uint8_t buf[256];
	size_t n, i;
	FILE *f;

	if (len == 0 || 2 * len + 2 > sizeof(buf)) {
		snprintf(why, whylen, "unsupported key length %zu", len);
		return -EINVAL;
	}
	f = fopen(path, "rb");
	if (f == NULL) {
		int err = errno;

		snprintf(why, whylen, "%s", strerror(err));
		return -err;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n == len) {
		memcpy(key, buf, len);
		return 0;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
			 buf[n - 1] == '\t'))
		n--;
	if (n == 2 * len) {
		for (i = 0; i < len; i++) {
			int hi = mry_hex_val(buf[2 * i]), lo = mry_hex_val(buf[2 * i + 1]);

			if (hi < 0 || lo < 0)
				break;
			key[i] = (uint8_t)(hi << 4 | lo);
		}
		if (i == len)
			return 0;
	}
	snprintf(why, whylen, "expected %zu raw bytes or %zu hex characters", len, 2 * len);
	return -EINVAL;
}

int mry_sigdb_keygen(uint8_t pk[MRY_SIGDB_PUBKEY_BYTES], uint8_t sk[MRY_SIGDB_SECKEY_BYTES])
{
	if (sodium_init() < 0)
		return -EIO;
	return crypto_sign_keypair(pk, sk) == 0 ? 0 : -EIO;
}
