/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzz the database loader. First byte selects the mode:
 *   0: the rest is a whole file
 *   1: the rest is a list of (u16 offset, u8 xor) edits applied to a valid
 *      small database built at start-up, digest then recomputed, so the
 *      checks behind the digest (platform, sections, metadata, Hyperscan
 *      deserialisation) meet corrupted input
 *   2: the same edits without resealing
 * Every outcome must be a status; on OK the generation must be usable.
 * No binary database is committed: the template is compiled here.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moray/sigdb.h"
#include "moray/sigsrc.h"
#include "sigdb_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *tmpl;
static size_t tmpl_len;

static void quiet(enum mry_log_level l, const char *m, const char *msg, void *c)
{
	(void)l; (void)m; (void)msg; (void)c;
}

static void build_template(void)
{
	static const char src[] =
		"1 F.Raw reject raw lit:\"fuzz-raw\"\n"
		"2 F.Dec tempfail decoded hex:4142??43(44|4546)\n"
		"3 F.Hdr log headers re:/^X-Fuzz:/m\n";
	struct mry_sigsrc *s = mry_sigsrc_create();
	struct mry_sigc_opts o = { .generation = 1, .created = 1 };
	struct mry_sigc_report rep;

	mry_log_set_handler(quiet, NULL);
	if (s == NULL || mry_sigsrc_parse(s, "t", src, sizeof(src) - 1) != 0 ||
	    mry_sigsrc_compile(s, &o, &tmpl, &tmpl_len, &rep) != 0)
		abort();
	mry_sigsrc_destroy(s);
}

static void try_load(const uint8_t *buf, size_t len)
{
	struct mry_sigdb_gen *g = NULL;
	char detail[256];
	enum mry_sigdb_status st = mry_sigdb_load_mem(buf, len, NULL, &g, detail, sizeof(detail));

	if ((st == MRY_SIGDB_OK) != (g != NULL))
		abort();
	if (g != NULL) {
		for (uint32_t i = 0; i < mry_sigdb_gen_nb_sigs(g); i++)
			if (mry_sigdb_gen_sig(g, mry_sigdb_gen_sig_at(g, i)->id) == NULL)
				abort();
		mry_sigdb_gen_unref(g);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *w;

	if (tmpl == NULL)
		build_template();
	if (size < 1)
		return 0;
	if (data[0] == 0 || data[0] > 2) {
		try_load(data + 1, size - 1);
		return 0;
	}
	w = malloc(tmpl_len);
	if (w == NULL)
		return 0;
	memcpy(w, tmpl, tmpl_len);
	for (size_t i = 1; i + 3 <= size; i += 3) {
		size_t off = ((size_t)data[i] | (size_t)data[i + 1] << 8) % tmpl_len;

		w[off] ^= data[i + 2];
	}
	if (data[0] == 1)
		mry_sigdb_file_reseal(w, tmpl_len);
	try_load(w, tmpl_len);
	free(w);
	return 0;
}
