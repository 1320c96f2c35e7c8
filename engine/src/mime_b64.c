/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Streaming base64 decoder (RFC 2045 §6.8) with carried state, so a MIME
 * part arriving in arbitrary TCP-sized chunks decodes exactly as if it came
 * in one piece. The fast loop decodes whole quanta of four alphabet bytes
 * through one table; anything else (line ends, padding, junk) drops to a
 * byte-at-a-time slow path that keeps the lenient, counted semantics
 * documented in moray/mime.h. On x86-64 CPUs with AVX2 the fast loop first
 * takes 32 alphabet bytes at a time, stitching a block across one line end;
 * a block holding anything else is left to the scalar code, so both paths
 * give identical bytes and counters.
 */
#include <string.h>

#include "moray/mime.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define B64_AVX2 1
#include <immintrin.h>
#else
#define B64_AVX2 0
#endif

#define B64_WS 0x80
#define B64_PAD 0x81
#define B64_BAD 0xff

/* 0..63 alphabet, B64_WS whitespace, B64_PAD '=', B64_BAD anything else */
static const uint8_t b64_rank[256] = {
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80, 0x80, 0x80, 0x80, 0x80, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3e, 0xff, 0xff, 0xff, 0x3f,
	0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0xff, 0xff, 0xff, 0x81, 0xff, 0xff,
	0xff, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
	0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
	0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};

#if B64_AVX2
/*
 * Muła/Lemire pshufb decoding. A byte hn:ln is in the alphabet iff
 * lut_hi[hn] & lut_lo[ln] == 0. Bit 0x10 of every lut_lo entry rejects high
 * nibbles outside 2..7 (controls, bytes >= 0x80); the other bits are one
 * per high-nibble class and are set in lut_lo for the low nibbles that are
 * not alphabet in that class:
 *   0x01 hn 2 ("+/" only: ln b, f)   0x02 hn 3 ('0'-'9': ln 0-9)
 *   0x04 hn 4, 6 (ln 0 is '@', '`')  0x08 hn 5, 7 (ln b-f are "[\]^_{|}~")
 * Whitespace and '=' are not alphabet, so any block that needs the lenient
 * rules fails the test and goes to the scalar code untouched.
 */
static const int8_t b64_lut_lo[16] = {
	0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
	0x11, 0x11, 0x13, 0x1a, 0x1b, 0x1b, 0x1b, 0x1a,
};
static const int8_t b64_lut_hi[16] = {
	0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08,
	0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10,
};
/*
 * Offset to add, by high nibble, to turn a valid byte into its sextet:
 * '+' +19, '0'-'9' +4, 'A'-'Z' -65, 'a'-'z' -71. '/' (0x2f) shares
 * high nibble 2 with '+' but needs +16, so it looks up index 1 instead.
 */
static const int8_t b64_lut_roll[16] = {
	0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0,
};

__attribute__((target("avx2")))
static __m256i b64_lut(const int8_t t[16])
{
	return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)t));
}

/*
 * Decode whole 32-byte blocks of alphabet characters from @in (@len bytes)
 * to 24 bytes each at @out. A block that holds a line end (CRLF or LF) is
 * stitched: the alphabet bytes before the line end and those after it make
 * one 32-byte block (whitespace between quanta, or inside one, is skipped
 * by the scalar code too, so the bytes are the same). Stops at the first
 * block holding anything else, or a second line end. Stores exactly 24
 * bytes per block: callers size @out for the decoded length only. Returns
 * the bytes written; *@used is the input consumed.
 */
__attribute__((target("avx2")))
static size_t b64_dec_avx2(const uint8_t *in, size_t len, uint8_t *out, size_t *used)
{
	const __m256i lut_lo = b64_lut(b64_lut_lo);
	const __m256i lut_hi = b64_lut(b64_lut_hi);
	const __m256i lut_roll = b64_lut(b64_lut_roll);
	const __m256i nib = _mm256_set1_epi8(0x0f);
	const __m256i slash = _mm256_set1_epi8('/');
	const __m256i zero = _mm256_setzero_si256();
	const __m256i iota = _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
					      14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
					      25, 26, 27, 28, 29, 30, 31);
	/* per dword a,b,c,d: a << 6 | b and c << 6 | d, then the two 12-bit
	 * halves into a << 18 | b << 12 | c << 6 | d */
	const __m256i mul1 = _mm256_set1_epi32(0x01400140);
	const __m256i mul2 = _mm256_set1_epi32(0x00011000);
	/* big-endian 3 bytes of each dword to the front of each lane ... */
	const __m256i pack = _mm256_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12,
					      -1, -1, -1, -1,
					      2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12,
					      -1, -1, -1, -1);
	/* ... and the two 12-byte halves together */
	const __m256i join = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 3, 7);
	size_t i = 0, w = 0;

	while (len - i >= 32) {
		__m256i v = _mm256_loadu_si256((const __m256i *)(in + i));
		__m256i hi = _mm256_and_si256(_mm256_srli_epi32(v, 4), nib);
		__m256i lo = _mm256_and_si256(v, nib);
		__m256i bad = _mm256_and_si256(_mm256_shuffle_epi8(lut_hi, hi),
					       _mm256_shuffle_epi8(lut_lo, lo));
		size_t step = 32;
		uint8_t *o = out + w;

		if (!_mm256_testz_si256(bad, bad)) {
			/* the first byte outside the alphabet: a line end? */
			uint32_t ok = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(bad, zero));
			unsigned t = (unsigned)__builtin_ctz(~ok);
			unsigned el = in[i + t] == '\n' ? 1 :
				      (in[i + t] == '\r' && t + 1 < len - i &&
				       in[i + t + 1] == '\n') ? 2 : 0;
			__m256i after, keep;

			if (el == 0 || len - i < 32 + el)
				break;
			after = _mm256_loadu_si256((const __m256i *)(in + i + el));
			keep = _mm256_cmpgt_epi8(_mm256_set1_epi8((char)t), iota);
			v = _mm256_blendv_epi8(after, v, keep);
			hi = _mm256_and_si256(_mm256_srli_epi32(v, 4), nib);
			lo = _mm256_and_si256(v, nib);
			if (!_mm256_testz_si256(_mm256_shuffle_epi8(lut_hi, hi),
						_mm256_shuffle_epi8(lut_lo, lo)))
				break;
			step = 32 + el;
		}
		/* cmpeq gives -1 for '/', moving its roll index from 2 to 1 */
		hi = _mm256_add_epi8(hi, _mm256_cmpeq_epi8(v, slash));
		v = _mm256_add_epi8(v, _mm256_shuffle_epi8(lut_roll, hi));
		v = _mm256_madd_epi16(_mm256_maddubs_epi16(v, mul1), mul2);
		v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, pack), join);
		_mm_storeu_si128((__m128i *)o, _mm256_castsi256_si128(v));
		_mm_storel_epi64((__m128i *)(o + 16), _mm256_extracti128_si256(v, 1));
		i += step;
		w += 24;
	}
	*used = i;
	return w;
}
#endif

void mry_b64_init(struct mry_b64_dec *d)
{
	memset(d, 0, sizeof(*d));
}

size_t mry_b64_decode(struct mry_b64_dec *d, const uint8_t *in, size_t len,
		      uint8_t *out)
{
	const uint8_t *p = in, *end = in + len;
	uint8_t *o = out;
	uint32_t acc = d->acc;
	unsigned n = d->nchars;
#if B64_AVX2
	const bool avx2 = len >= 32 && mry_cpu_avx2();
#endif

	while (p < end) {
		/* fast path: aligned quanta of four alphabet bytes */
		if (n == 0 && d->pad_state == 0) {
			for (;;) {
#if B64_AVX2
				if (avx2 && end - p >= 32) {
					size_t used;

					o += b64_dec_avx2(p, (size_t)(end - p), o, &used);
					p += used;
				}
#endif
				while (end - p >= 4) {
					uint32_t a = b64_rank[p[0]], b = b64_rank[p[1]];
					uint32_t c = b64_rank[p[2]], e = b64_rank[p[3]];

					if (mry_unlikely((a | b | c | e) & 0xc0))
						break;
					acc = a << 18 | b << 12 | c << 6 | e;
					o[0] = (uint8_t)(acc >> 16);
					o[1] = (uint8_t)(acc >> 8);
					o[2] = (uint8_t)acc;
					o += 3;
					p += 4;
				}
				/* the CRLF between whole quanta that ends every mail line
				 * is whitespace: step over it and stay on the fast path */
				if (end - p < 6 || p[0] != '\r' || p[1] != '\n')
					break;
				p += 2;
			}
			acc = 0;
			if (p == end)
				break;
		}
		uint8_t r = b64_rank[*p++];

		if (r < 64) {
			if (d->pad_state != 0) {
				/* data after padding: keep decoding, as clients do */
				d->bad_padding++;
				d->pad_state = 0;
			}
			acc = acc << 6 | r;
			if (++n == 4) {
				o[0] = (uint8_t)(acc >> 16);
				o[1] = (uint8_t)(acc >> 8);
				o[2] = (uint8_t)acc;
				o += 3;
				n = 0;
				acc = 0;
			}
		} else if (r == B64_WS) {
			continue;
		} else if (r == B64_PAD) {
			if (n == 2) {
				*o++ = (uint8_t)(acc >> 4);
				n = 0;
				acc = 0;
				d->pad_state = 1;
			} else if (n == 3) {
				*o++ = (uint8_t)(acc >> 10);
				*o++ = (uint8_t)(acc >> 2);
				n = 0;
				acc = 0;
				d->pad_state = 2;
			} else if (n == 0 && d->pad_state == 1) {
				d->pad_state = 2;   /* the second '=' of "xx==" */
			} else {
				/* '=' after 0 or 1 chars, or a third '=' */
				d->bad_padding++;
				if (n == 1) {
					n = 0;
					acc = 0;
				}
			}
		} else {
			d->invalid++;
		}
	}
	d->acc = acc;
	d->nchars = (uint8_t)n;
	return (size_t)(o - out);
}

size_t mry_b64_finish(struct mry_b64_dec *d, uint8_t *out)
{
	size_t w = 0;

	switch (d->nchars) {
	case 1:
		d->bad_padding++;
		break;
	case 2:
		out[w++] = (uint8_t)(d->acc >> 4);
		d->unpadded++;
		break;
	case 3:
		out[w++] = (uint8_t)(d->acc >> 10);
		out[w++] = (uint8_t)(d->acc >> 2);
		d->unpadded++;
		break;
	default:
		break;
	}
	d->acc = 0;
	d->nchars = 0;
	d->pad_state = 0;
	return w;
}
