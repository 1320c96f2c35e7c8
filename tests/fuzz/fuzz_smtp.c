/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_smtp: the input is a sequence of chunks separated by the control
 * byte 0xff; the byte after each separator says where the chunk goes
 * (even: client, odd: server; bit 1 also calls mry_smtp_close at the end
 * of the input). Both streams keep their own offsets. Small caps make the
 * pool-empty, buffer-full and envelope-cap paths reachable.
 *
 * The input runs twice: chunks as given, then every chunk fed one byte
 * at a time. Segmentation must not change anything the callbacks report
 * (message bytes, envelopes, end offsets, replies, anomalies): a digest of
 * both runs is compared and a difference aborts.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "moray/common.h"
#include "moray/smtp.h"

/*
 * The engine library is not built with coverage instrumentation, so the
 * module under test is compiled into this target itself; the linker then
 * takes no smtp object from the archive (every symbol is defined here).
 */
#include "smtp.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t sink;
static uint64_t data_sink;
static uint64_t an_count[MRY_SMTP_AN_MAX];

static void mix(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		sink = (sink ^ b[i]) * 0x100000001b3ULL;
}

static void mix64(uint64_t v)
{
	mix(&v, sizeof(v));
}

static void mix_mi(const struct mry_smtp_msg_info *mi)
{
	mix64(data_sink);
	mix64(mi->kind);
	mix64(mi->msg_index);
	mix(mi->mail_from, strlen(mi->mail_from) + 1);
	mix64(mi->nb_rcpt);
	for (uint32_t i = 0; i < mi->nb_rcpt; i++)
		mix(mi->rcpt[i], strlen(mi->rcpt[i]) + 1);
	mix64(mi->size);
	mix64(mi->declared_size);
	mix64((uint64_t)mi->body_8bit << 2 | (uint64_t)mi->body_binary << 1 | mi->smtputf8);
}

static void f_begin(void *u, const struct mry_smtp_msg_info *mi)
{
	(void)u;
	mix64(1);
	mix_mi(mi);
}

static void f_data(void *u, const uint8_t *d, size_t n)
{
	(void)u;
	/* byte stream only: call boundaries depend on segmentation */
	for (size_t i = 0; i < n; i++)
		data_sink = (data_sink ^ d[i]) * 0x100000001b3ULL;
}

static void f_end(void *u, const struct mry_smtp_msg_info *mi, uint64_t eom)
{
	(void)u;
	mix64(3);
	mix_mi(mi);
	mix64(eom);
}

static void f_reply(void *u, const struct mry_smtp_msg_info *mi, unsigned code,
		    const char *t, size_t n)
{
	uint32_t idx = mi->msg_index;

	(void)u;
	mix64(4);
	mix64(idx);
	mix64(code);
	(void)t;
	(void)n;
}

static void f_abort(void *u, const struct mry_smtp_msg_info *mi, enum mry_smtp_abort_reason w)
{
	(void)u;
	mix64(5);
	mix_mi(mi);
	mix64(w);
}

static void f_an(void *u, enum mry_smtp_anomaly an)
{
	(void)u;
	/* when an anomaly is noticed depends on segmentation, how many not */
	an_count[an]++;
}

static void f_tls(void *u)
{
	(void)u;
	mix64(7);
}

static void feed(struct mry_smtp_ctx *c, struct mry_smtp_session *s, bool server,
		 const uint8_t *p, size_t n, uint64_t off, bool bytewise)
{
	size_t step = bytewise ? 1 : n;

	for (size_t i = 0; i < n; i += step) {
		if (server)
			mry_smtp_server_data(c, s, p + i, step, off + i);
		else
			mry_smtp_client_data(c, s, p + i, step, off + i);
	}
}

static uint64_t run(const uint8_t *data, size_t size, bool bytewise)
{
	static const struct mry_smtp_callbacks cb = {
		.msg_begin = f_begin, .msg_data = f_data, .msg_end = f_end,
		.msg_reply = f_reply, .msg_abort = f_abort, .anomaly = f_an, .starttls = f_tls,
	};
	struct mry_smtp_config cfg = {
		.max_sessions = 2, .max_pending_data = 64, .pending_pool_count = 1,
		.max_rcpt = 3, .max_addr_len = 16, .envelope_pool_count = 1,
		.line_pool_count = 1,
	};
	struct mry_smtp_ctx *c = mry_smtp_ctx_create(mry_alloc_default(), &cfg, &cb);
	struct mry_smtp_session *s;
	uint64_t coff = 0, soff = 0;
	size_t i = 0;
	uint8_t ctl = 0;
	bool do_close = false;

	sink = 0xcbf29ce484222325ULL;
	data_sink = 0;
	memset(an_count, 0, sizeof(an_count));
	if (c == NULL)
		return 0;
	s = mry_smtp_session_new(c, NULL);
	while (s != NULL && i < size) {
		const uint8_t *sep = memchr(data + i, 0xff, size - i);
		size_t n = sep == NULL ? size - i : (size_t)(sep - (data + i));

		if (n > 0) {
			if (ctl & 1) {
				feed(c, s, true, data + i, n, soff, bytewise);
				soff += n;
			} else {
				feed(c, s, false, data + i, n, coff, bytewise);
				coff += n;
			}
			(void)mry_smtp_withhold_from(s);
			(void)mry_smtp_in_message(s);
		}
		if (sep == NULL)
			break;
		i += n + 1;
		ctl = i < size ? data[i++] : 0;
		do_close |= (ctl & 2) != 0;
	}
	if (s != NULL) {
		if (do_close)
			mry_smtp_close(c, s);
		mry_smtp_session_free(c, s);
	}
	mry_smtp_ctx_destroy(c);
	mix(an_count, sizeof(an_count));
	mix64(data_sink);
	return sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t whole = run(data, size, false);
	uint64_t bytes = run(data, size, true);

	if (whole != bytes) {
		fprintf(stderr, "fuzz_smtp: segmentation changed the result\n");
		abort();
	}
	return 0;
}
