/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzz the blocklist file parser. The input is a blocklist file's text.
 * Nothing may crash, leak or read out of bounds; a file either loads whole
 * or fails with a reason naming its line. When it loads, every entry must
 * format back to text that parses to the same entry, its own network
 * address must match, and removing then re-adding it must give a list that
 * still matches it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moray/blocklist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct mry_alloc *a = mry_alloc_default();
	struct mry_blocklist *bl;
	char err[256] = "";
	size_t n;

	bl = mry_blocklist_parse(a, (const char *)data, size, err, sizeof(err));
	if (bl == NULL) {
		if (strncmp(err, "line ", 5) != 0 && strcmp(err, "out of memory") != 0)
			abort();   /* a refusal must name its line */
		return 0;
	}
	n = mry_blocklist_count(bl);
	for (size_t i = 0; i < n && i < 64; i++) {
		const struct mry_blocklist_entry *e = mry_blocklist_entry_at(bl, i);
		struct mry_blocklist_entry back;
		struct mry_blocklist *less = NULL, *again = NULL;
		char text[64];

		if (e == NULL || mry_blocklist_format_entry(e, text, sizeof(text)) != 0)
			abort();
		if (mry_blocklist_parse_entry(text, strlen(text), &back, NULL, 0) != 0 ||
		    back.ip_version != e->ip_version || back.prefix_len != e->prefix_len ||
		    memcmp(back.addr, e->addr, 16) != 0)
			abort();   /* formatting and parsing disagree */
		if (!mry_blocklist_match(bl, e->ip_version, e->addr, 0))
			abort();
		if (mry_blocklist_remove(a, bl, e, &less) != 0)
			abort();
		if (mry_blocklist_count(less) != n - 1)
			abort();
		if (mry_blocklist_add(a, less, e, &again) != 0 ||
		    !mry_blocklist_match(again, e->ip_version, e->addr, 0) ||
		    mry_blocklist_count(again) != n)
			abort();
		mry_blocklist_free(less);
		mry_blocklist_free(again);
	}
	mry_blocklist_free(bl);
	return 0;
}
