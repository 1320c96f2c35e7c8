#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""mkpcap: craft complete, valid TCP/SMTP sessions into pcap files.

Library and CLI. Each session is a real SMTP conversation (greeting, EHLO,
envelope, DATA or BDAT, QUIT) carried over a real TCP connection (3-way
handshake, correct seq/ack both ways, valid IP/TCP checksums, FIN close).
Knobs cover what the moray engine must survive: segmentation (MSS, explicit
cut points, 1-byte segments), reordering, duplication, overlapping
retransmissions with the same or conflicting bytes, VLAN/QinQ tags, IPv4 and
IPv6 fragmentation, PIPELINING, BDAT chunking, STARTTLS, server rejections,
several sessions interleaved, mid-stream capture (no handshake).

Next to the pcap it writes what a correct engine must report, named as
moray-scan names its dumps (DESIGN.md, "Interfaces"):
  streams/<src>.<sport>-<dst>.<dport>            one file per TCP direction
  messages/<client>.<cport>-<server>.<sport>.<i>.eml   each message as the
                                                 server stores it
  expected.json                                  the message events

Run it with /usr/bin/python3 (Debian's scapy). The EICAR test file is built
from hex at run time (never stored in plain text).

CLI:  mkpcap.py SPEC.json OUTDIR     (SPEC: {"sessions": [...], ...}, the
      keyword arguments of Session below; see tests/integration/*/test.json)
      mkpcap.py --demo OUTDIR
"""

import base64
import zlib
import ipaddress
import json
import os
import random
import sys

from scapy.all import (  # noqa: E402
    Ether, Dot1Q, IP, IPv6, TCP, Raw, PcapWriter, fragment,
    IPv6ExtHdrFragment, fragment6, conf)
from scapy.layers.inet6 import (  # noqa: E402
    IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, Pad1, PadN)

try:
    from scapy.layers.l2 import Dot1AD
except ImportError:  # pragma: no cover
    Dot1AD = None

conf.verb = 0


def _ext6(spec):
    """An IPv6 extension header from 'hbh', 'dst' or 'rt', optionally
    ':N' for its length in bytes (a multiple of 8, padded with PadN)."""
    name, _, n = spec.partition(":")
    n = int(n or 8)
    pad = n - 2
    opts = [] if pad == 0 else [PadN(optdata=b"\0" * (pad - 2))] if pad > 1 \
        else [Pad1()]
    if name == "hbh":
        return IPv6ExtHdrHopByHop(options=opts)
    if name == "dst":
        return IPv6ExtHdrDestOpt(options=opts)
    if name == "rt":
        return IPv6ExtHdrRouting(type=0, segleft=0,
                                 addresses=["::"] * ((n - 8) // 16))
    raise ValueError("unknown extension header %r" % spec)

EICAR_HEX = ("58354f2150254041505b345c505a58353428505e2937434329377d24"
             "45494341522d5354414e444152442d414e544956495255532d544553"
             "542d46494c452124482b482a")


def eicar():
    """The 68-byte EICAR antivirus test file, decoded from hex."""
    return bytes.fromhex(EICAR_HEX)


# --------------------------------------------------------------------------
# messages

def make_message(subject="test", body=b"Hello.\r\n", attachments=(),
                 mail_from="alice@client.example",
                 rcpt="bob@server.example", extra_headers=(),
                 boundary="=_moray_boundary_42", date=None):
    """Build an RFC 5322 message (bytes, CRLF lines). attachments is a list
    of (filename, bytes[, content_type]) sent base64-encoded in a
    multipart/mixed body. Deterministic (no random, fixed date)."""
    if isinstance(body, str):
        body = body.encode()
    date = date or "Mon, 23 Nov 2026 18:00:00 +0000"
    h = [b"Date: " + date.encode(),
         b"From: <" + mail_from.encode() + b">",
         b"To: <" + rcpt.encode() + b">",
         b"Subject: " + subject.encode(),
         b"Message-ID: <" + str(zlib.crc32(subject.encode() + body))
         .encode() + b"@client.example>",
         b"MIME-Version: 1.0"]
    h += [x.encode() if isinstance(x, str) else x for x in extra_headers]
    if not attachments:
        h.append(b"Content-Type: text/plain; charset=us-ascii")
        return b"\r\n".join(h) + b"\r\n\r\n" + body
    bnd = boundary.encode()
    h.append(b'Content-Type: multipart/mixed; boundary="' + bnd + b'"')
    out = b"\r\n".join(h) + b"\r\n\r\nThis is a multi-part message.\r\n"
    out += b"--" + bnd + b"\r\nContent-Type: text/plain; charset=us-ascii"
    out += b"\r\n\r\n" + body
    if not body.endswith(b"\r\n"):
        out += b"\r\n"
    for att in attachments:
        name, data = att[0], att[1]
        ctype = att[2] if len(att) > 2 else "application/octet-stream"
        b64 = base64.encodebytes(data).replace(b"\n", b"\r\n")
        out += (b"--" + bnd + b"\r\nContent-Type: " + ctype.encode() +
                b'; name="' + name.encode() + b'"\r\n'
                b"Content-Transfer-Encoding: base64\r\n"
                b'Content-Disposition: attachment; filename="' +
                name.encode() + b'"\r\n\r\n' + b64)
    out += b"--" + bnd + b"--\r\n"
    return out


def dot_stuff(data):
    """SMTP transparency (RFC 5321 4.5.2) plus the end-of-data marker.
    A message not ending in CRLF gets one added (as every real client does),
    so the server stores data + CRLF: returned as (wire, stored)."""
    stored = data if data.endswith(b"\r\n") or not data else data + b"\r\n"
    lines = stored.split(b"\r\n")
    wire = b"\r\n".join((b"." + ln) if ln.startswith(b".") else ln
                        for ln in lines)
    return wire + b".\r\n", stored


class Message:
    """One mail transaction. data: the message bytes as the server stores
    them (for DATA a CRLF is appended when missing). rcpt_to: recipients;
    reject_rcpt: indexes of recipients the server refuses (550);
    reject_data: the server answers DATA with 554 (no message);
    smuggle: with reject_data, the client sends the body anyway (each line
    answered 500 by the server: they are commands, not a message);
    method: 'DATA' or 'BDAT'; chunks: BDAT chunk sizes (the rest goes in the
    last chunk); bdat_zero_last: end with a separate 'BDAT 0 LAST';
    mail_params: text after MAIL FROM:<...> (e.g. ' SIZE=123');
    reject_end: the server answers the end of the message (DATA's
    CRLF.CRLF, BDAT LAST) with 554 instead of 250;
    unfinished: the capture ends inside this message's data (no end of
    message, no reply, nothing after it: the engine is stopped there);
    raw_wire: data goes on the wire as it is (no dot-stuffing; for crafted
    end-of-data lines), followed by CRLF.CRLF."""

    def __init__(self, data, mail_from="alice@client.example",
                 rcpt_to=("bob@server.example",), method="DATA",
                 chunks=None, bdat_zero_last=False, reject_rcpt=(),
                 reject_data=False, smuggle=False, mail_params="",
                 reject_end=False, unfinished=False, raw_wire=False):
        self.data = data if isinstance(data, bytes) else data.encode()
        self.mail_from = mail_from
        self.rcpt_to = list(rcpt_to)
        self.method = method.upper()
        self.chunks = list(chunks or [])
        self.bdat_zero_last = bdat_zero_last
        self.reject_rcpt = set(reject_rcpt)
        self.reject_data = reject_data
        self.smuggle = smuggle
        self.mail_params = mail_params
        self.reject_end = reject_end
        self.unfinished = unfinished
        self.raw_wire = raw_wire

    @classmethod
    def from_spec(cls, d):
        d = dict(d)
        if "data_file" in d:
            with open(d.pop("data_file"), "rb") as f:
                d["data"] = f.read()
        elif "mime" in d:
            m = dict(d.pop("mime"))
            atts = []
            for a in m.pop("attachments", []):
                if a.get("eicar"):
                    atts.append((a.get("name", "eicar.com"), eicar()))
                else:
                    atts.append((a["name"], a.get("text", "").encode() *
                                 a.get("repeat", 1)))
            body = m.pop("body", "Hello.\r\n")
            body = body.encode() * m.pop("body_repeat", 1)
            d["data"] = make_message(attachments=atts, body=body,
                                     mail_from=d.get("mail_from",
                                                     "alice@client.example"),
                                     **m)
        elif isinstance(d.get("data"), str):
            d["data"] = d["data"].encode("utf-8", "surrogateescape")
        return cls(**d)

    @property
    def accepted_rcpts(self):
        return [r for i, r in enumerate(self.rcpt_to)
                if i not in self.reject_rcpt]

    @property
    def server_reply(self):
        """The server's final reply to the end (None: none comes)."""
        if self.unfinished:
            return None
        return 554 if self.reject_end else 250

    def final_reply(self, ok):
        return (b"554 5.7.1 Message refused after end of data\r\n"
                if self.reject_end else ok)

    @property
    def delivered(self):
        """True when the server stores this message."""
        return not self.reject_data and bool(self.accepted_rcpts)

    def stored(self):
        if self.method == "DATA":
            return dot_stuff(self.data)[1]
        return self.data

    def bdat_chunks(self):
        """[(command, payload)] for BDAT."""
        data, out, off = self.data, [], 0
        sizes = [c for c in self.chunks if c > 0] or []
        for s in sizes:
            if off + s >= len(data):
                break
            out.append([data[off:off + s], False])
            off += s
        out.append([data[off:], not self.bdat_zero_last])
        if self.bdat_zero_last:
            out.append([b"", True])
        return [((b"BDAT %d LAST\r\n" if last else b"BDAT %d\r\n")
                 % len(p), p) for p, last in out]


# --------------------------------------------------------------------------
# SMTP conversation -> turns [(direction, bytes, tag)]
#   direction 'c' client->server, 's' server->client; tag 'data' marks a
#   client turn that carries message content.

def smtp_turns(messages, pipelining=False, starttls=False, helo="client.example",
               greeting=True, quit=True, rng=None, tls_bytes=600,
               ehlo_ext=("PIPELINING", "CHUNKING", "8BITMIME", "SIZE 10240000",
                         "STARTTLS")):
    rng = rng or random.Random(1)
    t = []
    if greeting:
        t.append(("s", b"220 server.example ESMTP moray-test\r\n", ""))
    t.append(("c", b"EHLO " + helo.encode() + b"\r\n", ""))
    ext = b"".join(b"250-" + e.encode() + b"\r\n" for e in ehlo_ext)
    t.append(("s", b"250-server.example\r\n" + ext + b"250 SMTPUTF8\r\n", ""))
    if starttls:
        t.append(("c", b"STARTTLS\r\n", ""))
        t.append(("s", b"220 2.0.0 Ready to start TLS\r\n", ""))
        # TLS-looking records: everything after this is opaque
        for d in ("c", "s", "c", "s", "c"):
            n = rng.randint(tls_bytes // 2, tls_bytes)
            t.append((d, b"\x16\x03\x01" + n.to_bytes(2, "big") +
                      bytes(rng.getrandbits(8) for _ in range(n)), "tls"))
        return t
    for m in messages:
        env = [b"MAIL FROM:<" + m.mail_from.encode() + b">" +
               m.mail_params.encode() + b"\r\n"]
        rep = [b"250 2.1.0 Ok\r\n"]
        for i, r in enumerate(m.rcpt_to):
            env.append(b"RCPT TO:<" + r.encode() + b">\r\n")
            rep.append(b"550 5.1.1 <" + r.encode() + b">: Recipient address "
                       b"rejected\r\n" if i in m.reject_rcpt else
                       b"250 2.1.5 Ok\r\n")
        if m.method == "BDAT":
            chunks = m.bdat_chunks()
            if not m.accepted_rcpts:
                # BDAT without valid recipients: server refuses, client sends
                # the command without its data? No: BDAT data always follows
                # the command. Keep it simple: do not send BDAT at all.
                t.append(("c", b"".join(env), ""))
                t.append(("s", b"".join(rep), ""))
                t.append(("c", b"RSET\r\n", ""))
                t.append(("s", b"250 2.0.0 Ok\r\n", ""))
                continue
            if pipelining:
                cmd0, p0 = chunks[0]
                t.append(("c", b"".join(env) + cmd0 + p0, "data"))
                final = (m.final_reply(b"250 2.0.0 Ok: %d bytes queued\r\n" %
                                       len(m.data))
                         if len(chunks) == 1 else
                         b"250 2.0.0 Ok: %d octets received\r\n" % len(p0))
                t.append(("s", b"".join(rep) + final, ""))
                rest = chunks[1:]
            else:
                for c, r in zip(env, rep):
                    t.append(("c", c, ""))
                    t.append(("s", r, ""))
                rest = chunks
            for i, (cmd, p) in enumerate(rest):
                t.append(("c", cmd + p, "data"))
                last = (i == len(rest) - 1)
                t.append(("s", m.final_reply(b"250 2.0.0 Ok: %d bytes queued\r\n" %
                                             len(m.data))
                          if last else
                          b"250 2.0.0 Ok: %d octets received\r\n" % len(p), ""))
            continue
        # DATA
        data_ok = m.delivered
        data_rep = (b"354 End data with <CR><LF>.<CR><LF>\r\n" if data_ok else
                    (b"554 5.5.1 Error: no valid recipients\r\n"
                     if not m.accepted_rcpts else
                     b"554 5.7.1 Transaction refused\r\n"))
        if pipelining:
            t.append(("c", b"".join(env) + b"DATA\r\n", ""))
            t.append(("s", b"".join(rep) + data_rep, ""))
        else:
            for c, r in zip(env, rep):
                t.append(("c", c, ""))
                t.append(("s", r, ""))
            t.append(("c", b"DATA\r\n", ""))
            t.append(("s", data_rep, ""))
        if data_ok and m.unfinished:
            # the capture stops inside the data
            t.append(("c", dot_stuff(m.data)[0][:-3], "data"))
            return t
        if data_ok:
            wire, _ = dot_stuff(m.data)
            if m.raw_wire:
                wire = m.stored() + b".\r\n"
            t.append(("c", wire, "data"))
            t.append(("s", m.final_reply(b"250 2.0.0 Ok: queued as 4Fake%04X\r\n" %
                                         (rng.getrandbits(16))), ""))
        elif m.smuggle:
            wire, _ = dot_stuff(m.data)
            t.append(("c", wire, "smuggle"))
            n = wire.count(b"\r\n")
            t.append(("s", b"500 5.5.2 Error: command not recognized\r\n" * n,
                      ""))
        else:
            t.append(("c", b"RSET\r\n", ""))
            t.append(("s", b"250 2.0.0 Ok\r\n", ""))
    if quit:
        t.append(("c", b"QUIT\r\n", ""))
        t.append(("s", b"221 2.0.0 Bye\r\n", ""))
    return t


# --------------------------------------------------------------------------
# TCP session -> packet groups

def _is6(addr):
    return ipaddress.ip_address(addr).version == 6


class Session:
    """One TCP connection carrying one SMTP conversation.

    client/server: IPv4 or IPv6 address strings (same family);
    cport/sport: ports; messages: [Message];
    pipelining, starttls: conversation shape;
    mss: max client/server segment payload (default 1460);
    server_mss: override for server segments;
    cuts: explicit cut points (absolute client-stream offsets, 0 = first
          client byte after the handshake);
    cut_at: strings; every byte of every occurrence in the client stream
          becomes its own segment (e.g. ["\\r\\n.\\r\\n"]);
    reorder: None | 'reverse' | 'swap' | 'random' (client segments within each
          turn, see only_data);
    dup: duplicate every n-th client segment (1 = every segment);
    overlap: None | 'same' | 'conflict' (an overlapping retransmission of part
          of a segment, sent while that segment is still out of order; with
          'conflict' its bytes differ and the first copy must win);
    only_data: apply reorder/dup/overlap to message-data turns only (default
          True) or to every client turn;
    vlan: [] | [vid] | [outer, inner] (QinQ, 802.1ad outer tag); more vids
        add 802.1Q tags inside (more than moray decodes);
    frag: IPv4/IPv6 fragment size for client packets carrying payload;
    frag_order: 'forward' | 'reverse';
    ext6: IPv6 extension headers of client fragments, in order: 'hbh'
          (Hop-by-Hop), 'dst' (Destination Options), 'rt' (Routing type 0,
          segments left 0), each optionally ':N' bytes long (PadN-padded);
          'frag' marks where the fragment header goes (default: last), so
          what follows it is in the fragmentable part (RFC 8200 §4.5);
    midstream: no handshake in the capture (and the greeting/EHLO turns are
          dropped from the capture when midstream == 'late');
    close: 'fin' | 'rst' | 'none'; isn: (client, server) initial sequence
          numbers (default random; wrap-around is tested with large ones)."""

    def __init__(self, client="192.0.2.1", server="198.51.100.25",
                 cport=40000, sport=25, messages=(), pipelining=False,
                 starttls=False, mss=1460, server_mss=None, cuts=None,
                 reorder=None, dup=0, overlap=None, only_data=True, vlan=(),
                 frag=0, frag_order="forward", ext6=(), midstream=False, close="fin",
                 isn=None, seed=None, helo="client.example", turns=None,
                 client_mac="02:00:00:00:00:01",
                 server_mac="02:00:00:00:00:02", start=None, step=None,
                 cut_at=()):
        self.client, self.server = client, server
        if _is6(client) != _is6(server):
            raise ValueError("client and server must be the same family")
        self.cport, self.sport = cport, sport
        self.messages = [m if isinstance(m, Message) else Message.from_spec(m)
                         for m in messages]
        self.pipelining, self.starttls = pipelining, starttls
        self.mss, self.server_mss = mss, server_mss or mss
        self.cuts = sorted(set(cuts or []))
        self.reorder, self.dup, self.overlap = reorder, dup, overlap
        self.only_data = only_data
        self.vlan = list(vlan)
        self.frag, self.frag_order = frag, frag_order
        self.ext6 = list(ext6)
        self.midstream, self.close = midstream, close
        self.rng = random.Random(seed if seed is not None else
                                 zlib.crc32(("%s/%d" % (client, cport)).encode()))
        self.isn = isn or (self.rng.getrandbits(32), self.rng.getrandbits(32))
        self.helo = helo
        self.turns = turns
        self.cut_at = [c.encode() if isinstance(c, str) else c
                       for c in cut_at]
        self.cmac, self.smac = client_mac, server_mac
        # a body smuggled after a refused DATA is a string of unknown
        # commands: an anomaly the next message on the connection carries
        self.evasion_expected = (overlap == "conflict" or
                                 any(m.smuggle for m in self.messages))
        # start: seconds after the capture's first packet (timelines);
        # step: seconds between this session's packet groups
        self.start, self.step = start, step

    # ---- wire
    def _l2l3(self, from_client):
        src, dst = ((self.client, self.server) if from_client
                    else (self.server, self.client))
        e = Ether(src=self.cmac if from_client else self.smac,
                  dst=self.smac if from_client else self.cmac)
        ip = IPv6(src=src, dst=dst) if _is6(src) else IP(src=src, dst=dst,
                                                          id=self.rng.getrandbits(16))
        if not self.vlan:
            return e, ip
        if len(self.vlan) == 1:
            return e / Dot1Q(vlan=self.vlan[0]), ip
        if Dot1AD is not None:
            e.type = 0x88a8
            l2 = e / Dot1AD(vlan=self.vlan[0])
        else:
            l2 = e / Dot1Q(vlan=self.vlan[0])
        for vid in self.vlan[1:]:
            l2 = l2 / Dot1Q(vlan=vid)
        return l2, ip

    def _pkt(self, from_client, flags, seq, ack, payload=b""):
        l2, ip = self._l2l3(from_client)
        sp, dp = ((self.cport, self.sport) if from_client
                  else (self.sport, self.cport))
        tcp = TCP(sport=sp, dport=dp, flags=flags, seq=seq & 0xffffffff,
                  ack=ack & 0xffffffff if "A" in flags else 0, window=65535)
        if "S" in flags:
            tcp.options = [("MSS", self.mss if self.mss > 1 else 1460)]
        l4 = ip / tcp
        if payload:
            l4 = l4 / Raw(payload)
        if from_client and self.frag and payload:
            l4 = l4.__class__(bytes(l4))  # compute checksums before cutting
            if isinstance(l4, IPv6):
                nh = l4.nh
                l4 = IPv6(bytes(l4))
                ext = self.ext6 if "frag" in self.ext6 else self.ext6 + ["frag"]
                cut = ext.index("frag")
                base = IPv6(src=l4.src, dst=l4.dst)
                for x in ext[:cut]:
                    base = base / _ext6(x)
                base = base / IPv6ExtHdrFragment(id=self.rng.getrandbits(32))
                for x in ext[cut + 1:]:
                    base = base / _ext6(x)
                base = base / l4.payload
                unfrag = sum(len(bytes(_ext6(x))) for x in ext[:cut])
                frags = fragment6(base, self.frag + 48 + 8 + unfrag)
            else:
                frags = fragment(l4, fragsize=max(8, self.frag // 8 * 8))
            if self.frag_order == "reverse":
                frags = list(reversed(frags))
            return [l2 / f for f in frags]
        return [l2 / l4]

    def _segments(self, start, data, mss, cuts):
        """Split data (stream offsets start..) at mss and cut points."""
        segs, off = [], 0
        inner = [c - start for c in cuts if start < c < start + len(data)]
        while off < len(data):
            end = min(off + mss, len(data))
            nxt = [c for c in inner if off < c < end]
            if nxt:
                end = nxt[0]
            segs.append((off, data[off:end]))
            off = end
        return segs

    def build(self):
        """Returns (groups, streams, messages) where groups is a list of
        packet lists (one per conversation step, for interleaving), streams
        maps (from_client) -> bytes as reassembled, messages is a list of
        expected message dicts."""
        rng = self.rng
        turns = self.turns or smtp_turns(self.messages, self.pipelining,
                                         self.starttls, self.helo, rng=rng)
        cisn, sisn = self.isn
        if self.cut_at:
            full = b"".join(d for d, _, _ in
                            ((x[1], 0, 0) for x in turns if x[0] == "c"))
            cuts = set(self.cuts)
            for pat in self.cut_at:
                i = full.find(pat)
                while i >= 0:
                    cuts.update(range(i, i + len(pat) + 1))
                    i = full.find(pat, i + 1)
            self.cuts = sorted(cuts)
        cseq, sseq = cisn + 1, sisn + 1   # next byte to send
        groups = []
        if not self.midstream:
            groups.append(self._pkt(True, "S", cisn, 0) +
                          self._pkt(False, "SA", sisn, cseq) +
                          self._pkt(True, "A", cseq, sseq))
        cstream, sstream = b"", b""
        capture_from = 0
        if self.midstream == "late":
            # the capture starts after EHLO's reply: skip greeting+EHLO turns
            capture_from = 3 if turns and turns[0][0] == "s" else 2
        coff = 0  # client stream offset (for cuts)
        for ti, (d, data, tag) in enumerate(turns):
            visible = ti >= capture_from
            if d == "s":
                pk = []
                for off, seg in self._segments(0, data, self.server_mss, []):
                    pk += self._pkt(False, "PA", sseq + off, cseq, seg)
                sseq += len(data)
                if visible:
                    sstream += data
                    pk += self._pkt(True, "A", cseq, sseq)
                    groups.append(pk)
                continue
            segs = self._segments(coff, data, self.mss, self.cuts)
            coff += len(data)
            order = list(range(len(segs)))
            extra = {}
            evade = (not self.only_data) or tag == "data"
            if evade and self.reorder and len(segs) > 1:
                if self.reorder == "reverse":
                    order.reverse()
                elif self.reorder == "swap":
                    order[0], order[1] = order[1], order[0]
                elif self.reorder == "random":
                    rng.shuffle(order)
            if evade and self.overlap and len(segs) > 1:
                # send seg 1 first (out of order), then an overlapping
                # retransmission of its second half plus some later bytes,
                # then the rest: the overlap is in the reassembly queue.
                order.remove(1)
                order.insert(0, 1)
                o1, s1 = segs[1]
                half = len(s1) // 2
                ov_start = o1 + half
                ov_end = min(len(data), o1 + len(s1) + max(1, len(s1) // 2))
                ov = bytearray(data[ov_start:ov_end])
                if self.overlap == "conflict":
                    for i in range(len(s1) - half):
                        ov[i] ^= 0x20 if 0x40 < ov[i] < 0x7b else 0x01
                extra[1] = (ov_start, bytes(ov))
            pk = []
            for n, i in enumerate(order):
                off, seg = segs[i]
                pk += self._pkt(True, "PA", cseq + off, sseq, seg)
                if i in extra:
                    eo, eb = extra[i]
                    pk += self._pkt(True, "PA", cseq + eo, sseq, eb)
                if evade and self.dup and n % self.dup == 0:
                    pk += self._pkt(True, "PA", cseq + off, sseq, seg)
            cseq += len(data)
            if visible:
                cstream += data
                pk += self._pkt(False, "A", sseq, cseq)
                groups.append(pk)
        if self.close == "fin":
            groups.append(self._pkt(True, "FA", cseq, sseq) +
                          self._pkt(False, "FA", sseq, cseq + 1) +
                          self._pkt(True, "A", cseq + 1, sseq + 1))
        elif self.close == "rst":
            groups.append(self._pkt(True, "RA", cseq, sseq))
        msgs = []
        if not self.starttls and not self.turns:
            idx = 0
            for m in self.messages:
                if not m.delivered:
                    continue
                data = m.stored()
                has_eicar = eicar() in _decoded_views(data)
                msgs.append({
                    "src": self.client, "sport": self.cport,
                    "dst": self.server, "dport": self.sport,
                    "msg_index": idx, "mail_from": m.mail_from,
                    "rcpt_to": m.accepted_rcpts, "size": len(data),
                    "verdict": "infected" if has_eicar else "clean",
                    # moray answers an infected message itself: no reply
                    "server_reply": None if has_eicar else m.server_reply,
                    "signatures": ["EICAR"] if has_eicar else [],
                    "evasions": "nonempty" if self.evasion_expected else [],
                    "data": data})
                idx += 1
        return groups, {True: cstream, False: sstream}, msgs

    def stream_names(self):
        c, s = _ntop(self.client), _ntop(self.server)
        return {True: "%s.%d-%s.%d" % (c, self.cport, s, self.sport),
                False: "%s.%d-%s.%d" % (s, self.sport, c, self.cport)}


def _ntop(a):
    """Address as inet_ntop prints it (compressed IPv6, lower case)."""
    return str(ipaddress.ip_address(a))


def _decoded_views(data):
    """Bytes in which to look for EICAR: raw plus every base64 body."""
    out = data
    for blk in data.split(b"\r\n\r\n")[1:]:
        try:
            out += base64.b64decode(blk.split(b"\r\n--")[0], validate=False)
        except Exception:
            pass
    return out


# --------------------------------------------------------------------------
# capture

def interleave(session_groups, mode="roundrobin", rng=None):
    """Merge packet groups of several sessions keeping each session's
    order. mode: 'sequential' or 'roundrobin' or 'random'."""
    if mode == "sequential":
        return [g for gs in session_groups for g in gs]
    rng = rng or random.Random(7)
    queues = [list(gs) for gs in session_groups]
    out = []
    while any(queues):
        live = [q for q in queues if q]
        if mode == "random":
            q = rng.choice(live)
            out.append(q.pop(0))
        else:
            for q in live:
                out.append(q.pop(0))
    return out


def write_pcap(path, packets, t0=1795000000.0, step=0.0005):
    w = PcapWriter(path, linktype=1, sync=False)
    t = t0
    for p in packets:
        p.time = t
        w.write(p)
        t += step
    w.close()


def build_capture(sessions, outdir, pcap_name="capture.pcap",
                  interleave_mode="roundrobin", extra_packets=(),
                  t0=1795000000.0, step=0.0005):
    """Write outdir/pcap_name, outdir/streams/*, outdir/messages/*.eml and
    outdir/expected.json. Returns the expected dict."""
    os.makedirs(os.path.join(outdir, "streams"), exist_ok=True)
    os.makedirs(os.path.join(outdir, "messages"), exist_ok=True)
    all_groups, expected = [], {"messages": [], "streams": []}
    for s in sessions:
        groups, streams, msgs = s.build()
        all_groups.append(groups)
        names = s.stream_names()
        for fc in (True, False):
            if not streams[fc]:
                continue
            with open(os.path.join(outdir, "streams", names[fc]), "wb") as f:
                f.write(streams[fc])
            expected["streams"].append(names[fc])
        for m in msgs:
            data = m.pop("data")
            name = "%s.%d.eml" % (names[True], m["msg_index"])
            with open(os.path.join(outdir, "messages", name), "wb") as f:
                f.write(data)
            m["eml"] = name
            expected["messages"].append(m)
    if any(s.start is not None for s in sessions):
        # timeline: each session's groups at start + k*step, merged by time
        timed = []
        for s, groups in zip(sessions, all_groups):
            st, sp = s.start or 0.0, s.step or 0.01
            for k, g in enumerate(groups):
                for j, p in enumerate(g):
                    timed.append((st + k * sp + j * 1e-6, len(timed), p))
        timed.sort(key=lambda x: (x[0], x[1]))
        pkts = []
        for tt, _, p in timed:
            p.time = t0 + tt
            pkts.append(p)
        pkts += list(extra_packets)
        w = PcapWriter(os.path.join(outdir, pcap_name), linktype=1)
        for p in pkts:
            w.write(p)
        w.close()
    else:
        pkts = [p for g in interleave(all_groups, interleave_mode)
                for p in g]
        pkts += list(extra_packets)
        write_pcap(os.path.join(outdir, pcap_name), pkts, t0, step)
    expected["pcap"] = pcap_name
    expected["packets"] = len(pkts)
    with open(os.path.join(outdir, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
    return expected


def build_from_spec(spec, outdir):
    """spec: {"sessions": [Session kwargs, with "messages": [Message kwargs
    or {"mime": {...}}]], "interleave": "roundrobin", "pcap": name,
    "copies": n (repeat the session list n times with fresh ports)}"""
    sessions = []
    copies = spec.get("copies", 1)
    for k in range(copies):
        for i, sd in enumerate(spec["sessions"]):
            sd = dict(sd)
            if copies > 1:
                sd["cport"] = sd.get("cport", 40000) + k * 7 + i
                sd.setdefault("seed", k * 1000 + i)
            sessions.append(Session(**sd))
    return build_capture(sessions, outdir, spec.get("pcap", "capture.pcap"),
                         spec.get("interleave", "roundrobin"))


def demo():
    m1 = Message(make_message("hello", b"Hi Bob,\r\n.leading dot\r\n"),
                 rcpt_to=["bob@server.example", "carol@server.example"])
    m2 = Message(make_message("virus", attachments=[("eicar.com", eicar())]),
                 method="BDAT", chunks=[100, 100])
    return {"sessions": [
        Session(messages=[m1, m2], pipelining=True),
        Session(client="2001:db8::1", server="2001:db8::25", cport=40001,
                messages=[m1], mss=7, reorder="reverse", vlan=[100, 200]),
    ]}


def main(argv):
    if len(argv) == 3 and argv[1] == "--demo":
        exp = build_capture(demo()["sessions"], argv[2])
    elif len(argv) == 3:
        with open(argv[1]) as f:
            spec = json.load(f)
        exp = build_from_spec(spec, argv[2])
    else:
        sys.stderr.write(__doc__)
        return 2
    print("%s: %d packets, %d streams, %d messages" %
          (exp["pcap"], exp["packets"], len(exp["streams"]),
           len(exp["messages"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
