/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The engine's fastest path: a frame that is surely not SMTP is forwarded
 * untouched without a full decode (DESIGN.md, "Non-SMTP traffic").
 */
#include <stdbool.h>
#include <stdint.h>

#include "moray/engine.h"

#include "engine_priv.h"

/*
 * The shortest path (DESIGN.md: non-SMTP traffic forwarded untouched):
 * read just enough of the headers to see that a frame is an unfragmented
 * IPv4/IPv6 packet that is not TCP to or from an SMTP port. Anything it is
 * not sure about (fragments, extension headers, short frames, more VLAN tags
 * than the decoder takes, SMTP ports) goes to the full decoder. Returns
 * true when the frame can be forwarded.
 */
bool mry_engine_fast_non_smtp(const struct mry_engine *e, const uint8_t *f, uint32_t len)
{
	uint32_t off = 12;
	uint16_t et;
	uint8_t proto;

	if (len < 14)
		return false;
	et = (uint16_t)(f[off] << 8 | f[off + 1]);
	while ((et == 0x8100 || et == 0x88a8 || et == 0x9100) && off < 20) {
		off += 4;
		if (len < off + 2)
			return false;
		et = (uint16_t)(f[off] << 8 | f[off + 1]);
	}
	off += 2;
	if (et == 0x0800) {
		uint32_t ihl;

		if (len < off + 20 || (f[off] >> 4) != 4)
			return false;
		ihl = (uint32_t)(f[off] & 0xfu) * 4u;
		/* MF or a fragment offset: reassembly decides */
		if ((f[off + 6] & 0x3fu) != 0 || f[off + 7] != 0)
			return false;
		proto = f[off + 9];
		off += ihl;
	} else if (et == 0x86dd) {
		if (len < off + 40)
			return false;
		proto = f[off + 6];
		off += 40;
		if (proto != 6 && proto != 17 && proto != 1 && proto != 58)
			return false;   /* extension headers: full decode */
	} else if (et == 0x8100 || et == 0x88a8 || et == 0x9100) {
		/*
		 * A third tag: what follows is unknown here (it may be TCP to
		 * port 25). The decoder counts vlan_too_deep and the invalid
		 * policy applies; forwarding it would let SMTP skip scanning.
		 */
		return false;
	} else {
		return true;   /* ARP and other non-IP traffic */
	}
	if (proto != 6)
		return true;
	if (e->cfg.track_all_tcp || len < off + 4)
		return false;
	return !is_smtp_port(e, (uint16_t)(f[off] << 8 | f[off + 1])) &&
	       !is_smtp_port(e, (uint16_t)(f[off + 2] << 8 | f[off + 3]));
}
