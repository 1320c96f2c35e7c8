#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Offline flood test: a generated flood capture (tests/tools/floodgen.py)
through moray-scan with its default options.

What must hold (DESIGN.md, "Floods"; README, "Floods"):
  * every legitimate message and the RFC-patient client's message is judged
    right, with its envelope, and forwarded (clean) or rejected (infected);
  * every slow-DATA flow and the trickle is ended by the data deadline with
    its minimum data rate: the client gets a 4xx reply, the server an RST at
    the sequence number it expects, and nothing of the flow reaches the
    server after that;
  * the idle source is capped at --max-per-source connections: the rest
    get an RST toward the client and never reach the server; the accepted
    ones end at the command-phase deadline, both sides told;
  * every spoofed SYN ends at the half-open deadline with an RST toward the
    server;
  * a client sending a line of garbage every minute after EHLO ends at the
    command deadline (a line is not a command), one speaking every minute
    to a server that never greets ends at the greeting deadline;
  * flood endings are logged as aggregated "shed" events (one per interval
    and reason), not one line per flow.

Usage: flood_offline.py --scan MORAY_SCAN --db DB --work DIR
"""

import argparse
import ipaddress
import json
import os
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "..", "tools", "floodgen.py")

# moray-scan defaults this test relies on (README, "Floods")
HALF_OPEN_S = 10.0
CMD_S = 300.0
GREETING_S = 300.0
DATA_S = 180.0
MAX_PER_SOURCE = 256
# deadlines fire on the timer wheel's tick after they pass
SLACK_S = 6.0


def read_pcap(path):
    """Yield (time, frame bytes)."""
    with open(path, "rb") as f:
        hdr = f.read(24)
        magic = struct.unpack("<I", hdr[:4])[0]
        nano = magic == 0xa1b23c4d
        if magic not in (0xa1b2c3d4, 0xa1b23c4d):
            raise ValueError("%s: not a little-endian pcap" % path)
        while True:
            h = f.read(16)
            if len(h) < 16:
                return
            sec, frac, incl, _ = struct.unpack("<IIII", h)
            yield sec + frac / (1e9 if nano else 1e6), f.read(incl)


def parse(frame):
    """(src, sport, dst, dport, seq, flags, payload) or None."""
    et = struct.unpack("!H", frame[12:14])[0]
    off = 14
    while et in (0x8100, 0x88a8):
        et = struct.unpack("!H", frame[off + 2:off + 4])[0]
        off += 4
    if et == 0x0800:
        ihl = (frame[off] & 0xf) * 4
        if frame[off + 9] != 6:
            return None
        src = str(ipaddress.IPv4Address(frame[off + 12:off + 16]))
        dst = str(ipaddress.IPv4Address(frame[off + 16:off + 20]))
        tot = struct.unpack("!H", frame[off + 2:off + 4])[0]
        end = off + tot
        off += ihl
    elif et == 0x86dd:
        if frame[off + 6] != 6:
            return None
        plen = struct.unpack("!H", frame[off + 4:off + 6])[0]
        src = str(ipaddress.IPv6Address(frame[off + 8:off + 24]))
        dst = str(ipaddress.IPv6Address(frame[off + 24:off + 40]))
        off += 40
        end = off + plen
    else:
        return None
    sp, dp, seq, _, doff, flags = struct.unpack("!HHIIBB", frame[off:off + 14])
    return src, sp, dst, dp, seq, flags, frame[off + (doff >> 4) * 4:end]


class Fails:
    def __init__(self):
        self.n = 0

    def check(self, cond, msg):
        if not cond:
            self.n += 1
            if self.n <= 40:
                print("FAIL: " + msg)
        return cond


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scan", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    for p, what in ((a.scan, "moray-scan"), (a.db, "database"), (GEN, "floodgen.py")):
        if not os.path.exists(p):
            print("missing %s: %s" % (what, p))
            return 1
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    subprocess.run(["/usr/bin/python3", GEN, a.work], check=True)
    with open(os.path.join(a.work, "expected.json")) as f:
        exp = json.load(f)
    t0 = exp["t0"]
    log = os.path.join(a.work, "log.jsonl")
    out = os.path.join(a.work, "out.pcap")
    stats = os.path.join(a.work, "stats.json")
    p = subprocess.run([a.scan, "--db", a.db, "--log", log, "--out-pcap", out,
                        "--stats-json", stats,
                        os.path.join(a.work, "capture.pcap")],
                       capture_output=True, timeout=600)
    sys.stderr.buffer.write(p.stderr[-4000:])
    fx = Fails()
    if not fx.check(p.returncode == 0, "moray-scan exit %d" % p.returncode):
        return 1

    events = [json.loads(line) for line in open(log)]
    msgs = {}
    for e in events:
        if e["event"] == "message":
            msgs[(e["src"], e["sport"])] = e

    # per flow (client, cport): frames moray put out
    fwd = {}    # client->server frames: [(t, seq, flags, len)]
    back = {}   # server->client frames: [(t, flags, payload)]
    for t, fr in read_pcap(out):
        r = parse(fr)
        if r is None:
            continue
        src, sp, dst, dp, seq, flags, pl = r
        if dp == 25:
            fwd.setdefault((src, sp), []).append((t - t0, seq, flags, len(pl)))
        elif sp == 25:
            back.setdefault((dst, dp), []).append((t - t0, flags, pl))

    def rst_to_server(key):
        fr = fwd.get(key, [])
        rs = [x for x in fr if x[2] & 0x04]
        return rs[0] if rs else None

    def next_seq_before(key, t):
        """The client sequence number the server expects at time t."""
        nxt = None
        isn = None
        for (tt, seq, flags, ln) in fwd.get(key, []):
            if tt > t or flags & 0x04:
                continue
            if flags & 0x02:
                isn = seq
            end = (seq + ln + (1 if flags & 0x03 else 0)) & 0xffffffff
            if nxt is None or ((end - nxt) & 0xffffffff) < 0x80000000:
                nxt = end
        return nxt, isn

    def client_told(key, t):
        """A 4xx reply or an RST reached the client at or after t."""
        for (tt, flags, pl) in back.get(key, []):
            if tt + 1e-3 >= t and (flags & 0x04 or pl[:1] == b"4"):
                return True
        return False

    counts = {}
    for fl in exp["flows"]:
        kind = fl["kind"]
        key = (fl["client"], fl["cport"])
        counts[kind] = counts.get(kind, 0) + 1
        name = "%s %s:%d" % (kind, fl["client"], fl["cport"])
        if kind in ("legit", "patient"):
            m = msgs.get(key)
            if not fx.check(m is not None, name + ": no message event"):
                continue
            fx.check(m["mail_from"] == fl["mail_from"] and
                     m["rcpt_to"] == fl["rcpt_to"],
                     name + ": envelope %r %r" % (m["mail_from"], m["rcpt_to"]))
            fx.check(m["verdict"] == fl["verdict"],
                     name + ": verdict %s, want %s" % (m["verdict"], fl["verdict"]))
            want = "forwarded" if fl["verdict"] == "clean" else "rejected"
            fx.check(m["action"] == want, name + ": action " + m["action"])
            fx.check(m["size"] == fl["size"], name + ": size %d" % m["size"])
            if fl["verdict"] == "clean":
                fx.check(rst_to_server(key) is None, name + ": server was reset")
            continue
        rst = rst_to_server(key)
        if kind == "idle" and not any(x[2] & 0x02 for x in fwd.get(key, [])):
            continue   # refused by the per-source cap: checked below
        if not fx.check(rst is not None, name + ": no RST toward the server"):
            continue
        trst = rst[0]
        nxt, _ = next_seq_before(key, trst)
        fx.check(nxt is not None and rst[1] == nxt,
                 name + ": RST seq %s, server expects %s" % (rst[1], nxt))
        late = [x for x in fwd[key] if x[0] > trst and x[3] > 0]
        fx.check(not late, name + ": %d segments with data forwarded after the RST" % len(late))
        if kind in ("slow_data", "trickle"):
            ds = fl["data_start"]
            fx.check(ds + DATA_S - 30 <= trst <= ds + DATA_S + SLACK_S,
                     name + ": ended at %.1f s, data began %.1f s" % (trst, ds))
            fx.check(client_told(key, trst), name + ": client got no 4xx/RST")
            m = msgs.get(key)
            if fx.check(m is not None, name + ": no message event"):
                fx.check(m["action"] == "tempfailed" and m.get("reason") == "deadline",
                         name + ": message action %s reason %s" %
                         (m["action"], m.get("reason")))
        elif kind in ("idle", "junk"):
            fx.check(fl["start"] + CMD_S <= trst <= fl["start"] + CMD_S + SLACK_S,
                     name + ": ended at %.1f s" % trst)
            fx.check(client_told(key, trst), name + ": client got no 4xx/RST")
        elif kind == "nogreet":
            fx.check(fl["start"] + GREETING_S <= trst <= fl["start"] + GREETING_S + SLACK_S,
                     name + ": ended at %.1f s" % trst)
            fx.check(client_told(key, trst), name + ": client got no 4xx/RST")
        elif kind == "half_open":
            fx.check(fl["start"] + HALF_OPEN_S <= trst <= fl["start"] + HALF_OPEN_S + SLACK_S,
                     name + ": half-open flow ended at %.1f s" % trst)

    # the idle source: exactly MAX_PER_SOURCE connections reach the server
    idle = [fl for fl in exp["flows"] if fl["kind"] == "idle"]
    passed = [fl for fl in idle
              if any(x[2] & 0x02 for x in fwd.get((fl["client"], fl["cport"]), []))]
    fx.check(len(passed) == MAX_PER_SOURCE,
             "idle source: %d connections reached the server, cap %d" %
             (len(passed), MAX_PER_SOURCE))
    refused = [fl for fl in idle if fl not in passed]
    for fl in refused:
        key = (fl["client"], fl["cport"])
        if not fx.check(not fwd.get(key), "refused %d: frames reached the server" % fl["cport"]):
            break
        if not fx.check(any(f & 0x04 for _, f, _ in back.get(key, [])),
                        "refused %d: no RST toward the client" % fl["cport"]):
            break

    shed = [e for e in events if e["event"] == "shed"]
    fx.check(0 < len(shed) <= 200,
             "%d shed events: flood endings must be aggregated" % len(shed))
    by_reason = {}
    for e in shed:
        by_reason[e["reason"]] = by_reason.get(e["reason"], 0) + e["count"]
    fx.check(by_reason.get("per_source_cap", 0) >= len(refused),
             "shed per_source_cap %s, refused %d" % (by_reason.get("per_source_cap"), len(refused)))
    fx.check(by_reason.get("deadline", 0) >=
             counts.get("slow_data", 0) + counts.get("trickle", 0) +
             counts.get("half_open", 0) + counts.get("junk", 0) +
             counts.get("nogreet", 0) + MAX_PER_SOURCE,
             "shed deadline %s" % by_reason.get("deadline"))
    top = [s for e in shed if e["reason"] == "per_source_cap"
           for s in e.get("top_sources", [])]
    fx.check(any(s["src"] == "192.0.2.200" for s in top),
             "the capped source is not among the top sources of its shed events")

    print("flood_offline: %s; messages %d; shed %s; %d failures" %
          (json.dumps(counts, sort_keys=True), len(msgs),
           json.dumps(by_reason, sort_keys=True), fx.n))
    return 1 if fx.n else 0


if __name__ == "__main__":
    sys.exit(main())
