/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Frames moray puts on the wire: the reply to the client (554/451 and FIN)
 * and resets, built from the last client frame's headers. Sequence numbers
 * follow RFC 5961: an RST is only accepted at the receiver's exact
 * RCV.NXT, so the server's reset carries the end of the forwarded bytes.
 */
#include <arpa/inet.h>
#include <string.h>

#include "engine_priv.h"

/* ---- injected frames --------------------------------------------------- */

void mry_inject_save_template(struct session *s, const struct mry_pkt *p)
{
	uint32_t n = p->l4_off + 20u;

	if (n > HDR_TMPL_MAX || n > p->frame_len)
		return;
	memcpy(s->hdr_tmpl, p->frame, n);
	s->hdr_len = (uint8_t)n;
	s->l3_off = (uint8_t)p->l3_off;
	s->ip_version = p->ip_version;
	s->tmpl_ack = p->ack;
	s->tmpl_win = p->win;
}

/*
 * Build a TCP segment from the last client frame's headers: toward the
 * client (addresses, ports and MACs swapped: it looks like the server's) or
 * toward the server (as the client's). Returns the frame length or 0.
 */
uint32_t mry_inject_segment(struct mry_engine *e, const struct session *s,
			    bool to_client, uint32_t seq, uint32_t ack,
			    uint8_t flags, const char *payload, uint32_t plen)
{
	uint8_t *b = e->txbuf;
	uint32_t l3 = s->l3_off, l4, len;
	uint8_t *ip, *tcp;
	uint16_t csum;

	if (s->hdr_len == 0)
		return 0;
	l4 = l3 + (s->ip_version == 6 ? 40u : 20u);
	len = l4 + 20u + plen;
	if (len > TX_BUF)
		return 0;
	memset(b, 0, len);
	memcpy(b, s->hdr_tmpl, l3);                 /* Ethernet + VLAN tags */
	if (to_client) {
		memcpy(b, s->hdr_tmpl + 6, 6);
		memcpy(b + 6, s->hdr_tmpl, 6);
	}
	ip = b + l3;
	tcp = b + l4;
	if (s->ip_version == 6) {
		const uint8_t *oip = s->hdr_tmpl + l3;
		uint16_t pl = htons((uint16_t)(20u + plen));

		ip[0] = 0x60;
		memcpy(ip + 4, &pl, 2);
		ip[6] = 6;
		ip[7] = 64;
		memcpy(ip + 8, oip + (to_client ? 24 : 8), 16);
		memcpy(ip + 24, oip + (to_client ? 8 : 24), 16);
	} else {
		const uint8_t *oip = s->hdr_tmpl + l3;
		uint16_t tl = htons((uint16_t)(40u + plen));

		ip[0] = 0x45;
		memcpy(ip + 2, &tl, 2);
		ip[6] = 0x40;                       /* DF */
		ip[8] = 64;
		ip[9] = 6;
		memcpy(ip + 12, oip + (to_client ? 16 : 12), 4);
		memcpy(ip + 16, oip + (to_client ? 12 : 16), 4);
		csum = htons(mry_csum_fold(mry_csum_partial(ip, 20, 0)));
		memcpy(ip + 10, &csum, 2);
	}
	{
		const uint8_t *otcp = s->hdr_tmpl + (s->hdr_len - 20u);
		uint32_t nseq = htonl(seq), nack = htonl(ack);
		uint16_t win = htons(s->tmpl_win != 0 ? s->tmpl_win : 8192);

		memcpy(tcp, otcp + (to_client ? 2 : 0), 2);
		memcpy(tcp + 2, otcp + (to_client ? 0 : 2), 2);
		memcpy(tcp + 4, &nseq, 4);
		memcpy(tcp + 8, &nack, 4);
		tcp[12] = 5u << 4;
		tcp[13] = flags;
		memcpy(tcp + 14, &win, 2);
		if (plen > 0)
			memcpy(tcp + 20, payload, plen);
		csum = htons(mry_tcp_csum(s->ip_version, ip + (s->ip_version == 6 ? 8 : 12),
					  ip + (s->ip_version == 6 ? 24 : 16), tcp, 20u + plen));
		memcpy(tcp + 16, &csum, 2);
	}
	return len;
}

void mry_inject_emit(struct mry_engine *e, const struct session *s, enum mry_emit_dir dir,
		     const uint8_t *frame, uint32_t len)
{
	uint16_t port = s->flow->in_port[s->flow->client_side & 1u];

	if (len > 0 && e->io.emit != NULL)
		e->io.emit(e->io_ctx, dir, port, frame, len);
}

/*
 * Client stream offset just past the end-of-message: what the reply to it
 * acknowledges. DATA: after the LF that ends the "." line (CRLF or bare LF);
 * BDAT: the withholding octet is the last one.
 */
uint64_t mry_inject_eom_end(const struct session *s, const struct msg *m)
{
	uint64_t i;

	if (m == NULL || m->kind != MRY_SMTP_MSG_DATA)
		return m != NULL ? m->eom_off + 1 : NO_OFF;
	if (s->chunk != NULL) {
		for (i = MRY_MAX(m->eom_off, s->chunk_off); i < s->chunk_off + s->chunk_len; i++)
			if (s->chunk[i - s->chunk_off] == '\n')
				return i + 1;
	}
	return m->eom_off + 3;
}

/*
 * Answer the client with @reply (then FIN) and reset the server at the
 * withholding point: the server never completes the message. @ack_off is
 * the client offset the reply acknowledges (the end of the message).
 */
void mry_inject_answer_and_reset(struct mry_engine *e, struct session *s, const char *reply,
				 uint64_t server_off, uint64_t ack_off)
{
	struct mry_flow *f = s->flow;
	unsigned cs = f->client_side & 1u;
	const struct mry_tcp_stream *cst = &f->stream[cs];
	const struct mry_tcp_stream *sst = &f->stream[cs ^ 1u];
	uint32_t srv_seq = (sst->flags & MRY_STREAM_STARTED) ? sst->next_seq : s->tmpl_ack;
	/* delivered bytes only: never acknowledge what was not received */
	uint64_t delivered = mry_tcp_stream_delivered(cst);
	uint32_t cli_ack;
	/*
	 * The server's rcv_nxt is where the forwarded bytes end: an RST at any
	 * other in-window sequence only earns a challenge ACK (RFC 5961 §3.2).
	 */
	uint32_t rst_seq = cst->base_seq + (uint32_t)s->fwd_end;
	uint32_t plen = (uint32_t)strlen(reply), n;

	if (s->flags & SESS_CLOSED_BY_US)
		return;
	if (ack_off == NO_OFF || (ack_off > delivered && s->chunk == NULL))
		ack_off = delivered;
	cli_ack = cst->base_seq + (uint32_t)ack_off;
	s->flags |= SESS_CLOSED_BY_US;
	n = mry_inject_segment(e, s, true, srv_seq, cli_ack, MRY_TCP_ACK | MRY_TCP_PSH,
			  reply, plen);
	mry_inject_emit(e, s, MRY_EMIT_TO_CLIENT, e->txbuf, n);
	n = mry_inject_segment(e, s, true, srv_seq + plen, cli_ack, MRY_TCP_ACK | MRY_TCP_FIN,
			  NULL, 0);
	mry_inject_emit(e, s, MRY_EMIT_TO_CLIENT, e->txbuf, n);
	e->st.replies_injected++;
	n = mry_inject_segment(e, s, false, rst_seq, s->tmpl_ack, MRY_TCP_RST | MRY_TCP_ACK,
			  NULL, 0);
	mry_inject_emit(e, s, MRY_EMIT_TO_SERVER, e->txbuf, n);
	e->st.resets_injected++;
	s->withhold_off = server_off;
}

/* RST to both sides: toward the client at @cli_seq/@cli_ack, the server at @srv_seq/@srv_ack. */
void mry_inject_reset_both(struct mry_engine *e, const struct session *s, uint32_t cli_seq,
			   uint32_t cli_ack, uint32_t srv_seq, uint32_t srv_ack)
{
	uint32_t n;

	n = mry_inject_segment(e, s, true, cli_seq, cli_ack, MRY_TCP_RST | MRY_TCP_ACK, NULL, 0);
	mry_inject_emit(e, s, MRY_EMIT_TO_CLIENT, e->txbuf, n);
	n = mry_inject_segment(e, s, false, srv_seq, srv_ack, MRY_TCP_RST | MRY_TCP_ACK, NULL, 0);
	mry_inject_emit(e, s, MRY_EMIT_TO_SERVER, e->txbuf, n);
	e->st.resets_injected += 2;
}
