#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""moray-gen: benchmark traffic generator.

Writes a pcap (Ethernet, IPv4, valid IP/TCP/UDP checksums) holding many
concurrent, interleaved SMTP sessions that carry real messages (the mail
corpus in tests/data/mail, or --mail DIR), mixed with non-SMTP
traffic: HTTP-like TCP sessions on port 80 and DNS queries/answers over UDP.
Every TCP session is complete (handshake, seq/ack, FIN) so moray reassembles
it; the file replays with DPDK net_pcap (rx_pcap=FILE,infinite_rx=1) or
pktgen (see README.md).

  moray-gen.py -o OUT.pcap [--size MB | --sessions N] [--smtp-share 0.8]
               [--concurrency 64] [--mss 1448] [--mail DIR] [--seed N]
               [--expect DIR]

--smtp-share is the fraction of bytes (approximately) carried by SMTP
sessions; the rest is HTTP-like TCP and DNS. --expect DIR also writes each
SMTP client stream as moray-scan --dump-streams names it (for checking)."""

import argparse
import array
import os
import random
import struct
import sys

MAIL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                        "tests", "data", "mail")


def csum(data):
    if len(data) & 1:
        data += b"\0"
    s = sum(array.array("H", data))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return (~s) & 0xffff


def ip4(a):
    return bytes(int(x) for x in a.split("."))


class Writer:
    def __init__(self, path):
        self.f = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535,
                                 1))
        self.t = 1795000000.0
        self.bytes = 0
        self.packets = 0

    def frame(self, b):
        self.t += 0.00001
        sec = int(self.t)
        self.f.write(struct.pack("<IIII", sec, int((self.t - sec) * 1e6),
                                 len(b), len(b)))
        self.f.write(b)
        self.bytes += len(b)
        self.packets += 1

    def close(self):
        self.f.close()


ETH = bytes.fromhex("020000000002" "020000000001" "0800")
ETH_R = bytes.fromhex("020000000001" "020000000002" "0800")


def ipv4(src, dst, proto, payload, ident, rev):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000,
                    64, proto, 0, src, dst)
    h = h[:10] + struct.pack("=H", csum(h)) + h[12:]
    return (ETH_R if rev else ETH) + h + payload


def tcp_frame(src, dst, sp, dp, seq, ack, flags, payload, ident, rev):
    opts = b""
    if flags & 0x02:
        opts = struct.pack("!BBH", 2, 4, 1460)
    off = (20 + len(opts)) // 4
    h = struct.pack("!HHIIBBHHH", sp, dp, seq & 0xffffffff, ack & 0xffffffff,
                    off << 4, flags, 65535, 0, 0) + opts
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(h) + len(payload))
    c = csum(pseudo + h + payload)
    h = h[:16] + struct.pack("=H", c) + h[18:]
    return ipv4(src, dst, 6, h + payload, ident, rev)


def udp_frame(src, dst, sp, dp, payload, ident, rev):
    h = struct.pack("!HHHH", sp, dp, 8 + len(payload), 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, 8 + len(payload))
    c = csum(pseudo + h + payload) or 0xffff
    h = h[:6] + struct.pack("=H", c)
    return ipv4(src, dst, 17, h + payload, ident, rev)


SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01


class TcpSession:
    """A TCP conversation as a generator of frames, one step per call."""

    def __init__(self, rng, client, server, cport, sport, turns, mss):
        self.c, self.s = ip4(client), ip4(server)
        self.cp, self.sp = cport, sport
        self.turns, self.mss = turns, mss
        self.ci, self.si = rng.getrandbits(32), rng.getrandbits(32)
        self.ident = rng.getrandbits(16)
        self.steps = self._steps()
        self.cstream = bytearray()

    def _f(self, from_client, seq, ack, flags, payload=b""):
        self.ident = (self.ident + 1) & 0xffff
        if from_client:
            return tcp_frame(self.c, self.s, self.cp, self.sp, seq, ack, flags,
                             payload, self.ident, False)
        return tcp_frame(self.s, self.c, self.sp, self.cp, seq, ack, flags,
                         payload, self.ident, True)

    def _steps(self):
        cs, ss = self.ci + 1, self.si + 1
        yield [self._f(True, self.ci, 0, SYN),
               self._f(False, self.si, cs, SYN | ACK),
               self._f(True, cs, ss, ACK)]
        for d, data in self.turns:
            fc = d == "c"
            out = []
            for off in range(0, len(data), self.mss):
                seg = data[off:off + self.mss]
                if fc:
                    out.append(self._f(True, cs, ss, PSH | ACK, seg))
                    cs += len(seg)
                else:
                    out.append(self._f(False, ss, cs, PSH | ACK, seg))
                    ss += len(seg)
                # receivers ack every second segment
                if len(out) % 3 == 2:
                    out.append(self._f(not fc, ss if fc else cs,
                                       cs if fc else ss, ACK))
                if len(out) >= 8:
                    yield out
                    out = []
            if fc:
                self.cstream += data
            out.append(self._f(not fc, ss if fc else cs, cs if fc else ss,
                               ACK))
            yield out
        yield [self._f(True, cs, ss, FIN | ACK),
               self._f(False, ss, cs + 1, FIN | ACK),
               self._f(True, cs + 1, ss + 1, ACK)]

    def step(self):
        return next(self.steps, None)


def dot_stuff(msg):
    if not msg.endswith(b"\r\n"):
        msg += b"\r\n"
    lines = msg.split(b"\r\n")
    return b"\r\n".join(b"." + x if x.startswith(b".") else x
                        for x in lines) + b".\r\n"


def load_mail(d):
    out = []
    for root, _, files in os.walk(d):
        for n in sorted(files):
            p = os.path.join(root, n)
            try:
                b = open(p, "rb").read()
            except OSError:
                continue
            if 0 < len(b) <= 4 * 1024 * 1024:
                # normalise to CRLF like a real SMTP client
                b = b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                out.append(b)
    return out


def smtp_turns(rng, mails, nmsg, pick=None):
    t = [("s", b"220 mx.server.example ESMTP\r\n"),
         ("c", b"EHLO client.example\r\n"),
         ("s", b"250-mx.server.example\r\n250-PIPELINING\r\n250-CHUNKING\r\n"
               b"250 8BITMIME\r\n")]
    for _ in range(nmsg):
        m = pick() if pick else rng.choice(mails)
        frm = b"user%d@client.example" % rng.randrange(10000)
        rc = b"rcpt%d@server.example" % rng.randrange(10000)
        if rng.random() < 0.3:
            t.append(("c", b"MAIL FROM:<" + frm + b">\r\nRCPT TO:<" + rc +
                      b">\r\nBDAT %d LAST\r\n" % len(m) + m))
            t.append(("s", b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
                           b"250 2.0.0 Ok: queued\r\n"))
        else:
            t.append(("c", b"MAIL FROM:<" + frm + b">\r\nRCPT TO:<" + rc +
                      b">\r\nDATA\r\n"))
            t.append(("s", b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"))
            t.append(("c", dot_stuff(m)))
            t.append(("s", b"250 2.0.0 Ok: queued\r\n"))
    t.append(("c", b"QUIT\r\n"))
    t.append(("s", b"221 2.0.0 Bye\r\n"))
    return t


def http_turns(rng):
    n = rng.choice([512, 4096, 16384, 65536, 200000])
    body = bytes(rng.getrandbits(8) for _ in range(256)) * (n // 256 + 1)
    return [("c", b"GET /obj/%d HTTP/1.1\r\nHost: www.example\r\n\r\n" %
             rng.randrange(10 ** 6)),
            ("s", b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n +
             body[:n])]


def dns_frames(rng, i):
    qid = rng.getrandbits(16)
    name = b"".join(bytes([len(x)]) + x for x in
                    (b"host%d" % rng.randrange(1000), b"example", b""))
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name + \
        struct.pack("!HH", 1, 1)
    a = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + name + \
        struct.pack("!HH", 1, 1) + b"\xc0\x0c" + \
        struct.pack("!HHIH4s", 1, 1, 300, 4, bytes([203, 0, 113, i % 250]))
    c, s = ip4("192.0.2.%d" % (10 + i % 200)), ip4("198.51.100.53")
    sp = 1024 + rng.randrange(60000)
    return [udp_frame(c, s, sp, 53, q, i & 0xffff, False),
            udp_frame(s, c, 53, sp, a, i & 0xffff, True)]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--size", type=float, default=50.0,
                    help="approximate capture size in MB (default 50)")
    ap.add_argument("--sessions", type=int, default=0,
                    help="stop after N SMTP sessions instead of --size")
    ap.add_argument("--smtp-share", type=float, default=0.8)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--msgs-per-session", type=int, default=3)
    ap.add_argument("--mss", type=int, default=1448)
    ap.add_argument("--mail", default=MAIL_DIR)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--expect", help="write SMTP client streams here")
    ap.add_argument("--each", action="store_true",
                    help="carry every message of the corpus exactly once (one "
                         "per SMTP session, SMTP only), for same-bytes benchmarks")
    ap.add_argument("--repeat", type=int, default=1,
                    help="with --each: the corpus K times over")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    mails = load_mail(a.mail)
    if not mails:
        sys.exit("moray-gen: no mail found under %s" % a.mail)
    pick = None
    if a.each:
        order = iter(list(mails) * max(1, a.repeat))
        pick = lambda: next(order)
        a.sessions = len(mails) * max(1, a.repeat)
        a.msgs_per_session, a.smtp_share = 1, 1.0
    w = Writer(a.out)
    limit = a.size * 1e6
    live, nsmtp, nother, port = [], 0, 0, 20000
    smtp_bytes = other_bytes = 0
    done_smtp = []
    if a.expect:
        os.makedirs(a.expect, exist_ok=True)

    def stop():
        if a.sessions:
            return nsmtp >= a.sessions
        return w.bytes >= limit

    i = 0
    while live or not stop():
        while not stop() and len(live) < a.concurrency:
            # unique 4-tuples: ports cycle, the client address moves on
            nses = nsmtp + nother
            port = 20000 + nses % 40000
            cl = "192.0.2.%d" % (1 + (nses // 40000) % 250)
            total = smtp_bytes + other_bytes
            want_smtp = a.smtp_share > 0 and (
                total == 0 or smtp_bytes / total < a.smtp_share)
            if want_smtp or a.smtp_share >= 1.0:
                s = TcpSession(rng, cl, "198.51.100.25", port, 25,
                               smtp_turns(rng, mails, rng.randint(
                                   1, a.msgs_per_session), pick), a.mss)
                s.smtp = True
                nsmtp += 1
            else:
                s = TcpSession(rng, cl, "198.51.100.80", port, 80,
                               http_turns(rng), a.mss)
                s.smtp = False
                nother += 1
            live.append(s)
        if not live:
            break
        s = live[rng.randrange(len(live))]
        fr = s.step()
        if fr is None:
            live.remove(s)
            if s.smtp:
                done_smtp.append(s)
            continue
        for f in fr:
            w.frame(f)
            if s.smtp:
                smtp_bytes += len(f)
            else:
                other_bytes += len(f)
        i += 1
        if a.smtp_share < 1.0 and i % 50 == 0:
            for f in dns_frames(rng, i):
                w.frame(f)
                other_bytes += len(f)
        if a.expect and done_smtp:
            for d in done_smtp:
                name = "%s.%d-%s.%d" % (".".join(str(x) for x in d.c),
                                        d.cp, ".".join(str(x) for x in d.s),
                                        d.sp)
                with open(os.path.join(a.expect, name), "wb") as f:
                    f.write(d.cstream)
        done_smtp = []
    w.close()
    tot = smtp_bytes + other_bytes
    print("%s: %.1f MB, %d packets, %d SMTP sessions, %d other TCP, "
          "SMTP share %.2f" % (a.out, w.bytes / 1e6, w.packets, nsmtp, nother,
                               smtp_bytes / tot if tot else 0))


if __name__ == "__main__":
    main()
