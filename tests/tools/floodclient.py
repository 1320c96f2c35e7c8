#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""floodclient: a bounded layer-4 keep-alive flood against an SMTP server,
for end-to-end tests and bench/flood inside network namespaces only.

Opens --conns connections spread over --sources local addresses (each must
be assigned in the namespace this runs in; TEST-NET only), in one of these
modes:
  idle   greet, EHLO, then stay silent (holding a command-phase slot)
  data   EHLO, MAIL, RCPT, DATA, then one header line every --gap seconds
         (a slow-DATA keep-alive)
and keeps every connection open until --duration seconds have passed or
the peer ends it, then closes what is left and exits. It never runs longer
than --duration + 10 s.

Prints one JSON object: connections attempted, established, refused (RST
or timeout at connect), ended by the peer (with the last reply code seen,
e.g. 421 / 451), still open at the end, and per-code counts.

usage: floodclient.py --server ADDR [--port 25] --sources A[,B...]|CIDR
       --conns N --mode idle|data [--gap S] [--duration S] [--rate N/s]
"""

import argparse
import asyncio
import ipaddress
import json
import sys
import time


def addrs(spec):
    if "/" in spec:
        net = ipaddress.ip_network(spec, strict=False)
        return [str(a) for a in net.hosts()]
    return [a for a in spec.split(",") if a]


class Stats:
    def __init__(self):
        self.attempted = self.established = self.refused = 0
        self.ended_by_peer = self.open_at_end = 0
        self.codes = {}
        self.first_end = None
        self.last_end = None

    def ended(self, code, t):
        self.ended_by_peer += 1
        self.codes[code] = self.codes.get(code, 0) + 1
        self.first_end = t if self.first_end is None else min(self.first_end, t)
        self.last_end = t if self.last_end is None else max(self.last_end, t)


async def readline(r, deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise asyncio.TimeoutError
    return await asyncio.wait_for(r.readline(), left)


async def reply(r, deadline):
    """Read one (possibly multi-line) SMTP reply; return its code or None."""
    while True:
        ln = await readline(r, deadline)
        if not ln:
            return None
        if len(ln) < 4 or ln[3:4] != b"-":
            return ln[:3].decode(errors="replace")


async def one(a, src, st, t_start, end):
    st.attempted += 1
    try:
        r, w = await asyncio.wait_for(
            asyncio.open_connection(a.server, a.port, local_addr=(src, 0)),
            min(10.0, max(0.1, end - time.monotonic())))
    except (OSError, asyncio.TimeoutError):
        st.refused += 1
        return
    st.established += 1
    code = None
    try:
        code = await reply(r, end)
        if code != "220":
            st.ended(code or "eof", time.monotonic() - t_start)
            return
        steps = [b"EHLO flood.example\r\n"]
        if a.mode == "data":
            steps += [b"MAIL FROM:<flood@flood.example>\r\n",
                      b"RCPT TO:<" + a.rcpt.encode() + b">\r\n", b"DATA\r\n"]
        for s in steps:
            w.write(s)
            await w.drain()
            code = await reply(r, end)
            if code is None or code[0] in "45":
                st.ended(code or "eof", time.monotonic() - t_start)
                return
        # hold the slot: idle, or one line every gap seconds
        while time.monotonic() < end:
            wait = a.gap if a.mode == "data" else end - time.monotonic()
            try:
                ln = await asyncio.wait_for(r.readline(), max(0.01, min(wait, end - time.monotonic())))
                if not ln:
                    st.ended(code if code and code[0] in "45" else "eof",
                             time.monotonic() - t_start)
                    return
                code = ln[:3].decode(errors="replace")
                if code[0] in "45":
                    # the reply; the close follows
                    continue
            except asyncio.TimeoutError:
                if a.mode == "data" and time.monotonic() < end:
                    w.write(b"X-Keep: alive\r\n")
                    await w.drain()
        st.open_at_end += 1
    except (OSError, asyncio.TimeoutError, ConnectionError):
        st.ended(code if code and code[0] in "45" else "reset",
                 time.monotonic() - t_start)
    finally:
        try:
            w.close()
        except Exception:
            pass


async def run(a):
    srcs = addrs(a.sources)
    if not srcs:
        raise SystemExit("floodclient: no source addresses")
    st = Stats()
    t_start = time.monotonic()
    end = t_start + a.duration
    tasks = []
    for i in range(a.conns):
        tasks.append(asyncio.ensure_future(one(a, srcs[i % len(srcs)], st, t_start, end)))
        if a.rate:
            await asyncio.sleep(1.0 / a.rate)
        if time.monotonic() >= end:
            break
    try:
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True),
                               max(1.0, end - time.monotonic() + 10))
    except asyncio.TimeoutError:
        for t in tasks:
            t.cancel()
    return st


def main(argv):
    ap = argparse.ArgumentParser(description="bounded SMTP keep-alive flood")
    ap.add_argument("--server", required=True)
    ap.add_argument("--port", type=int, default=25)
    ap.add_argument("--sources", required=True)
    ap.add_argument("--conns", type=int, required=True)
    ap.add_argument("--mode", choices=("idle", "data"), default="idle")
    ap.add_argument("--gap", type=float, default=20.0)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=500.0, help="new connections per second")
    ap.add_argument("--rcpt", default="bob@srv.lab.example")
    a = ap.parse_args(argv[1:])
    if a.conns > 20000 or a.duration > 900:
        raise SystemExit("floodclient: bounded to 20000 connections and 900 s")
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, a.conns + 256)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    st = asyncio.run(run(a))
    out = {"attempted": st.attempted, "established": st.established,
           "refused": st.refused, "ended_by_peer": st.ended_by_peer,
           "open_at_end": st.open_at_end, "codes": st.codes,
           "first_end_s": st.first_end, "last_end_s": st.last_end}
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
