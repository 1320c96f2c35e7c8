/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Streaming quoted-printable decoder (RFC 2045 §6.7). It follows GMime's
 * decoder byte for byte (soft breaks "=\n" and "=\r\n", either hex case,
 * invalid escapes passed through, trailing whitespace kept) because the
 * scanner must see what a mail client shows, and counts what a strict
 * decoder would have refused. Plain runs are copied with memchr/memcpy.
 */
#include <string.h>

#include "moray/mime.h"

static const int8_t qp_hex[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	 0,  1,  2,  3,  4,  5,  6,  7,  8,  9, -1, -1, -1, -1, -1, -1,
	-1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

void mry_qp_init(struct mry_qp_dec *d)
{
	memset(d, 0, sizeof(*d));
}

size_t mry_qp_decode(struct mry_qp_dec *d, const uint8_t *in, size_t len,
		     uint8_t *out)
{
	const uint8_t *p = in, *end = in + len;
	uint8_t *o = out;

	while (p < end) {
		uint8_t c;

		switch (d->state) {
		case 0: {
			const uint8_t *eq = memchr(p, '=', (size_t)(end - p));
			size_t run = (size_t)((eq != NULL ? eq : end) - p);

			memcpy(o, p, run);
			o += run;
			p += run;
			if (eq != NULL) {
				p++;
				d->state = 1;
			}
			break;
		}
		case 1:
			c = *p++;
			if (c == '\n') {
				d->state = 0;          /* soft break, bare LF */
			} else {
				d->save = c;
				d->state = 2;
			}
			break;
		default:
			c = *p++;
			d->state = 0;
			if (qp_hex[c] >= 0 && qp_hex[d->save] >= 0) {
				if ((c >= 'a' && c <= 'f') ||
				    (d->save >= 'a' && d->save <= 'f'))
					d->lowercase++;
				*o++ = (uint8_t)(qp_hex[d->save] << 4 | qp_hex[c]);
			} else if (c == '\n' && d->save == '\r') {
				/* soft break, CRLF */
			} else {
				d->invalid++;
				*o++ = '=';
				*o++ = d->save;
				*o++ = c;   /* as GMime: even a '=' here is literal */
			}
			break;
		}
	}
	return (size_t)(o - out);
}

size_t mry_qp_finish(struct mry_qp_dec *d, uint8_t *out)
{
	/* a final "=" is a soft break whose line end went to the boundary
	 * (RFC 2046 §5.1.1); "=X" cannot be completed. Both are dropped, as
	 * GMime does. */
	(void)out;
	if (d->state == 2)
		d->invalid++;
	d->state = 0;
	return 0;
}
