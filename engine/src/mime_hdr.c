/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * MIME header values: Content-Type (RFC 2045 §5, RFC 2046), parameters with
 * RFC 2231 continuations and charset'lang'value, RFC 2047 encoded-words in
 * file names, Content-Transfer-Encoding and Content-Disposition (RFC 2183).
 * The block reader below unfolds a header block line by line and hands
 * each complete field to the field parser; it returns what each line was
 * and leaves every decision about the body to its caller (mime.c).
 * Runs once per header field, never per packet: written plainly, lenient
 * where mail clients are lenient (unquoted values up to ';', encoded-words
 * inside quoted strings), with every oddity a client might resolve
 * differently counted as an anomaly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime_priv.h"

#define PARAM_VAL_MAX 1024
#define PARAM_SECTIONS 32

static bool is_lws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

struct cur {
	const char *p;
	const char *end;
};

/* whitespace and (nested) comments */
static void skip_cfws(struct cur *c)
{
	while (c->p < c->end) {
		if (is_lws(*c->p)) {
			c->p++;
		} else if (*c->p == '(') {
			int depth = 0;

			while (c->p < c->end) {
				char ch = *c->p++;

				if (ch == '\\' && c->p < c->end)
					c->p++;
				else if (ch == '(')
					depth++;
				else if (ch == ')' && --depth == 0)
					break;
			}
		} else {
			break;
		}
	}
}

/* append with truncation, keeps NUL termination */
static void app(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
	if (*len + 1 >= cap)
		return;
	if (n > cap - 1 - *len)
		n = cap - 1 - *len;
	memcpy(out + *len, s, n);
	*len += n;
	out[*len] = '\0';
}

static bool charset_is_latin1(const char *cs, size_t n)
{
	static const char *const names[] = {
		"iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1",
	};
	size_t i;

	for (i = 0; i < MRY_ARRAY_SIZE(names); i++)
		if (strlen(names[i]) == n && strncasecmp(cs, names[i], n) == 0)
			return true;
	return false;
}

/* decoded bytes in @charset -> @out: latin1 becomes UTF-8, others as they are */
static void app_charset(char *out, size_t cap, size_t *len, const char *cs,
			size_t cs_len, const uint8_t *s, size_t n)
{
	size_t i;

	if (!charset_is_latin1(cs, cs_len)) {
		app(out, cap, len, (const char *)s, n);
		return;
	}
	for (i = 0; i < n; i++) {
		char u[2];

		if (s[i] < 0x80) {
			app(out, cap, len, (const char *)&s[i], 1);
		} else {
			u[0] = (char)(0xc0 | s[i] >> 6);
			u[1] = (char)(0x80 | (s[i] & 0x3f));
			if (*len + 2 < cap)
				app(out, cap, len, u, 2);
		}
	}
}

/* one encoded-word at @s; returns its length or 0 when it is none */
static size_t encoded_word(const char *s, char *out, size_t cap, size_t *len)
{
	const char *cs, *q, *text, *te;
	size_t cs_len, tl, n = 0, i;
	uint8_t buf[MRY_MIME_NAME_MAX * 2];
	char enc;

	if (s[0] != '=' || s[1] != '?')
		return 0;
	cs = s + 2;
	q = strchr(cs, '?');
	if (q == NULL || q == cs)
		return 0;
	cs_len = (size_t)(q - cs);
	enc = lower(q[1]);
	if ((enc != 'q' && enc != 'b') || q[2] != '?')
		return 0;
	text = q + 3;
	te = strstr(text, "?=");
	if (te == NULL)
		return 0;
	tl = (size_t)(te - text);
	for (i = 0; i < tl; i++)
		if (is_lws(text[i]))
			return 0;
	/* RFC 2231 §5: charset*language */
	{
		const char *star = memchr(cs, '*', cs_len);

		if (star != NULL)
			cs_len = (size_t)(star - cs);
	}
	if (enc == 'b') {
		struct mry_b64_dec d;
		uint8_t tmp[MRY_B64_DEC_BOUND(sizeof(buf) * 4 / 3) + 8];
		size_t take = MRY_MIN(tl, sizeof(buf) * 4 / 3);

		mry_b64_init(&d);
		n = mry_b64_decode(&d, (const uint8_t *)text, take, tmp);
		n += mry_b64_finish(&d, tmp + n);
		n = MRY_MIN(n, sizeof(buf));
		memcpy(buf, tmp, n);
	} else {
		for (i = 0; i < tl && n < sizeof(buf); i++) {
			if (text[i] == '_') {
				buf[n++] = ' ';
			} else if (text[i] == '=' && i + 2 < tl &&
				   mry_hex_val(text[i + 1]) >= 0 && mry_hex_val(text[i + 2]) >= 0) {
				buf[n++] = (uint8_t)(mry_hex_val(text[i + 1]) << 4 |
						     mry_hex_val(text[i + 2]));
				i += 2;
			} else {
				buf[n++] = (uint8_t)text[i];
			}
		}
	}
	app_charset(out, cap, len, cs, cs_len, buf, n);
	return (size_t)(te + 2 - s);
}

void mry_mime_decode_2047(const char *in, char *out, size_t cap)
{
	size_t len = 0, i = 0, mark = 0;
	bool after_ew = false;

	if (cap == 0)
		return;
	out[0] = '\0';
	while (in[i] != '\0') {
		size_t save = len, n;

		if (in[i] == '=' && in[i + 1] == '?') {
			if (after_ew)
				len = mark;   /* whitespace between encoded-words goes */
			out[len] = '\0';
			n = encoded_word(in + i, out, cap, &len);
			if (n > 0) {
				i += n;
				after_ew = true;
				mark = len;
				continue;
			}
			len = save;
			out[len] = '\0';
		}
		if (!is_lws(in[i]))
			after_ew = false;
		app(out, cap, &len, in + i, 1);
		i++;
	}
}

/* %XX decoding of an RFC 2231 extended value */
static size_t pct_decode(const char *s, size_t n, uint8_t *out, size_t cap)
{
	size_t i, w = 0;

	for (i = 0; i < n && w < cap; i++) {
		if (s[i] == '%' && i + 2 < n && mry_hex_val(s[i + 1]) >= 0 &&
		    mry_hex_val(s[i + 2]) >= 0) {
			out[w++] = (uint8_t)(mry_hex_val(s[i + 1]) << 4 | mry_hex_val(s[i + 2]));
			i += 2;
		} else {
			out[w++] = (uint8_t)s[i];
		}
	}
	return w;
}

struct param_sec {
	uint16_t idx;
	bool ext;
	uint16_t off;
	uint16_t len;
};

/* a name or filename parameter, gathered over its RFC 2231 sections */
struct param_acc {
	char plain[PARAM_VAL_MAX];
	bool have_plain;
	char ext[PARAM_VAL_MAX];           /* name*=charset'lang'value */
	bool have_ext;
	struct param_sec sec[PARAM_SECTIONS];
	unsigned nsec;
	char secbuf[PARAM_VAL_MAX];
	size_t secbuf_len;
};

static int sec_cmp(const void *a, const void *b)
{
	const struct param_sec *x = a, *y = b;

	return (int)x->idx - (int)y->idx;
}

/* "charset'lang'%xx..." -> decoded into out */
static void ext_value(const char *v, size_t n, char *out, size_t cap, size_t *len)
{
	const char *q1 = memchr(v, '\'', n), *q2, *cs = "";
	size_t cs_len = 0, dn;
	uint8_t tmp[PARAM_VAL_MAX];

	if (q1 != NULL) {
		q2 = memchr(q1 + 1, '\'', (size_t)(v + n - q1 - 1));
		if (q2 != NULL) {
			cs = v;
			cs_len = (size_t)(q1 - v);
			n -= (size_t)(q2 + 1 - v);
			v = q2 + 1;
		}
	}
	dn = pct_decode(v, n, tmp, sizeof(tmp));
	app_charset(out, cap, len, cs, cs_len, tmp, dn);
}

static void param_finish(struct param_acc *a, char *out, size_t cap, bool ew)
{
	size_t len = 0, i;

	out[0] = '\0';
	if (a->nsec > 0) {
		char raw[PARAM_VAL_MAX];
		size_t rl = 0;
		bool any_ext = false;

		/* sections are concatenated first, then decoded as one value */
		qsort(a->sec, a->nsec, sizeof(a->sec[0]), sec_cmp);
		raw[0] = '\0';
		for (i = 0; i < a->nsec; i++) {
			const char *s = a->secbuf + a->sec[i].off;

			if (a->sec[i].ext) {
				any_ext = true;
				app(raw, sizeof(raw), &rl, s, a->sec[i].len);
			} else {
				/* a plain section among extended ones: protect its '%' */
				size_t k;

				for (k = 0; k < a->sec[i].len; k++) {
					if (any_ext && s[k] == '%')
						app(raw, sizeof(raw), &rl, "%25", 3);
					else
						app(raw, sizeof(raw), &rl, s + k, 1);
				}
			}
		}
		if (any_ext && a->sec[0].ext)
			ext_value(raw, rl, out, cap, &len);
		else if (any_ext) {
			uint8_t tmp[PARAM_VAL_MAX];
			size_t dn = pct_decode(raw, rl, tmp, sizeof(tmp));

			app(out, cap, &len, (const char *)tmp, dn);
		} else if (ew) {
			mry_mime_decode_2047(raw, out, cap);
		} else {
			app(out, cap, &len, raw, rl);
		}
		return;
	}
	if (a->have_ext) {
		ext_value(a->ext, strlen(a->ext), out, cap, &len);
		return;
	}
	if (a->have_plain && ew)
		mry_mime_decode_2047(a->plain, out, cap);
	else if (a->have_plain)
		app(out, cap, &len, a->plain, strlen(a->plain));
}

static void param_add(struct param_acc *a, const char *suffix, size_t slen,
		      const char *v, size_t vlen)
{
	size_t l;

	if (slen == 0) {
		if (!a->have_plain) {
			l = MRY_MIN(vlen, sizeof(a->plain) - 1);
			memcpy(a->plain, v, l);
			a->plain[l] = '\0';
			a->have_plain = true;
		}
		return;
	}
	/* suffix starts with '*' */
	if (slen == 1) {
		l = MRY_MIN(vlen, sizeof(a->ext) - 1);
		memcpy(a->ext, v, l);
		a->ext[l] = '\0';
		a->have_ext = true;
		return;
	}
	{
		unsigned idx = 0;
		size_t i = 1;
		bool ext = false;

		while (i < slen && suffix[i] >= '0' && suffix[i] <= '9') {
			idx = idx * 10 + (unsigned)(suffix[i] - '0');
			if (idx > 9999)
				return;
			i++;
		}
		if (i == 1)
			return;
		if (i < slen && suffix[i] == '*') {
			ext = true;
			i++;
		}
		if (i != slen || a->nsec >= PARAM_SECTIONS)
			return;
		l = MRY_MIN(vlen, sizeof(a->secbuf) - a->secbuf_len);
		a->sec[a->nsec].idx = (uint16_t)idx;
		a->sec[a->nsec].ext = ext;
		a->sec[a->nsec].off = (uint16_t)a->secbuf_len;
		a->sec[a->nsec].len = (uint16_t)l;
		memcpy(a->secbuf + a->secbuf_len, v, l);
		a->secbuf_len += l;
		a->nsec++;
	}
}

enum param_want {
	WANT_CT,
	WANT_CD,
};

static bool bchar_ok(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') || strchr("'()+_,-./:=? ", c) != NULL;
}

static void set_boundary(struct mry_mime_hdr *h, const char *v, size_t n)
{
	size_t i;

	if (h->have_boundary)
		return;
	h->have_boundary = true;
	if (n == 0) {
		h->have_boundary = false;
		return;
	}
	if (n > MRY_MIME_BOUNDARY_MAX) {
		h->boundary_too_long = true;
		h->anomalies |= 1u << MRY_MIME_AN_BOUNDARY_INVALID;
		return;
	}
	for (i = 0; i < n; i++)
		if (!bchar_ok(v[i]))
			break;
	if (n > 70 || i < n || v[n - 1] == ' ')
		h->anomalies |= 1u << MRY_MIME_AN_BOUNDARY_INVALID;
	memcpy(h->boundary, v, n);
	h->boundary[n] = '\0';
	h->boundary_len = (uint16_t)n;
}

static void parse_params(struct mry_mime_hdr *h, struct cur *c, enum param_want want)
{
	/* name/filename, boundary, charset; on the stack of this cold path */
	struct param_acc acc[3];
	char val[PARAM_VAL_MAX];

	/* the buffers are written before read: reset the counts, not 10 KB */
	for (size_t k = 0; k < MRY_ARRAY_SIZE(acc); k++) {
		acc[k].have_plain = acc[k].have_ext = false;
		acc[k].nsec = 0;
		acc[k].secbuf_len = 0;
	}
	while (c->p < c->end) {
		const char *ns, *ne;
		size_t vl = 0;

		skip_cfws(c);
		if (c->p >= c->end)
			break;
		if (*c->p == ';') {
			c->p++;
			continue;
		}
		ns = c->p;
		while (c->p < c->end && *c->p != '=' && *c->p != ';')
			c->p++;
		ne = c->p;
		while (ne > ns && is_lws(ne[-1]))
			ne--;
		if (c->p >= c->end || *c->p == ';')
			continue;          /* attribute without value */
		c->p++;                    /* '=' */
		while (c->p < c->end && is_lws(*c->p))
			c->p++;
		if (c->p < c->end && *c->p == '"') {
			c->p++;
			while (c->p < c->end && *c->p != '"') {
				if (*c->p == '\\' && c->p + 1 < c->end)
					c->p++;
				if (vl < sizeof(val) - 1)
					val[vl++] = *c->p;
				c->p++;
			}
			if (c->p < c->end)
				c->p++;
			/* junk after the closing quote up to ';' is ignored */
			while (c->p < c->end && *c->p != ';')
				c->p++;
		} else {
			const char *vs = c->p;

			while (c->p < c->end && *c->p != ';')
				c->p++;
			vl = (size_t)(c->p - vs);
			while (vl > 0 && is_lws(vs[vl - 1]))
				vl--;
			vl = MRY_MIN(vl, sizeof(val) - 1);
			memcpy(val, vs, vl);
		}
		val[vl] = '\0';

		/* name, possibly with an RFC 2231 suffix */
		{
			const char *star = memchr(ns, '*', (size_t)(ne - ns));
			size_t base = (size_t)((star != NULL ? star : ne) - ns);
			const char *suffix = ns + base;
			size_t slen = (size_t)(ne - suffix);

#define NAME_IS(s) (base == sizeof(s) - 1 && strncasecmp(ns, s, base) == 0)
			if (want == WANT_CT && NAME_IS("boundary"))
				param_add(&acc[1], suffix, slen, val, vl);
			else if (want == WANT_CT && NAME_IS("charset"))
				param_add(&acc[2], suffix, slen, val, vl);
			else if ((want == WANT_CT && NAME_IS("name")) ||
				 (want == WANT_CD && NAME_IS("filename")))
				param_add(&acc[0], suffix, slen, val, vl);
#undef NAME_IS
		}
	}
	if (acc[0].have_plain || acc[0].have_ext || acc[0].nsec > 0) {
		if (want == WANT_CT)
			param_finish(&acc[0], h->name, sizeof(h->name), true);
		else
			param_finish(&acc[0], h->filename, sizeof(h->filename), true);
	}
	if (acc[1].have_plain || acc[1].have_ext || acc[1].nsec > 0) {
		param_finish(&acc[1], val, sizeof(val), false);
		set_boundary(h, val, strlen(val));
	}
	if (acc[2].have_plain || acc[2].have_ext || acc[2].nsec > 0) {
		size_t i;

		param_finish(&acc[2], h->charset, sizeof(h->charset), false);
		for (i = 0; h->charset[i] != '\0'; i++)
			h->charset[i] = lower(h->charset[i]);
	}
}

static void parse_ct(struct mry_mime_hdr *h, struct cur *c)
{
	char type[MRY_MIME_CT_MAX], sub[MRY_MIME_CT_MAX];
	size_t tl = 0, sl = 0;
	const char *def = NULL;

	skip_cfws(c);
	while (c->p < c->end && !is_lws(*c->p) && *c->p != '/' && *c->p != ';' &&
	       *c->p != '(') {
		if (tl < sizeof(type) - 1)
			type[tl++] = lower(*c->p);
		c->p++;
	}
	type[tl] = '\0';
	skip_cfws(c);
	if (c->p < c->end && *c->p == '/') {
		c->p++;
		skip_cfws(c);
		while (c->p < c->end && !is_lws(*c->p) && *c->p != ';' && *c->p != '(') {
			if (sl < sizeof(sub) - 1)
				sub[sl++] = lower(*c->p);
			c->p++;
		}
	}
	sub[sl] = '\0';
	if (tl == 0) {
		/* unparsable: clients fall back to text/plain */
		snprintf(h->ct, sizeof(h->ct), "text/plain");
		h->anomalies |= 1u << MRY_MIME_AN_HEADER_MALFORMED;
	} else {
		if (sl == 0) {
			if (strcmp(type, "text") == 0)
				def = "plain";
			else if (strcmp(type, "multipart") == 0)
				def = "mixed";
			else if (strcmp(type, "message") == 0)
				def = "rfc822";
			else
				def = "octet-stream";
			sl = strlen(def);
			memcpy(sub, def, sl + 1);
		}
		/* "%.47s/%.47s", without printf on every part's header */
		tl = MRY_MIN(tl, (size_t)47);
		sl = MRY_MIN(sl, (size_t)47);
		memcpy(h->ct, type, tl);
		h->ct[tl] = '/';
		memcpy(h->ct + tl + 1, sub, sl);
		h->ct[tl + 1 + sl] = '\0';
	}
	parse_params(h, c, WANT_CT);
}

static enum mry_mime_encoding cte_of(const char *v, size_t n)
{
	static const struct {
		const char *name;
		enum mry_mime_encoding enc;
	} tab[] = {
		{ "7bit", MRY_MIME_ENC_7BIT },
		{ "8bit", MRY_MIME_ENC_8BIT },
		{ "binary", MRY_MIME_ENC_BINARY },
		{ "base64", MRY_MIME_ENC_BASE64 },
		{ "quoted-printable", MRY_MIME_ENC_QP },
		{ "x-uuencode", MRY_MIME_ENC_UUENCODE },
		{ "uuencode", MRY_MIME_ENC_UUENCODE },
		{ "x-uue", MRY_MIME_ENC_UUENCODE },
		{ "uue", MRY_MIME_ENC_UUENCODE },
	};
	size_t i;

	for (i = 0; i < MRY_ARRAY_SIZE(tab); i++)
		if (strlen(tab[i].name) == n && strncasecmp(v, tab[i].name, n) == 0)
			return tab[i].enc;
	return MRY_MIME_ENC_UNKNOWN;
}

void mry_mime_hdr_field(struct mry_mime_hdr *h, const char *name, size_t name_len,
			const char *value, size_t value_len)
{
	struct cur c = { value, value + value_len };

#define FIELD_IS(s) (name_len == sizeof(s) - 1 && strncasecmp(name, s, name_len) == 0)
	if (FIELD_IS("content-type")) {
		if (h->have_ct) {
			/* the last one wins, as in GMime (each header updates
			 * the part in turn); clients disagree: an evasion */
			h->anomalies |= 1u << MRY_MIME_AN_CT_DUPLICATE;
			h->charset[0] = '\0';
			h->name[0] = '\0';
			h->boundary[0] = '\0';
			h->boundary_len = 0;
			h->have_boundary = false;
			h->boundary_too_long = false;
		}
		h->have_ct = true;
		parse_ct(h, &c);
	} else if (FIELD_IS("content-transfer-encoding")) {
		const char *s;
		enum mry_mime_encoding e;

		skip_cfws(&c);
		s = c.p;
		while (c.p < c.end && !is_lws(*c.p) && *c.p != '(' && *c.p != ';')
			c.p++;
		if (c.p == s)
			return;           /* empty: keep the default */
		e = cte_of(s, (size_t)(c.p - s));
		if (e == MRY_MIME_ENC_UNKNOWN)
			h->anomalies |= 1u << MRY_MIME_AN_CTE_UNKNOWN;
		if (h->have_cte && e != h->enc)
			h->anomalies |= 1u << MRY_MIME_AN_CTE_CONFLICT;
		/* the last one wins, as GMime applies each header in turn */
		h->enc = e;
		h->have_cte = true;
	} else if (FIELD_IS("content-disposition")) {
		const char *s;

		skip_cfws(&c);
		s = c.p;
		while (c.p < c.end && !is_lws(*c.p) && *c.p != ';' && *c.p != '(')
			c.p++;
		if (c.p - s == 10 && strncasecmp(s, "attachment", 10) == 0)
			h->attachment = true;
		parse_params(h, &c, WANT_CD);
	}
#undef FIELD_IS
}

/* ---- header block, line by line --------------------------------------- */

void mry_mime_hdr_block_init(struct mry_mime_hdr_block *b, char *field, uint32_t max_bytes)
{
	memset(&b->hdr, 0, sizeof(b->hdr));
	b->field = field;
	b->field_len = 0;
	b->bytes = 0;
	b->max_bytes = max_bytes;
	b->lines = 0;
	b->capped = false;
	b->skip = false;
}

void mry_mime_hdr_block_finish(struct mry_mime_hdr_block *b)
{
	const char *f = b->field, *colon;
	size_t nl;

	if (b->field_len == 0)
		return;
	if (b->skip) {
		b->field_len = 0;
		return;
	}
	colon = memchr(f, ':', b->field_len);
	if (colon != NULL) {
		nl = (size_t)(colon - f);
		while (nl > 0 && (f[nl - 1] == ' ' || f[nl - 1] == '\t'))
			nl--;
		mry_mime_hdr_field(&b->hdr, f, nl, colon + 1,
				   b->field_len - (size_t)(colon + 1 - f));
	}
	b->field_len = 0;
}

static void field_append(struct mry_mime_hdr_block *b, const uint8_t *p, size_t n)
{
	size_t room = MRY_MIME_FIELD_MAX - b->field_len;

	if (n > room) {
		n = room;
		b->hdr.anomalies |= 1u << MRY_MIME_AN_HEADER_TOO_LONG;
	}
	if (!b->skip)
		memcpy(b->field + b->field_len, p, n);
	b->field_len += (uint32_t)n;
}

/*
 * RFC 5322 §2.2: a field name is printable US-ASCII but ':', then ':';
 * §4.5.3 (obsolete syntax) allows blanks before the colon. Bytes over
 * 0x7f are taken as name characters, as GMime does, so 8-bit garbage in
 * a name does not end the header.
 */
static size_t header_name_len(const uint8_t *p, size_t n)
{
	size_t i = 0, nl;

	while (i < n && p[i] > ' ' && p[i] != ':' && p[i] != 0x7f)
		i++;
	if (i == 0)
		return 0;
	nl = i;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i < n && p[i] == ':' ? nl : 0;
}

/*
 * The fields mry_mime_hdr_field() reads; the others (Received, Subject,
 * DKIM-Signature ...) are counted but neither copied nor parsed.
 */
static bool field_wanted(const uint8_t *name, size_t nl)
{
	const char *s = (const char *)name;

	return nl >= 12 && (s[0] | 0x20) == 'c' && strncasecmp(s, "content-", 8) == 0 &&
	       ((nl == 12 && strncasecmp(s + 8, "type", 4) == 0) ||
		(nl == 25 && strncasecmp(s + 8, "transfer-encoding", 17) == 0) ||
		(nl == 19 && strncasecmp(s + 8, "disposition", 11) == 0));
}

enum mry_mime_hdr_line mry_mime_hdr_block_line(struct mry_mime_hdr_block *b,
					       const uint8_t *p, size_t n,
					       size_t clen, bool line_start)
{
	size_t nl = 0;

	if (memchr(p, '\0', n) != NULL)
		b->hdr.anomalies |= 1u << MRY_MIME_AN_NUL_IN_HEADER;
	b->bytes += (uint32_t)n;
	if (b->bytes > b->max_bytes && !b->capped) {
		b->capped = true;
		b->hdr.anomalies |= 1u << MRY_MIME_AN_HEADER_TOO_LONG;
		mry_mime_hdr_block_finish(b);
	}
	if (line_start && clen > 0 && p[0] != ' ' && p[0] != '\t' &&
	    (nl = header_name_len(p, clen)) == 0) {
		mry_mime_hdr_block_finish(b);
		return MRY_MIME_HL_NOT_FIELD;
	}
	b->lines++;
	if (line_start && clen == 0 && n > 0)
		return MRY_MIME_HL_END;
	if (b->capped)
		return MRY_MIME_HL_FIELD;
	if (line_start && (p[0] == ' ' || p[0] == '\t')) {
		if (b->field_len > 0)
			field_append(b, p, clen);
		return MRY_MIME_HL_FIELD;
	}
	if (line_start) {
		mry_mime_hdr_block_finish(b);
		b->skip = !field_wanted(p, nl);
	}
	field_append(b, p, clen);
	return MRY_MIME_HL_FIELD;
}
