#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""refreasm: a slow, obvious reference TCP reassembler (first copy wins) used
to self-check mkpcap's captures independently of moray: every packet's IP and
TCP checksum is verified, IP fragments are reassembled, VLAN/QinQ tags are
skipped, and each direction's bytes are rebuilt from sequence numbers.

  refreasm.py FILE.pcap OUTDIR   writes OUTDIR/<src>.<sport>-<dst>.<dport>
Exit 1 on a bad checksum or a conflicting overlap (listed on stderr),
unless --allow-conflicts."""

import ipaddress
import os
import sys

from scapy.all import (rdpcap, IP, IPv6, TCP, IPv6ExtHdrFragment, defragment,
                       conf)
from scapy.layers.inet6 import defragment6

conf.verb = 0


def _ntop(a):
    return str(ipaddress.ip_address(a))


def checksums_ok(ipl):
    """Recompute IP/TCP checksums of a (reassembled) IP packet."""
    raw = bytes(ipl)
    p = ipl.__class__(raw)
    ok = True
    if isinstance(p, IP):
        c = p.chksum
        del p.chksum
        ok &= (p.__class__(bytes(p)).chksum == c)
    t = p[TCP]
    c = t.chksum
    del t.chksum
    ok &= (p.__class__(bytes(p))[TCP].chksum == c)
    return ok


def reassemble(path, allow_conflicts=False):
    pkts = rdpcap(path)
    ips, frags4, frags6 = [], [], []
    for p in pkts:
        if IP in p:
            ip = p[IP]
            if ip.flags.MF or ip.frag:
                frags4.append(ip)
                continue
            ips.append(ip)
        elif IPv6 in p:
            ip = p[IPv6]
            fh = ip.getlayer(IPv6ExtHdrFragment)
            if fh is not None and (fh.m or fh.offset):
                frags6.append(ip)
                continue
            ips.append(ip)
    errors = []
    if frags4:
        ips += [x for x in defragment(frags4) if IP in x and not
                (x[IP].flags.MF or x[IP].frag)]
    if frags6:
        groups = {}
        for f in frags6:
            groups.setdefault(f[IPv6ExtHdrFragment].id, []).append(f)
        for g in groups.values():
            g.sort(key=lambda f: f[IPv6ExtHdrFragment].offset)
            d = defragment6(g)
            ips.append(IPv6(bytes(d)))
    flows = {}
    for ip in ips:
        if TCP not in ip:
            continue
        if not checksums_ok(ip):
            errors.append("bad checksum: %s" % ip.summary())
        t = ip[TCP]
        key = (_ntop(ip.src), t.sport, _ntop(ip.dst), t.dport)
        f = flows.setdefault(key, {"isn": None, "bytes": {}})
        data = bytes(t.payload)
        if "S" in t.flags:
            f["isn"] = (t.seq + 1) & 0xffffffff
            continue
        if f["isn"] is None and data:
            f.setdefault("first", t.seq)
        for i, b in enumerate(data):
            s = (t.seq + i) & 0xffffffff
            if s in f["bytes"]:
                if f["bytes"][s] != b:
                    errors.append("conflicting overlap %s at seq %d" %
                                  (key, s))
                continue
            f["bytes"][s] = b
    out = {}
    for key, f in flows.items():
        if not f["bytes"]:
            continue
        base = f["isn"] if f["isn"] is not None else min(f["bytes"])
        buf = bytearray()
        s = base
        while s in f["bytes"]:
            buf.append(f["bytes"][s])
            s = (s + 1) & 0xffffffff
        out["%s.%d-%s.%d" % key] = bytes(buf)
    if allow_conflicts:
        errors = [e for e in errors if not e.startswith("conflicting")]
    return out, errors


def main(argv):
    allow = "--allow-conflicts" in argv
    argv = [a for a in argv if a != "--allow-conflicts"]
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    streams, errors = reassemble(argv[1], allow)
    os.makedirs(argv[2], exist_ok=True)
    for name, data in streams.items():
        with open(os.path.join(argv[2], name), "wb") as f:
            f.write(data)
    for e in errors:
        sys.stderr.write(e + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
