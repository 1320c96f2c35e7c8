/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Message bytes of an SMTP session: DATA body lines (RFC 5321 §4.5.2:
 * dot-unstuffing, end of data, bare CR and LF, line length) and BDAT chunk
 * octets (RFC 3030 §2), handed to the consumer zero-copy, a run at a time.
 *
 * End of DATA is RFC 5321's alone (§4.5.2, §2.3.8): only CRLF "." CRLF ends
 * the message. Other "." lines that some server takes as the end (SMTP
 * smuggling, CVE-2023-51764/51765/51766: Postfix 3.7 ends at "\n.\n",
 * "\n.\r\n" and "\r\n.\r\r\n", Sendmail and Exim at "\r\n.\n", others at
 * ".\r" followed by anything) are reported with the offset of their dot
 * (mry_smtp_ambiguous_end()), and the message goes on: the consumer judges
 * the whole RFC 5321 message and keeps everything from the first such dot
 * away from the server until then. The dot of such a line is a stuffing
 * dot (a strict server's reading). Bare LF and bare CR are counted as
 * anomalies (at most one of each per line) and the wire bytes are
 * delivered unchanged (no LF -> CRLF rewriting: zero copy wins). Postfix
 * splits lines longer than line_length_limit (2048) into continuation
 * records and does not look for a dot at the start of a continuation;
 * that is the same as looking for the dot only after a line end, which is
 * what this parser does. A dot after a bare CR in the middle of a line
 * ("\r.\r") is counted as bare CR only.
 *
 * Trade-off: message bodies are almost all plain CRLF lines, so a vector
 * scan (SSE2, or AVX2 where the CPU has it) steps over them 64 bytes at a
 * time and the per-line state machine runs only where something needs
 * noting. Calls only smtp_session.c.
 */
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "moray/common.h"
#include "moray/smtp.h"
#include "smtp_priv.h"

/* ---- line ends shared with command lines ------------------------------ */

/*
 * Bare CR (RFC 5321 §2.3.8) in [p, p+n): the caller leaves out the CRs
 * right before the line end (Postfix strips them) or at the end of the
 * piece (an LF may still follow). At most one per line.
 */
void mry_smtp_check_bare_cr(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			    const uint8_t *p, size_t n)
{
	if (s->c_bare_cr || n == 0)
		return;
	if (s->c_prev_cr || memchr(p, '\r', n) != NULL) {
		s->c_bare_cr = true;
		mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_BARE_CR);
	}
}

/* ---- DATA message body (RFC 5321 §4.5.2) ------------------------------ */

static const uint8_t crs[64] = {
	'\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r',
	'\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r',
	'\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r',
	'\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r',
	'\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r',
};

static void deliver(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		    const uint8_t *p, size_t n)
{
	if (n == 0)
		return;
	s->msg_size += n;
	if (c->cb.msg_data != NULL)
		c->cb.msg_data(s->user, p, n);
}

static void data_line_len(struct mry_smtp_ctx *c, struct mry_smtp_session *s, size_t add)
{
	uint32_t before = s->dline_len;

	s->dline_len += (uint32_t)MRY_MIN(add, (size_t)UINT32_MAX / 2);
	if (s->dline_len < before)
		s->dline_len = UINT32_MAX;
	if (before <= MRY_SMTP_DATA_LINE_MAX && s->dline_len > MRY_SMTP_DATA_LINE_MAX)
		mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_DATA_LINE_TOO_LONG);
}

/*
 * Where the plain lines that follow @i end: lines that end in CRLF, hold no
 * bare CR, are not longer than MRY_SMTP_DATA_LINE_MAX and after which no
 * line starts with '.'. Returns the offset just past the last such line's
 * LF, or @i when there is none (the per-line code then takes over). The
 * line at @i already holds @line_len bytes. Needs p[i - 1] (@i >= 1).
 * Message bodies are almost all such lines: 64 bytes per step, one bit per
 * byte (SSE2, or AVX2 where the CPU has it), instead of two memchr() calls
 * and their bookkeeping per line.
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SMTP_BLOCK_SCAN 1

struct masks64 {
	uint64_t lf, cr, dot;
};

static inline __attribute__((always_inline)) void masks_sse2(const uint8_t *p,
							       struct masks64 *m)
{
	const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n');
	const __m128i dot = _mm_set1_epi8('.');
	__m128i v0 = _mm_loadu_si128((const __m128i *)p);
	__m128i v1 = _mm_loadu_si128((const __m128i *)(p + 16));
	__m128i v2 = _mm_loadu_si128((const __m128i *)(p + 32));
	__m128i v3 = _mm_loadu_si128((const __m128i *)(p + 48));

#define SMTP_M16(v, c) ((uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, c)))
#define SMTP_M64(c) (SMTP_M16(v0, c) | SMTP_M16(v1, c) << 16 | SMTP_M16(v2, c) << 32 | \
		     SMTP_M16(v3, c) << 48)
	m->lf = SMTP_M64(lf);
	m->cr = SMTP_M64(cr);
	m->dot = SMTP_M64(dot);
#undef SMTP_M64
#undef SMTP_M16
}

static inline __attribute__((always_inline, target("avx2"))) void
masks_avx2(const uint8_t *p, struct masks64 *m)
{
	const __m256i cr = _mm256_set1_epi8('\r'), lf = _mm256_set1_epi8('\n');
	const __m256i dot = _mm256_set1_epi8('.');
	__m256i v0 = _mm256_loadu_si256((const __m256i *)p);
	__m256i v1 = _mm256_loadu_si256((const __m256i *)(p + 32));

#define SMTP_M32(v, c) ((uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, c)))
	m->lf = SMTP_M32(v0, lf) | SMTP_M32(v1, lf) << 32;
	m->cr = SMTP_M32(v0, cr) | SMTP_M32(v1, cr) << 32;
	m->dot = SMTP_M32(v0, dot) | SMTP_M32(v1, dot) << 32;
#undef SMTP_M32
}

#define SMTP_PLAIN_LINES(name, attr, masks)						\
static attr size_t name(const uint8_t *p, size_t i, size_t len, uint32_t line_len)	\
{											\
	/* position of the LF before the line at @i (may lie before @p) */		\
	int64_t last_lf = (int64_t)i - 1 - (int64_t)line_len;				\
	size_t b;									\
											\
	if (line_len > MRY_SMTP_DATA_LINE_MAX)						\
		return i;								\
	/* p[b - 1] and p[b + 64] are the neighbours the edge bits need */		\
	for (b = i; b + 65 <= len; b += 64) {						\
		struct masks64 m;							\
		uint8_t after = p[b + 64];						\
		uint64_t ev;								\
											\
		masks(p + b, &m);							\
		/* bare CR: followed by neither CR nor LF; bare LF: not after	\
		 * CR; a line that starts with '.' (stuffing or the end) */	\
		ev = m.cr & ~((m.cr | m.lf) >> 1 |					\
			      (uint64_t)(after == '\r' || after == '\n') << 63);	\
		ev |= m.lf & ~(m.cr << 1 | (uint64_t)(p[b - 1] == '\r'));		\
		ev |= m.lf & (m.dot >> 1 | (uint64_t)(after == '.') << 63);		\
		if (ev != 0)								\
			break;	/* per line from the last plain line end */		\
		if (m.lf == 0) {							\
			if ((int64_t)(b + 64) - last_lf > MRY_SMTP_DATA_LINE_MAX)	\
				break;							\
			continue;							\
		}									\
		if ((int64_t)b + __builtin_ctzll(m.lf) - last_lf > MRY_SMTP_DATA_LINE_MAX) \
			break;								\
		last_lf = (int64_t)b + 63 - __builtin_clzll(m.lf);			\
	}										\
	return last_lf >= (int64_t)i ? (size_t)last_lf + 1 : i;				\
}

SMTP_PLAIN_LINES(plain_lines_sse2, , masks_sse2)
SMTP_PLAIN_LINES(plain_lines_avx2, __attribute__((target("avx2"))), masks_avx2)

static size_t plain_lines(const uint8_t *p, size_t i, size_t len, uint32_t line_len)
{
	return mry_cpu_avx2() ? plain_lines_avx2(p, i, len, line_len)
			      : plain_lines_sse2(p, i, len, line_len);
}
#endif

/*
 * Message bytes of one segment; returns how many were consumed (less than
 * @len only when the terminator was found: the rest are commands).
 */
size_t mry_smtp_data_feed(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			  const uint8_t *p, size_t len, uint64_t off)
{
	size_t i = 0, run = 0;

	while (i < len) {
		switch ((enum smtp_dstate)s->dstate) {
		case SMTP_DS_LINE_START:
			s->dline_len = 0;
			s->c_bare_cr = false;
			if (p[i] == '.') {
				deliver(c, s, p + run, i - run);
				s->dot_off = off + i;
				i++;
				run = i;
				s->dstate = SMTP_DS_DOT;
				break;
			}
			s->dstate = SMTP_DS_MID;
			/* FALLTHROUGH */
		case SMTP_DS_MID: {
			const uint8_t *lf;
			size_t k;

#ifdef SMTP_BLOCK_SCAN
			if (i > 0 && len - i >= 65) {
				k = plain_lines(p, i, len, s->dline_len);
				if (k > i) {
					/* whole lines, nothing to note: the next starts at k */
					i = k;
					s->c_prev_cr = false;
					s->d_prev_crlf = true;
					s->dstate = SMTP_DS_LINE_START;
					break;
				}
			}
#endif
			lf = memchr(p + i, '\n', len - i);

			if (lf == NULL) {
				mry_smtp_check_bare_cr(c, s, p + i, smtp_strip_cr(p + i, len - i));
				data_line_len(c, s, len - i);
				s->c_prev_cr = p[len - 1] == '\r';
				i = len;
				break;
			}
			k = (size_t)(lf - p);
			mry_smtp_check_bare_cr(c, s, p + i, smtp_strip_cr(p + i, k - i));
			s->d_prev_crlf = k > 0 ? p[k - 1] == '\r' : s->c_prev_cr;
			if (!s->d_prev_crlf)
				mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_BARE_LF);
			data_line_len(c, s, k - i + 1);
			s->c_prev_cr = false;
			i = k + 1;
			s->dstate = SMTP_DS_LINE_START;
			break;
		}
		case SMTP_DS_DOT:
			if (p[i] == '\n') {
				/* ".\n": Postfix, Sendmail and Exim end here */
				mry_smtp_ambiguous_end(c, s, MRY_SMTP_AN_BARE_LF_END_OF_DATA,
						       s->dot_off);
				s->c_prev_cr = false;
				s->dstate = SMTP_DS_MID;   /* the LF ends the line there */
				break;
			}
			if (p[i] == '\r') {
				s->dstate = SMTP_DS_DOT_CR;
				s->held_cr = 0;
				i++;
				break;
			}
			/* a stuffing dot: the line goes on without it */
			data_line_len(c, s, 1);
			s->dstate = SMTP_DS_MID;
			break;
		case SMTP_DS_DOT_CR:
			if (p[i] == '\r') {
				i++;
				break;
			}
			if (p[i] == '\n') {
				/* CRs after the dot: held_cr from earlier segments, i - run here */
				if (s->d_prev_crlf && s->held_cr + (i - run) == 1)
					goto eom;
				mry_smtp_ambiguous_end(c, s, s->d_prev_crlf ?
						       MRY_SMTP_AN_BARE_CR_END_OF_DATA :
						       MRY_SMTP_AN_BARE_LF_END_OF_DATA, s->dot_off);
			} else {
				/* ".\r" then more: a server that ends lines at CR ends here */
				mry_smtp_ambiguous_end(c, s, MRY_SMTP_AN_BARE_CR_END_OF_DATA,
						       s->dot_off);
				mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_BARE_CR);
				s->c_bare_cr = true;
			}
			/* the CRs are message bytes; an LF then ends the line in MID */
			while (s->held_cr > 0) {
				uint32_t m = MRY_MIN(s->held_cr, (uint32_t)sizeof(crs));

				deliver(c, s, crs, m);
				s->held_cr -= m;
			}
			s->c_prev_cr = i > run || s->c_prev_cr;
			s->dstate = SMTP_DS_MID;
			break;
		}
	}
	if (s->dstate == SMTP_DS_DOT_CR) {
		/* CRs after the dot may still belong to the terminator */
		s->held_cr += (uint32_t)(len - run);
		s->c_prev_cr = true;
		return len;
	}
	deliver(c, s, p + run, len - run);
	return len;
eom:
	/* the line end before the '.' belongs to the message, ".\r\n" not */
	s->held_cr = 0;
	s->cstate = SMTP_CS_CMD;
	s->c_prev_cr = false;
	s->c_bare_cr = false;
	mry_smtp_msg_end(c, s, s->dot_off);
	mry_smtp_q_push(c, s, SMTP_Q_EOM, 0, s->cur_msg);
	mry_smtp_txn_done(c, s);
	return i + 1;
}

/* ---- BDAT chunk octets (RFC 3030 §2) ---------------------------------- */

void mry_smtp_bdat_done(struct mry_smtp_ctx *c, struct mry_smtp_session *s, uint64_t eom_off)
{
	s->cstate = SMTP_CS_CMD;
	if (!s->bdat_last) {
		mry_smtp_phase(c, s, MRY_SMTP_PH_BDAT_CHUNK_END);
		return;
	}
	if (s->bdat_discard) {
		s->bdat_discard = false;
	} else if (s->in_msg) {
		mry_smtp_msg_end(c, s, eom_off);
		mry_smtp_txn_done(c, s);
		return;
	}
	mry_smtp_txn_end(c, s);
}

size_t mry_smtp_bdat_feed(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			  const uint8_t *p, size_t len, uint64_t off)
{
	size_t m = (size_t)MRY_MIN((uint64_t)len, s->bdat_left);

	if (s->in_msg && !s->bdat_discard)
		deliver(c, s, p, m);
	s->bdat_left -= m;
	if (s->bdat_left == 0)
		mry_smtp_bdat_done(c, s, off + m - 1);
	return m;
}
