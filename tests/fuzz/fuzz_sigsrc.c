/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzz the signature-source parsers. First byte: bit 0 selects the ClamAV
 * .ndb importer instead of moray's format; bit 1 also translates the rest
 * as one hex signature (mry_sigsrc_hex_to_expr). Nothing may crash, leak or
 * read out of bounds; every line is either a signature, an error or a
 * counted skip.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "moray/sigsrc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mry_sigsrc *s;
	const char *text;
	size_t len;
	uint32_t accounted = 0;

	if (size < 1)
		return 0;
	text = (const char *)data + 1;
	len = size - 1;
	s = mry_sigsrc_create();
	if (s == NULL)
		return 0;
	if (data[0] & 1) {
		const struct mry_ndb_report *r;

		mry_sigsrc_parse_ndb(s, "fuzz.ndb", text, len);
		r = mry_sigsrc_ndb_report(s);
		for (int k = 0; k < MRY_NDB_SKIP_MAX; k++)
			accounted += r->skipped[k];
		if (accounted + r->translated != r->lines)
			abort();   /* a signature was skipped silently */
	} else {
		mry_sigsrc_parse(s, "fuzz.sigs", text, len);
	}
	if (data[0] & 2) {
		char *e = NULL, err[128];
		uint64_t mn, mx;
		size_t col;

		if (mry_sigsrc_hex_to_expr(text, len, &e, &mn, &mx, err, sizeof(err), &col) == 0)
			free(e);
	}
	mry_sigsrc_destroy(s);
	return 0;
}
