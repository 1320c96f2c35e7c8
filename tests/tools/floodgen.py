#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""floodgen: a capture of a connection flood with legitimate mail inside it.

Writes OUTDIR/capture.pcap (Ethernet/IPv4+IPv6/TCP, valid checksums, both
directions as a tap in front of the server sees them) and
OUTDIR/expected.json: every flow, its kind, and what a correct moray does
with it. Packets are built with struct (no scapy: tens of thousands of
packets in about a second). The capture clock spans --span seconds so the
per-phase deadlines (RFC 5321 4.5.3.2) can fire inside it.

Kinds of flow:
  legit      a normal session delivering one message (some carry EICAR)
  patient    a client that waits just under the command timeout between
             commands, as RFC 5321 4.5.3.2 allows, then delivers a message
  slow_data  reaches DATA and then sends a few bytes every --slow-gap s
             (a keep-alive flood: each from its own source)
  trickle    one byte every 10 s in DATA: only a minimum data rate ends it
  idle       one source opening --idle-conns connections that greet, EHLO
             and then stay silent (the per-source cap and the command
             deadline end them)
  half_open  spoofed SYNs: SYN and SYN-ACK, never the client's ACK
  junk       after EHLO a line of garbage every minute, answered 500: a
             line is not a command, only the command deadline counts
  nogreet    the server never greets; the client sends EHLO every minute
             anyway: only the greeting deadline counts

Addresses are TEST-NET only (192.0.2.0/24, 198.51.100.0/24, 2001:db8::/32).

CLI: floodgen.py OUTDIR [--slow N] [--idle-conns N] [--half-open N]
                        [--legit N] [--junk N] [--nogreet N]
                        [--span SECONDS] [--seed N]
"""

import argparse
import ipaddress
import json
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mkpcap import make_message, dot_stuff, eicar  # noqa: E402

SERVER4 = "198.51.100.25"
SERVER6 = "2001:db8::25"
SMAC = bytes.fromhex("020000000002")
CMAC = bytes.fromhex("020000000001")


def csum(data):
    if len(data) & 1:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


class Conn:
    """One TCP connection; packets are (time, bytes) appended to out."""

    def __init__(self, out, client, cport, server=None, sport=25, rng=None):
        self.out = out
        self.c = ipaddress.ip_address(client)
        self.v6 = self.c.version == 6
        self.s = ipaddress.ip_address(server or (SERVER6 if self.v6 else SERVER4))
        self.cport, self.sport = cport, sport
        rng = rng or random.Random(cport)
        self.cseq = rng.getrandbits(32)
        self.sseq = rng.getrandbits(32)
        self.ipid = rng.getrandbits(16)
        self.sent_c = 0     # client payload bytes sent
        self.sent_s = 0

    def _frame(self, from_client, flags, seq, ack, payload=b""):
        src, dst = (self.c, self.s) if from_client else (self.s, self.c)
        sp, dp = ((self.cport, self.sport) if from_client
                  else (self.sport, self.cport))
        opts = b""
        if flags & 0x02:
            opts = struct.pack("!BBH", 2, 4, 1460)
        hl = 20 + len(opts)
        tcp = struct.pack("!HHIIBBHHH", sp, dp, seq & 0xffffffff,
                          ack & 0xffffffff if flags & 0x10 else 0,
                          (hl // 4) << 4, flags, 65535, 0, 0) + opts + payload
        tl = len(tcp)
        if self.v6:
            ph = src.packed + dst.packed + struct.pack("!IxxxB", tl, 6)
        else:
            ph = src.packed + dst.packed + struct.pack("!xBH", 6, tl)
        c = csum(ph + tcp)
        tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
        if self.v6:
            ip = struct.pack("!IHBB", 6 << 28, tl, 6, 64) + src.packed + dst.packed
            et = 0x86dd
        else:
            self.ipid = (self.ipid + 1) & 0xffff
            ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + tl, self.ipid, 0x4000,
                             64, 6, 0) + src.packed + dst.packed
            ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
            et = 0x0800
        eth = ((SMAC + CMAC) if from_client else (CMAC + SMAC)) + \
            struct.pack("!H", et)
        return eth + ip + tcp

    def _emit(self, t, from_client, flags, payload=b""):
        if from_client:
            seq, ack = self.cseq, self.sseq
        else:
            seq, ack = self.sseq, self.cseq
        self.out.append((t, self._frame(from_client, flags, seq, ack, payload)))
        adv = len(payload) + (1 if flags & 0x03 else 0)
        if from_client:
            self.cseq = (self.cseq + adv) & 0xffffffff
            self.sent_c += len(payload)
        else:
            self.sseq = (self.sseq + adv) & 0xffffffff
            self.sent_s += len(payload)

    # conversation steps; each returns the time after it
    def syn(self, t):
        self._emit(t, True, 0x02)
        self._emit(t + 0.0002, False, 0x12)
        return t + 0.0004

    def handshake(self, t):
        t = self.syn(t)
        self._emit(t, True, 0x10)
        return t + 0.0002

    def client(self, t, data, mss=1460):
        for i in range(0, len(data), mss):
            self._emit(t, True, 0x18, data[i:i + mss])
            t += 0.0001
        self._emit(t, False, 0x10)
        return t + 0.0002

    def server(self, t, data):
        self._emit(t, False, 0x18, data)
        self._emit(t + 0.0001, True, 0x10)
        return t + 0.0002

    def close(self, t):
        self._emit(t, True, 0x11)
        self._emit(t + 0.0001, False, 0x11)
        self._emit(t + 0.0002, True, 0x10)
        return t + 0.0003

    def name(self):
        return {"client": str(self.c), "cport": self.cport,
                "server": str(self.s), "sport": self.sport}


GREETING = b"220 server.example ESMTP floodgen\r\n"
EHLO_REPLY = (b"250-server.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
              b"250 SIZE 10240000\r\n")


def to_data(conn, t, mail_from, rcpt, gap=0.001):
    t = conn.server(t, GREETING) + gap
    t = conn.client(t, b"EHLO client.example\r\n") + gap
    t = conn.server(t, EHLO_REPLY) + gap
    t = conn.client(t, b"MAIL FROM:<" + mail_from.encode() + b">\r\n") + gap
    t = conn.server(t, b"250 2.1.0 Ok\r\n") + gap
    t = conn.client(t, b"RCPT TO:<" + rcpt.encode() + b">\r\n") + gap
    t = conn.server(t, b"250 2.1.5 Ok\r\n") + gap
    t = conn.client(t, b"DATA\r\n") + gap
    return conn.server(t, b"354 End data with <CR><LF>.<CR><LF>\r\n") + gap


def legit_session(conn, t, i, infected, gap=0.001, cmd_wait=0.0):
    mail_from = "sender%d@client.example" % i
    rcpt = "rcpt%d@server.example" % i
    att = [("eicar.com", eicar())] if infected else []
    msg = make_message("legit %d" % i, b"Hello from sender %d.\r\n" % i,
                       attachments=att, mail_from=mail_from, rcpt=rcpt)
    wire, stored = dot_stuff(msg)
    t = conn.handshake(t)
    t = conn.server(t, GREETING) + gap
    t = conn.client(t, b"EHLO client.example\r\n") + gap
    t = conn.server(t, EHLO_REPLY) + gap + cmd_wait
    t = conn.client(t, b"MAIL FROM:<" + mail_from.encode() + b">\r\n") + gap
    t = conn.server(t, b"250 2.1.0 Ok\r\n") + gap + cmd_wait
    t = conn.client(t, b"RCPT TO:<" + rcpt.encode() + b">\r\n") + gap
    t = conn.server(t, b"250 2.1.5 Ok\r\n") + gap
    t = conn.client(t, b"DATA\r\n") + gap
    t = conn.server(t, b"354 End data with <CR><LF>.<CR><LF>\r\n") + gap
    t = conn.client(t, wire) + gap
    if not infected:
        t = conn.server(t, b"250 2.0.0 Ok: queued as FLOOD%04d\r\n" % i) + gap
        t = conn.client(t, b"QUIT\r\n") + gap
        t = conn.server(t, b"221 2.0.0 Bye\r\n") + gap
        t = conn.close(t)
    d = conn.name()
    d.update({"mail_from": mail_from, "rcpt_to": [rcpt],
              "verdict": "infected" if infected else "clean",
              "size": len(stored), "start": None})
    return t, d


def build(args):
    rng = random.Random(args.seed)
    pk = []
    flows = []

    def add(kind, conn, start, **kw):
        d = conn.name()
        d.update(kind=kind, start=round(start, 6))
        d.update(kw)
        flows.append(d)

    # slow-DATA keep-alive flood: distinct sources, IPv4 then IPv6
    for k in range(args.slow):
        src = ("192.0.2.%d" % (10 + k) if k < 180
               else "2001:db8:f::%x" % (k + 1))
        c = Conn(pk, src, 30000 + k, rng=rng)
        t0 = 1.0 + k * 0.01
        t = to_data(c, c.handshake(t0), "flood%d@flood.example" % k,
                    "victim@server.example")
        data_start = t
        t = c.client(t, b"Subject: slow\r\n")
        while t < args.span:
            t += args.slow_gap
            c.client(t, b"X-Keep: alive\r\n")
        add("slow_data", c, t0, data_start=round(data_start, 6))

    # one source opening many connections that idle after EHLO
    for k in range(args.idle_conns):
        c = Conn(pk, "192.0.2.200", 20000 + k, rng=rng)
        t0 = 2.0 + k * 0.002
        t = c.handshake(t0)
        t = c.server(t, GREETING)
        t = c.client(t, b"EHLO idle.example\r\n")
        c.server(t, EHLO_REPLY)
        add("idle", c, t0)

    # a trickle: one byte every 10 s in DATA
    c = Conn(pk, "192.0.2.201", 26000, rng=rng)
    t = to_data(c, c.handshake(3.0), "trickle@flood.example",
                "victim@server.example")
    data_start = t
    body = b"Subject: trickle\r\n\r\n" + b"x" * 200
    i = 0
    while t + 10 < args.span and i < len(body):
        t += 10
        c.client(t, body[i:i + 1])
        i += 1
    add("trickle", c, 3.0, data_start=round(data_start, 6))

    # lines of garbage after EHLO, one a minute, each answered 500
    for k in range(args.junk):
        c = Conn(pk, "192.0.2.%d" % (210 + k), 25000 + k, rng=rng)
        t0 = 4.0 + k * 0.5
        t = c.handshake(t0)
        t = c.server(t, GREETING)
        t = c.client(t, b"EHLO junk.example\r\n")
        t = c.server(t, EHLO_REPLY)
        while t + 60 < args.span:
            t = c.client(t + 60, b"\x16\x03\x01\x00junk\n")
            t = c.server(t, b"500 5.5.2 Error: command not recognized\r\n")
        add("junk", c, t0)

    # a server that never greets, a client that speaks anyway every minute
    for k in range(args.nogreet):
        c = Conn(pk, "192.0.2.%d" % (220 + k), 24000 + k, rng=rng)
        t0 = 4.2 + k * 0.5
        t = c.handshake(t0)
        while t + 60 < args.span:
            t = c.client(t + 60, b"EHLO early.example\r\n")
        add("nogreet", c, t0)

    # spoofed SYNs: never completed
    for k in range(args.half_open):
        a = "2001:db8:5::%x:%x" % (k >> 12, k & 0xfff)
        c = Conn(pk, a, 1024 + (k % 60000), rng=rng)
        t0 = 30.0 + k * 0.001
        c.syn(t0)
        add("half_open", c, t0)

    # a patient client: waits just under 5 minutes between commands
    c = Conn(pk, "198.51.100.90", 27000, rng=rng)
    _, d = legit_session(c, 10.0, 900, False, cmd_wait=args.patient_wait)
    d.update(kind="patient", start=10.0)
    flows.append(d)

    # legitimate senders throughout the flood
    for i in range(args.legit):
        src = ("198.51.100.%d" % (100 + i) if i % 2 == 0
               else "2001:db8:1::%x" % (100 + i))
        c = Conn(pk, src, 28000 + i, rng=rng)
        start = 5.0 + i * (args.span - 30.0) / max(1, args.legit)
        _, d = legit_session(c, start, i, infected=(i % 5 == 4))
        d.update(kind="legit", start=round(start, 6))
        flows.append(d)
    return pk, flows


def write_pcap(path, pk, t0):
    pk.sort(key=lambda x: x[0])
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for t, b in pk:
            ts = t0 + t
            sec = int(ts)
            usec = int(round((ts - sec) * 1e6))
            if usec >= 1000000:
                sec, usec = sec + 1, usec - 1000000
            f.write(struct.pack("<IIII", sec, usec, len(b), len(b)))
            f.write(b)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("outdir")
    ap.add_argument("--slow", type=int, default=300)
    ap.add_argument("--slow-gap", type=float, default=30.0)
    ap.add_argument("--idle-conns", type=int, default=2000)
    ap.add_argument("--half-open", type=int, default=3000)
    ap.add_argument("--legit", type=int, default=20)
    ap.add_argument("--junk", type=int, default=3)
    ap.add_argument("--nogreet", type=int, default=3)
    ap.add_argument("--patient-wait", type=float, default=280.0)
    ap.add_argument("--span", type=float, default=700.0)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args(argv[1:])
    os.makedirs(args.outdir, exist_ok=True)
    pk, flows = build(args)
    t0 = 1795000000.0
    write_pcap(os.path.join(args.outdir, "capture.pcap"), pk, t0)
    exp = {"t0": t0, "span": args.span, "packets": len(pk), "flows": flows,
           "params": {k: v for k, v in vars(args).items() if k != "outdir"}}
    with open(os.path.join(args.outdir, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1, sort_keys=True)
    kinds = {}
    for fl in flows:
        kinds[fl["kind"]] = kinds.get(fl["kind"], 0) + 1
    print("capture.pcap: %d packets, flows %s" % (len(pk), json.dumps(kinds, sort_keys=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
