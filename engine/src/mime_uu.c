/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Streaming uudecoder. uuencode is line based (a length character, then
 * groups of four characters carrying three bytes each), so the decoder
 * keeps one bounded line buffer across chunks and decodes at each LF.
 * Lines are decoded as ClamAV and GMime do: each character is taken modulo
 * 64 after subtracting 32, so both ' ' and '`' stand for zero.
 * "begin-base64" (uuencode -m, POSIX) switches the same line loop to the
 * base64 decoder until the "====" line, with the same line limit.
 */
#include <string.h>

#include "moray/mime.h"

void mry_uu_init(struct mry_uu_dec *d, bool seek_begin)
{
	memset(d, 0, sizeof(*d));
	d->state = seek_begin ? 0 : 1;
}

static bool is_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool mry_uu_is_begin(const uint8_t *line, size_t len, char *name, size_t name_cap)
{
	size_t i, digits = 0, nl;

	if (len >= 13 && memcmp(line, "begin-base64 ", 13) == 0)
		i = 13;
	else if (len >= 8 && memcmp(line, "begin ", 6) == 0)
		i = 6;
	else
		return false;
	while (i < len && line[i] >= '0' && line[i] <= '7') {
		i++;
		digits++;
	}
	if (digits < 3 || digits > 4 || i >= len || line[i] != ' ')
		return false;
	i++;
	while (len > i && is_ws(line[len - 1]))
		len--;
	if (i >= len)
		return false;
	if (name != NULL && name_cap > 0) {
		nl = MRY_MIN(len - i, name_cap - 1);
		memcpy(name, line + i, nl);
		name[nl] = '\0';
	}
	return true;
}

/* one line of a "begin-base64" body; "====" ends it */
static size_t b64_line(struct mry_uu_dec *d, const uint8_t *l, size_t len, uint8_t *out)
{
	uint32_t invalid = d->b64d.invalid;
	size_t w;

	if (len == 4 && memcmp(l, "====", 4) == 0) {
		d->state = 2;
		w = mry_b64_finish(&d->b64d, out);
	} else {
		w = mry_b64_decode(&d->b64d, l, len, out);
	}
	if (d->b64d.invalid != invalid)
		d->malformed++;
	return w;
}

static size_t uu_line(struct mry_uu_dec *d, uint8_t *out)
{
	const uint8_t *l = d->line;
	size_t len = d->len, w = 0, i, want, have;

	while (len > 0 && (l[len - 1] == '\r' || l[len - 1] == '\n'))
		len--;
	if (d->overflow)
		d->malformed++;
	if (d->state == 0) {
		if (mry_uu_is_begin(l, len, NULL, 0)) {
			d->state = 1;
			d->b64 = l[5] == '-';
			mry_b64_init(&d->b64d);
		}
		return 0;
	}
	if (d->state != 1 || len == 0)
		return 0;
	if (d->b64)
		return b64_line(d, l, len, out);
	if (len >= 3 && memcmp(l, "end", 3) == 0) {
		for (i = 3; i < len && is_ws(l[i]); i++)
			;
		if (i == len) {
			d->state = 2;
			return 0;
		}
	}
	want = (size_t)((l[0] - ' ') & 0x3f);
	if (want == 0)
		return 0;
	for (i = 0; i < len; i++) {
		if (l[i] < ' ' || l[i] > '`') {
			d->malformed++;
			break;
		}
	}
	/* trailing spaces are often stripped in transit: count them as zero */
	have = (len - 1) / 4 * 3;
	if ((len - 1) % 4 >= 2)
		have += (len - 1) % 4 - 1;
	if (have < want) {
		if (have + 2 < want)
			d->malformed++;
		want = have;
	}
	for (i = 1; w < want; i += 4) {
		uint32_t v = 0;
		unsigned k;

		for (k = 0; k < 4; k++) {
			uint8_t c = i + k < len ? l[i + k] : ' ';

			v = v << 6 | ((uint32_t)(c - ' ') & 0x3f);
		}
		out[w++] = (uint8_t)(v >> 16);
		if (w < want)
			out[w++] = (uint8_t)(v >> 8);
		if (w < want)
			out[w++] = (uint8_t)v;
	}
	return w;
}

size_t mry_uu_decode(struct mry_uu_dec *d, const uint8_t *in, size_t len,
		     uint8_t *out)
{
	const uint8_t *p = in, *end = in + len;
	size_t w = 0;

	while (p < end) {
		const uint8_t *nl;
		size_t run, room;

		if (d->state == 2)
			break;
		nl = memchr(p, '\n', (size_t)(end - p));
		run = (size_t)((nl != NULL ? nl + 1 : end) - p);
		room = sizeof(d->line) - d->len;
		if (run > room) {
			memcpy(d->line + d->len, p, room);
			d->len = sizeof(d->line);
			d->overflow = 1;
		} else {
			memcpy(d->line + d->len, p, run);
			d->len = (uint16_t)(d->len + run);
		}
		p += run;
		if (nl != NULL) {
			w += uu_line(d, out + w);
			d->len = 0;
			d->overflow = 0;
		}
	}
	return w;
}

size_t mry_uu_finish(struct mry_uu_dec *d, uint8_t *out)
{
	size_t w = 0;

	if (d->len > 0 && d->state != 2)
		w = uu_line(d, out);
	if (d->state == 1 && d->b64)        /* no "====": decode the tail */
		w += mry_b64_finish(&d->b64d, out + w);
	d->len = 0;
	d->overflow = 0;
	return w;
}
