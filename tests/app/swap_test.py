#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Signature generations swapped continuously under traffic.

The real `moray` runs on net_pcap vdevs. Port 0 reads its capture from a
FIFO that this test feeds at a steady pace (so traffic lasts ~12 s instead
of the fraction of a second a plain file takes), port 1 an empty capture.
The capture (bench/gen/moray-gen.py over the mail corpus plus a few EICAR
messages built at run time) holds hundreds of SMTP sessions with clean and
infected messages. Meanwhile a thread keeps replacing the --db file
atomically (write elsewhere, rename) with precompiled generations 2, 3, ...
every 150 ms, for the whole run. Then:

  * every message was scanned: verdict clean or infected with a generation,
    action forwarded or rejected; never held/unscanned/tempfailed;
  * several distinct generations judged messages, each of them announced by
    a "db" event (state valid), the announced generations strictly
    increasing, never an invalid state;
  * per message, moray agrees with moray-scan --db <generation 1> on the
    same capture (same messages, verdicts, signatures);
  * every received packet is accounted for: frames out = received - dropped
    + emitted (replies, FINs, resets); every input frame missing from the
    output belongs to a rejected message's client flow; the only drop
    reasons are the verdict ones (withheld end of message, retransmissions
    after the verdict); no ring, pool, log or transmit losses.

No timing assertion: the pace only makes the swaps overlap the traffic.

usage: swap_test.py --moray BIN --scan BIN --sigc BIN --gen moray-gen.py
       --sigs NDB --mail DIR [--workers N] [--seconds S] [--sessions N]
--workers 0: one worker polling both ports (direct dispatch); N > 0: sw
dispatch with one rx lcore and N workers.
"""
import argparse
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import validate_log  # noqa: E402

ARGS = None
FAILS = []
EICAR_HEX = ("58354f2150254041505b345c505a58353428505e2937434329377d24"
             "45494341522d5354414e444152442d414e544956495255532d544553"
             "542d46494c452124482b482a")
SWAP_MS = 150


def fail(msg):
    FAILS.append(msg)
    print("FAIL: " + msg, flush=True)


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


# ------------------------------------------------------------ pcap helpers

def read_pcap(path):
    """(global header, [record header + frame bytes], [frame bytes])."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return data, [], []
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
    recs, frames, off = [], [], 24
    while off + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[off + 8:off + 12])[0]
        recs.append(data[off:off + 16 + incl])
        frames.append(data[off + 16:off + 16 + incl])
        off += 16 + incl
    return data[:24], recs, frames


def tcp_flow(fr):
    """(src, sport, dst, dport, flags, payload length) of an IPv4/TCP frame."""
    if len(fr) < 54 or fr[12:14] != b"\x08\x00" or fr[23] != 6:
        return None
    ihl = (fr[14] & 0xf) * 4
    tot = struct.unpack("!H", fr[16:18])[0]
    t = 14 + ihl
    sp, dp = struct.unpack("!HH", fr[t:t + 4])
    doff = (fr[t + 12] >> 4) * 4
    src = socket.inet_ntoa(fr[26:30])
    dst = socket.inet_ntoa(fr[30:34])
    return src, sp, dst, dp, fr[t + 13], fr[t + doff:14 + tot]


# ------------------------------------------------------------ telemetry

def telemetry(prefix, cmd):
    path = "/var/run/dpdk/%s/dpdk_telemetry.v2" % prefix
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(5)
    try:
        s.connect(path)
        s.recv(4096)
        s.send(cmd.encode())
        return json.loads(s.recv(1 << 20).decode()).get(cmd)
    except (OSError, ValueError):
        return None
    finally:
        s.close()


# ------------------------------------------------------------ set-up

def make_mail(tmp):
    """The corpus plus EICAR messages (plain body, base64 attachment)."""
    d = os.path.join(tmp, "mail")
    shutil.copytree(ARGS.mail, os.path.join(d, "corpus"))
    ev = bytes.fromhex(EICAR_HEX)
    import base64
    os.makedirs(os.path.join(d, "eicar"))
    with open(os.path.join(d, "eicar", "plain.eml"), "wb") as f:
        f.write(b"From: a@client.example\nTo: b@server.example\nSubject: eicar plain\n\n" +
                ev + b"\n")
    with open(os.path.join(d, "eicar", "attach.eml"), "wb") as f:
        f.write(b"From: a@client.example\nTo: b@server.example\nSubject: eicar attached\n"
                b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n"
                b"--b1\nContent-Type: text/plain\n\nsee attachment\n--b1\n"
                b"Content-Type: application/octet-stream; name=\"t.com\"\n"
                b"Content-Transfer-Encoding: base64\n\n" + base64.b64encode(ev) +
                b"\n--b1--\n")
    return d


def compile_gens(tmp, n):
    gens = []
    for g in range(1, n + 1):
        out = os.path.join(tmp, "gens", "g%03d.mdb" % g)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        p = subprocess.run([ARGS.sigc, "compile", "-o", out, "--generation", str(g), ARGS.sigs],
                           capture_output=True, text=True)
        if not check(p.returncode == 0, "moray-sigc compile gen %d: %s" % (g, p.stderr[-300:])):
            return None
        gens.append(out)
    return gens


# ------------------------------------------------------------ the run

class Feeder(threading.Thread):
    """Writes the capture into the FIFO: header at once (net_pcap reads it
    when the port is probed), records at a steady pace once moray runs."""

    def __init__(self, fifo, hdr, recs, seconds, go):
        super().__init__(daemon=True)
        self.fifo, self.hdr, self.recs, self.seconds, self.go = fifo, hdr, recs, seconds, go
        self.written = 0
        self.done = threading.Event()
        self.error = None

    def run(self):
        try:
            with open(self.fifo, "wb", buffering=0) as f:
                f.write(self.hdr)
                if not self.go.wait(120):
                    return
                ticks = max(1, int(self.seconds / 0.05))
                per = (len(self.recs) + ticks - 1) // ticks
                t0 = time.monotonic()
                for k in range(0, len(self.recs), per):
                    f.write(b"".join(self.recs[k:k + per]))
                    self.written = min(len(self.recs), k + per)
                    delay = t0 + (k // per + 1) * 0.05 - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
        except OSError as e:
            self.error = str(e)
        finally:
            self.done.set()


class Swapper(threading.Thread):
    """Renames generation 2, 3, ... onto the live --db path every SWAP_MS."""

    def __init__(self, live, gens, stop):
        super().__init__(daemon=True)
        self.live, self.gens, self.stop = live, gens, stop
        self.installed = [1]

    def run(self):
        for g, path in enumerate(self.gens[1:], start=2):
            if self.stop.wait(SWAP_MS / 1000.0):
                return
            tmp = self.live + ".tmp"
            shutil.copyfile(path, tmp)
            os.rename(tmp, self.live)
            self.installed.append(g)


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--moray", required=True)
    ap.add_argument("--scan", required=True)
    ap.add_argument("--sigc", required=True)
    ap.add_argument("--gen", required=True)
    ap.add_argument("--sigs", required=True)
    ap.add_argument("--mail", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "data", "mail"))
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--sessions", type=int, default=400)
    ap.add_argument("--keep", action="store_true")
    ARGS = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP-REASON: not-root (DPDK virtual devices need root here)")
        return 77
    missing = [p for p in (ARGS.moray, ARGS.scan, ARGS.sigc, ARGS.mail, ARGS.sigs, ARGS.gen)
               if not os.path.exists(p)]
    if missing:
        print("FAIL: missing " + ", ".join(missing))
        return 1
    tmp = tempfile.mkdtemp(prefix="moray-swap-test-")
    try:
        run(tmp)
    finally:
        if ARGS.keep:
            print("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("%d failure(s)" % len(FAILS))
    return 1 if FAILS else 0


def run(tmp):
    cap = os.path.join(tmp, "in.pcap")
    p = subprocess.run(["/usr/bin/python3", ARGS.gen, "-o", cap, "--sessions", str(ARGS.sessions),
                        "--smtp-share", "1.0", "--mail", make_mail(tmp), "--seed", "7"],
                       capture_output=True, text=True)
    if not check(p.returncode == 0, "moray-gen: %s" % p.stderr[-300:]):
        return
    print(p.stdout.strip())
    hdr, recs, frames_in = read_pcap(cap)
    ngen = int(ARGS.seconds * 1000 / SWAP_MS) + 20
    gens = compile_gens(tmp, ngen)
    if gens is None:
        return

    # moray-scan's verdicts for the same capture, generation 1.
    scan_log = os.path.join(tmp, "scan.jsonl")
    p = subprocess.run([ARGS.scan, "--quiet", "--db", gens[0], "--log", scan_log, cap],
                       capture_output=True, text=True)
    if not check(p.returncode == 0, "moray-scan exit %d: %s" % (p.returncode, p.stderr[-300:])):
        return
    check_schema(scan_log)
    with open(scan_log) as f:
        scan = {msg_key(e): e for e in map(json.loads, f) if e.get("event") == "message"}
    infected = sum(1 for e in scan.values() if e["verdict"] == "infected")
    check(infected >= 3 and len(scan) - infected >= 100,
          "capture: want clean and infected messages, moray-scan saw %d/%d infected"
          % (infected, len(scan)))

    live = os.path.join(tmp, "live.mdb")
    shutil.copyfile(gens[0], live)
    fifo = os.path.join(tmp, "in.fifo")
    os.mkfifo(fifo)
    empty = os.path.join(tmp, "empty.pcap")
    with open(empty, "wb") as f:
        f.write(hdr)
    out0, out1 = os.path.join(tmp, "out0.pcap"), os.path.join(tmp, "out1.pcap")
    log = os.path.join(tmp, "moray.jsonl")
    prefix = "mryswap%d" % os.getpid()
    w = ARGS.workers
    lcores = w + 2 if w else 2
    cmd = [ARGS.moray, "--no-huge", "--no-pci", "-m", "1024", "--no-shconf",
           "--file-prefix=" + prefix, "--lcores", "(0-%d)@(0-1)" % (lcores - 1),
           "--log-level=lib.eal:warning",
           "--vdev=net_pcap0,rx_pcap=%s,tx_pcap=%s" % (fifo, out0),
           "--vdev=net_pcap1,rx_pcap=%s,tx_pcap=%s" % (empty, out1),
           "--", "-p", "3", "--idle-exit", "3", "--log", log, "--db", live,
           "--alarm-no-clean", "0"]
    if w:
        cmd += ["--dispatch", "sw", "--workers", str(w)]
    go, stop = threading.Event(), threading.Event()
    feeder = Feeder(fifo, hdr, recs, ARGS.seconds, go)
    swapper = Swapper(live, gens, stop)
    feeder.start()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out_lines = []

    def reader():
        for ln in proc.stdout:
            out_lines.append(ln)
            if "moray: running" in ln:
                swapper.start()
                go.set()
    rt = threading.Thread(target=reader, daemon=True)
    rt.start()
    stats = None
    try:
        if not feeder.done.wait(ARGS.seconds + 60):
            fail("feeder did not finish (%d of %d records written)" % (feeder.written, len(recs)))
        check(feeder.error is None and feeder.written == len(recs),
              "feeder: %s, %d of %d records" % (feeder.error, feeder.written, len(recs)))
        # Wait until moray has taken every frame, then read its counters
        # before --idle-exit ends it; the swaps go on meanwhile.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            st = telemetry(prefix, "/moray/stats")
            if st is not None and st.get("pkts") == len(recs) and \
                    st.get("pkts_forwarded", 0) + st.get("pkts_dropped", 0) == len(recs):
                stats = st
                break
            time.sleep(0.1)
        stop.set()
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        fail("moray did not exit")
    finally:
        stop.set()
        go.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        rt.join(5)
        shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)
    out = "".join(out_lines)
    if not check(proc.returncode == 0, "moray exit %s: %s" % (proc.returncode, out[-1500:])):
        return
    if not check(stats is not None, "telemetry never showed all %d frames taken: %s"
                 % (len(recs), out[-800:])):
        return
    check(swapper.is_alive() is False, "swapper still running")
    verify(tmp, recs, frames_in, out, stats, scan, swapper.installed, log, out0, out1)


def msg_key(e):
    return (e["src"], e["sport"], e["dst"], e["dport"], e["msg_index"])


def final_line(out):
    for ln in out.splitlines():
        if ln.startswith("moray: final:"):
            return ln
    return ""


def final_field(line, name, nth=0):
    toks = line.replace("|", " ").split()
    seen = 0
    for i, t in enumerate(toks[:-1]):
        if t == name:
            if seen == nth:
                return int(toks[i + 1])
            seen += 1
    return None


def check_schema(path):
    """Every event in the log at @path matches docs/verdict-log.schema.json."""
    errs = validate_log.validate_file(path)
    for e in errs[:20]:
        fail("schema: " + e)
    check(len(errs) <= 20, "%d more schema errors in %s" % (len(errs) - 20, path))


def verify(tmp, recs, frames_in, out, st, scan, installed, log, out0, out1):
    n = len(recs)
    check_schema(log)
    with open(log) as f:
        events = [json.loads(x) for x in f if x.strip()]
    msgs = [e for e in events if e.get("event") == "message"]
    dbev = [e for e in events if e.get("event") == "db"]

    # ---- every message scanned, by a valid generation
    bad = [e for e in msgs if e.get("verdict") not in ("clean", "infected") or
           not isinstance(e.get("generation"), int) or e["generation"] < 1 or
           e.get("action") != ("rejected" if e["verdict"] == "infected" else "forwarded")]
    check(not bad, "%d message events not scanned/forwarded/rejected, first %r"
          % (len(bad), bad[:1]))
    check(st["msgs_held"] == 0 and st["msgs_tempfail"] == 0 and
          st["hold_timeouts"] == 0 and st["msgs_aborted"] == 0,
          "telemetry: held %d tempfail %d hold_timeouts %d aborted %d"
          % (st["msgs_held"], st["msgs_tempfail"], st["hold_timeouts"], st["msgs_aborted"]))
    # every message went through the scanner, whole: one scan each, and at
    # least every byte the servers received was scanned as raw message
    size = sum(e.get("size", 0) for e in msgs)
    check(st["scan_messages"] == st["msgs"] and st["scan_bytes_raw"] >= size > 0,
          "scanner: %d messages %d raw bytes, telemetry %d messages, log %d bytes"
          % (st["scan_messages"], st["scan_bytes_raw"], st["msgs"], size))
    check(st["msgs"] == len(msgs) == len(scan),
          "messages: telemetry %d, log %d, moray-scan %d" % (st["msgs"], len(msgs), len(scan)))

    # ---- generations
    valid = [e["generation"] for e in dbev if e.get("state") == "valid"]
    check(all(e.get("state") == "valid" for e in dbev),
          "a db event other than valid: %r" % [e for e in dbev if e.get("state") != "valid"][:2])
    check(all(a < b for a, b in zip(valid, valid[1:])), "db generations not increasing: %r" % valid)
    check(set(valid) <= set(installed), "db events name generations never installed")
    used = {}
    for e in msgs:
        used[e.get("generation")] = used.get(e.get("generation"), 0) + 1
    check(set(used) <= set(valid), "messages judged by generations never announced: %r"
          % sorted(set(used) - set(valid)))
    check(len(used) >= 3, "only %d generation(s) judged messages: %r (swaps did not overlap "
          "the traffic)" % (len(used), used))
    print("generations: %d installed, %d announced valid (%d..%d), %d judged messages"
          % (len(installed), len(valid), valid[0] if valid else 0, valid[-1] if valid else 0,
             len(used)))

    # ---- moray-scan agrees
    mine = {msg_key(e): e for e in msgs}
    check(len(mine) == len(msgs), "duplicate message events")
    check(set(mine) == set(scan), "message sets differ: only moray %d, only moray-scan %d"
          % (len(set(mine) - set(scan)), len(set(scan) - set(mine))))
    diff = [k for k in set(mine) & set(scan)
            if any(mine[k].get(fld) != scan[k].get(fld)
                   for fld in ("verdict", "action", "size", "signatures", "mail_from", "rcpt_to"))]
    check(not diff, "%d messages differ from moray-scan, e.g. %r / %r"
          % (len(diff), mine[diff[0]] if diff else None, scan[diff[0]] if diff else None))
    rejected = {k[:4] for k, e in mine.items() if e["verdict"] == "infected"}

    # ---- packets: received, forwarded, dropped (by reason), emitted
    fin = final_line(out)
    check(fin != "", "no final statistics")
    counters = {
        "final pkts": final_field(fin, "pkts"), "final fwd": final_field(fin, "pkts_forwarded"),
        "final drop": final_field(fin, "pkts_dropped"),
    }
    check(counters["final pkts"] == n and st["pkts"] == n,
          "received: final %s telemetry %d, capture %d" % (counters["final pkts"], st["pkts"], n))
    check(counters["final fwd"] == st["pkts_forwarded"] and counters["final drop"] == st["pkts_dropped"],
          "final line %r disagrees with telemetry fwd %d drop %d" % (fin, st["pkts_forwarded"],
                                                                      st["pkts_dropped"]))
    verdict_drops = st["drop_withheld"] + st["drop_after_verdict"]
    check(st["pkts_dropped"] == verdict_drops,
          "drops %d != withheld %d + after_verdict %d" % (st["pkts_dropped"], st["drop_withheld"],
                                                          st["drop_after_verdict"]))
    zero = ("drop_invalid", "drop_conflict", "drop_ooo", "drop_no_flow", "drop_midstream_data",
            "dispatch_ring_full", "app_tx_dropped", "app_oversize_dropped", "app_emit_nombuf",
            "app_emit_too_big", "session_pool_empty", "msg_pool_empty",
            "hold_store_full", "log_ring_full", "log_too_long", "log_write_errors")
    nz = {k: st.get(k) for k in zero if st.get(k) != 0}
    check(not nz, "losses other than verdicts: %r" % nz)
    # log ring_full, dispatch ring_full, then the ports' drops (summed over ports)
    for word, nth in (("ring_full", 0), ("tx_dropped", 0), ("emit_nombuf", 0), ("ring_full", 1),
                      ("rx_missed", 0), ("rx_nombuf", 0), ("tx_errors", 0)):
        check(final_field(fin, word, nth) == 0, "final %s = %s" % (word, final_field(fin, word, nth)))

    _, _, f0 = read_pcap(out0)
    _, _, f1 = read_pcap(out1)
    outs = f0 + f1
    check(len(outs) == n - st["pkts_dropped"] + st["app_emitted"],
          "frames out %d != received %d - dropped %d + emitted %d"
          % (len(outs), n, st["pkts_dropped"], st["app_emitted"]))
    pool = {}
    for fr in frames_in:
        pool[fr] = pool.get(fr, 0) + 1
    emitted = []
    for fr in outs:
        if pool.get(fr, 0) > 0:
            pool[fr] -= 1
        else:
            emitted.append(fr)
    missing = [fr for fr, c in pool.items() for _ in range(c)]
    check(len(missing) == st["pkts_dropped"], "input frames absent from the output %d != dropped %d"
          % (len(missing), st["pkts_dropped"]))
    check(len(emitted) == st["app_emitted"], "frames not from the input %d != emitted %d"
          % (len(emitted), st["app_emitted"]))
    stray = [tcp_flow(fr) for fr in missing if tcp_flow(fr) is None or tcp_flow(fr)[:4] not in rejected]
    check(not stray, "%d dropped frames outside rejected messages' client flows, e.g. %r"
          % (len(stray), stray[:1]))
    kinds = {"554": 0, "fin": 0, "rst": 0}
    for fr in emitted:
        t = tcp_flow(fr)
        if t is None:
            fail("emitted a non-TCP frame")
            continue
        cflow = (t[2], t[3], t[0], t[1])
        if t[4] & 0x04 and t[:4] in rejected:
            kinds["rst"] += 1
        elif cflow in rejected and t[5].startswith(b"554 5.7.1"):
            kinds["554"] += 1
        elif cflow in rejected and t[4] & 0x01 and not t[5]:
            kinds["fin"] += 1
        else:
            fail("emitted frame not a 554/FIN to a rejected client or RST to its server: %r"
                 % (t[:5],))
    check(kinds["554"] == len(rejected) == st["replies_injected"] == st["resets_injected"],
          "rejected flows %d, 554 replies %d, replies_injected %d resets_injected %d"
          % (len(rejected), kinds["554"], st["replies_injected"], st["resets_injected"]))
    print("packets: received %d, forwarded %d, dropped %d (withheld %d, after_verdict %d, other 0), "
          "emitted %d (554 %d, FIN %d, RST %d), out %d (port0 %d, port1 %d)"
          % (n, st["pkts_forwarded"], st["pkts_dropped"], st["drop_withheld"],
             st["drop_after_verdict"], len(emitted), kinds["554"], kinds["fin"], kinds["rst"],
             len(outs), len(f0), len(f1)))
    print("messages: %d (%d clean, %d infected), all scanned"
          % (len(msgs), len(msgs) - len(rejected), len(rejected)))


if __name__ == "__main__":
    sys.exit(main())
