/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The MIME body parser's byte kernel: where in a run of whole text lines
 * the first line starts that a multipart delimiter ('-') or a uuencode
 * "begin" may open. In text, where hyphens are common, one pass over
 * LF-then-mark pairs (AVX2 where the CPU has it, scalar elsewhere and
 * under MORAY_FORCE_SCALAR=1) replaces a memchr per '-' and a memmem for
 * "\nbegin"; both give the same answer.
 */
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MIME_LINE_AVX2 1
#include <immintrin.h>
#else
#define MIME_LINE_AVX2 0
#endif

#include "mime_priv.h"

static const uint8_t *mark_check(const uint8_t *q, const uint8_t *end, bool uu)
{
	return *q == '-' || (uu && end - q >= 5 && memcmp(q, "begin", 5) == 0) ? q : NULL;
}

static const uint8_t *line_mark_scalar(const uint8_t *p, size_t n, size_t i, bool uu)
{
	const uint8_t *q;

	for (; i + 1 < n; i++)
		if (p[i] == '\n' && (q = mark_check(p + i + 1, p + n, uu)) != NULL)
			return q;
	return NULL;
}

#if MIME_LINE_AVX2
__attribute__((target("avx2")))
static const uint8_t *line_mark_avx2(const uint8_t *p, size_t n, bool uu)
{
	const __m256i lf = _mm256_set1_epi8('\n'), dash = _mm256_set1_epi8('-');
	const __m256i b = uu ? _mm256_set1_epi8('b') : dash;
	size_t i;

	/* p[i + 1 .. i + 32] is the byte after each of p[i .. i + 31] */
	for (i = 0; i + 33 <= n; i += 32) {
		__m256i v = _mm256_loadu_si256((const __m256i *)(p + i));
		__m256i w = _mm256_loadu_si256((const __m256i *)(p + i + 1));
		__m256i mark = _mm256_or_si256(_mm256_cmpeq_epi8(w, dash), _mm256_cmpeq_epi8(w, b));
		uint32_t m = (uint32_t)_mm256_movemask_epi8(
			_mm256_and_si256(_mm256_cmpeq_epi8(v, lf), mark));

		while (m != 0) {
			const uint8_t *q = mark_check(p + i + (unsigned)__builtin_ctz(m) + 1,
						      p + n, uu);

			if (q != NULL)
				return q;
			m &= m - 1;
		}
	}
	return line_mark_scalar(p, n, i, uu);
}

const uint8_t *mry_mime_line_mark(const uint8_t *p, size_t n, bool uu)
{
	return mry_cpu_avx2() ? line_mark_avx2(p, n, uu) : line_mark_scalar(p, n, 0, uu);
}
#else
const uint8_t *mry_mime_line_mark(const uint8_t *p, size_t n, bool uu)
{
	return line_mark_scalar(p, n, 0, uu);
}
#endif
