#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests of the real `moray` binary on net_pcap virtual devices.

Each case starts moray with --no-huge --no-pci --no-shconf, a capture replayed
into port 0 (both directions in one capture is valid: direction comes from
the flow, DESIGN.md), an empty capture into port 1, and --idle-exit so the
run ends by itself (a pcap port never signals EOF). The output captures are
then checked packet by packet with scapy:

  * clean flows: every input frame comes out of the paired port, byte for
    byte, in the same order per flow and direction;
  * infected messages: the end of the message never reaches the server; the
    client gets a well-formed "554 5.7.1" (checksums, seq = server's next,
    ack = end of the client's data) out of port 0 and the server a RST whose
    seq is exactly the server's RCV.NXT (RFC 5961), out of port 1;
  * the verdict log agrees with moray-scan over the same capture and with
    the ground truth of the samples (samples.json).

Usage: moray_pcap_test.py --moray BIN --scan BIN --sigc BIN --samples DIR
       [--sigs NDB] CASE...
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("SCAPY_USE_LIBPCAP", "no")
import logging  # noqa: E402

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import IP, TCP, Ether, Raw, rdpcap, wrpcap  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import validate_log  # noqa: E402

ARGS = None
FAILS = []
SAMPLES = ["01_swaks_plain", "02_swaks_attach_eicar", "03_swaks_pipeline",
           "04_exim_bdat"]


def fail(msg):
    FAILS.append(msg)
    print("FAIL: " + msg, flush=True)


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


def check_schema(path):
    """Every verdict log a case produces must match docs/verdict-log.schema.json."""
    errs = validate_log.validate_file(path)
    for e in errs[:20]:
        fail("schema: " + e)
    check(len(errs) <= 20, "%d more schema errors in %s" % (len(errs) - 20, path))
    return not errs


def eal_args(tmp, lcores, in_pcap, prefix):
    empty = os.path.join(tmp, "empty.pcap")
    if not os.path.exists(empty):
        wrpcap(empty, [])
    return ["--no-huge", "--no-pci", "-m", "1024", "--no-shconf",
            "--file-prefix=" + prefix, "--lcores", "(0-%d)@(0-1)" % (lcores - 1),
            "--log-level=lib.eal:warning",
            "--vdev=net_pcap0,rx_pcap=%s,tx_pcap=%s" % (in_pcap, os.path.join(tmp, "out0.pcap")),
            "--vdev=net_pcap1,rx_pcap=%s,tx_pcap=%s" % (empty, os.path.join(tmp, "out1.pcap"))]


def run_moray(tmp, workers, in_pcap, extra=(), idle=2, timeout=120):
    """Runs moray with sw dispatch: main + 1 rx lcore + @workers; workers=0:
    two lcores and default dispatch (one worker polling both ports)."""
    prefix = "mrytest%d_%d" % (os.getpid(), int(time.time() * 1000) % 100000)
    log = os.path.join(tmp, "moray.jsonl")
    for f in ("out0.pcap", "out1.pcap", "moray.jsonl"):
        if os.path.exists(os.path.join(tmp, f)):
            os.unlink(os.path.join(tmp, f))
    disp = ["--dispatch", "sw", "--workers", str(workers)] if workers else []
    cmd = [ARGS.moray] + eal_args(tmp, workers + 2 if workers else 2, in_pcap, prefix) + \
        ["--", "-p", "3"] + disp + ["--idle-exit", str(idle), "--log", log] + list(extra)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)
    res = {"rc": p.returncode, "out": p.stdout, "err": p.stderr, "cmd": cmd}
    res["out0"] = [bytes(x) for x in rdpcap(os.path.join(tmp, "out0.pcap"))] \
        if os.path.exists(os.path.join(tmp, "out0.pcap")) else []
    res["out1"] = [bytes(x) for x in rdpcap(os.path.join(tmp, "out1.pcap"))] \
        if os.path.exists(os.path.join(tmp, "out1.pcap")) else []
    res["log"] = []
    check_schema(log)
    if os.path.exists(log):
        with open(log) as f:
            for line in f:
                res["log"].append(json.loads(line))
    return res


def flow_of(raw):
    p = Ether(raw)
    if IP in p and TCP in p:
        return (p[IP].src, p[TCP].sport, p[IP].dst, p[TCP].dport)
    return None


def by_flow(frames):
    d = {}
    for r in frames:
        d.setdefault(flow_of(r), []).append(r)
    return d


def checksums_ok(raw):
    p = Ether(raw)
    ip_c, tcp_c = p[IP].chksum, p[TCP].chksum
    q = p.copy()
    del q[IP].chksum
    del q[TCP].chksum
    q = Ether(bytes(q))
    return q[IP].chksum == ip_c and q[TCP].chksum == tcp_c


def payload(raw):
    p = Ether(raw)
    return bytes(p[TCP].payload) if TCP in p else b""


def tcp_end(raw):
    p = Ether(raw)
    t = p[TCP]
    n = len(bytes(t.payload))
    if t.flags & 0x02:
        n += 1
    if t.flags & 0x01:
        n += 1
    return (t.seq + n) & 0xffffffff


def eom_end_seq(frames):
    """Sequence number just past the first message's end: the CRLF.CRLF of
    DATA, or the last byte of the BDAT ... LAST chunk (RFC 5321, RFC 3030)."""
    import re
    segs = sorted({Ether(x)[TCP].seq: payload(x) for x in frames if payload(x)}.items())
    if not segs:
        return None
    base = segs[0][0]
    stream = b""
    for seq, data in segs:
        off = (seq - base) & 0xffffffff
        stream = stream[:off] + data if off <= len(stream) else stream
    i = stream.find(b"DATA\r\n")
    m = re.search(rb"BDAT (\d+) LAST\r\n", stream)
    if m is not None and (i < 0 or m.start() < i):
        end = m.end() + int(m.group(1))
    elif i >= 0:
        end = stream.find(b"\r\n.\r\n", i) + 5
    else:
        return None
    return (base + end) & 0xffffffff


def samples_truth():
    with open(os.path.join(ARGS.samples, "samples.json")) as f:
        j = json.load(f)
    truth = {}
    for s in j["samples"]:
        for m in s["messages"]:
            truth[(m["src"], m["sport"], m["dst"], m["dport"], m["msg_index"])] = m
    return truth


def combined_pcap(tmp):
    path = os.path.join(tmp, "all.pcap")
    if not os.path.exists(path):
        pk = []
        for s in SAMPLES:
            pk += list(rdpcap(os.path.join(ARGS.samples, s + ".pcap")))
        wrpcap(path, pk)
    return path


def database(tmp):
    """Compiles the EICAR test database with moray-sigc."""
    path = os.path.join(tmp, "test.mdb")
    if os.path.exists(path):
        return path
    p = subprocess.run([ARGS.sigc, "compile", "-o", path, "--generation", "1", ARGS.sigs],
                       capture_output=True, text=True)
    if p.returncode != 0:
        fail("moray-sigc compile failed: " + (p.stderr or p.stdout).strip())
        return None
    return path


# ---------------------------------------------------------------- cases

def case_version(tmp):
    p = subprocess.run([ARGS.moray, "--version"], capture_output=True, text=True)
    check(p.returncode == 0, "--version exit %d" % p.returncode)
    check(p.stdout.startswith("moray ") and "DPDK" in p.stdout and "Hyperscan" in p.stdout,
          "--version output: %r" % p.stdout)
    p = subprocess.run([ARGS.moray, "--", "--help"], capture_output=True, text=True)
    check(p.returncode == 0 and "--portmask" in p.stdout, "--help")
    # both print the meson project version
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "meson.build")) as f:
        m = re.search(r"version:\s*'([^']+)'", f.read())
    want = m.group(1) if m else "?"
    p = subprocess.run([ARGS.moray, "--version"], capture_output=True, text=True)
    check(p.stdout.startswith("moray %s " % want), "moray --version %r, project %s" % (p.stdout, want))
    p = subprocess.run([ARGS.scan, "--version"], capture_output=True, text=True)
    check(p.returncode == 0 and p.stdout.startswith("moray-scan %s " % want),
          "moray-scan --version %r, project %s" % (p.stdout, want))


def one_error_line(p, what):
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    ok = check(0 < p.returncode < 128, "%s: exit %d (want 1..127, no signal)" % (what, p.returncode))
    ok = check(len(lines) >= 1 and lines[-1].startswith("moray: error: "),
               "%s: last stderr line %r" % (what, lines[-1] if lines else "")) and ok
    return ok, lines


def case_bad_options(tmp):
    cfg_bad = os.path.join(tmp, "bad.conf")
    with open(cfg_bad, "w") as f:
        f.write("# comment\nportmask = 3\nno-such-option = 1\n")
    pre_eal = [
        ["--bogus"], ["-p", "zz"], ["-p", "3", "--burst", "0"], ["-p", "3", "--burst", "x"],
        ["-p", "3", "--smtp-ports", "0"], ["-p", "3", "--smtp-ports", "25,,70000"],
        ["-p", "3", "--db-policy", "maybe"], ["-p", "3", "--hold-store-size", "12Q"],
        ["-p", "3", "--dispatch", "magic"], ["-p", "3", "--encrypted", "drop"],
        ["-p", "3", "--ring-size", "1000"], [],
        ["-p", "3", "--config", os.path.join(tmp, "missing.conf")],
        ["--config", cfg_bad], ["-p", "3", "--max-flows"], ["-p", "3", "stray"],
        ["-p", "3", "--db-pubkey", os.path.join(tmp, "missing.key")],
        # an engine option, parsed by the engine's table as in moray-scan
        ["-p", "3", "--timeout-cmd", "0"], ["-p", "3", "--max-per-source", "x"],
    ]
    for a in pre_eal:
        p = subprocess.run([ARGS.moray, "--no-huge", "--", *a], capture_output=True, text=True)
        ok, lines = one_error_line(p, "options %s" % a)
        check(len(lines) == 1, "options %s: want exactly one stderr line, got %r" % (a, lines))
    # Values that parse but would stop all mail or contradict each other:
    # refused before EAL, the line naming the option (and its range).
    cfg_zero = os.path.join(tmp, "zero.conf")
    with open(cfg_zero, "w") as f:
        f.write("portmask = 3\nhold-store-size = 0\n")
    refused = [
        (["-p", "3", "--hold-store-size", "0"], "--hold-store-size", "1M"),
        (["-p", "3", "--hold-store-size", "64k"], "--hold-store-size", "1M"),
        (["--config", cfg_zero], "--hold-store-size", "1M"),
        (["-p", "3", "--hold-timeout", "0"], "hold-timeout", ""),
        (["-p", "3", "--hold-timeout", "900"], "--hold-timeout", "599"),
        (["-p", "3", "--smtp-ports", "25,587,25"], "--smtp-ports", "twice"),
        (["-p", "3", "--db-max-age", "10"], "--db-max-age", "60"),
    ]
    for a, name, says in refused:
        p = subprocess.run([ARGS.moray, "--no-huge", "--", *a], capture_output=True, text=True)
        ok, lines = one_error_line(p, "options %s" % a)
        check(len(lines) == 1, "options %s: want exactly one stderr line, got %r" % (a, lines))
        if ok:
            check(name in lines[-1] and says in lines[-1],
                  "options %s: %r does not name %s (%s)" % (a, lines[-1], name, says))
    # Errors only EAL and the ports can reveal.
    inp = os.path.join(ARGS.samples, "01_swaks_plain.pcap")
    post = [
        ("missing port", 4, ["-p", "c"], "does not exist"),
        ("unpaired port", 4, ["-p", "1"], "no pair"),
        ("one lcore", 1, ["-p", "3"], "lcores"),
        ("sw needs 3 lcores", 2, ["-p", "3", "--dispatch", "sw"], "lcores"),
        ("rss on pcap", 3, ["-p", "3", "--dispatch", "rss"], "rss"),
        ("too many workers", 3, ["-p", "3", "--workers", "5"], "workers"),
    ]
    for what, lcores, a, word in post:
        prefix = "mrybad%d" % os.getpid()
        cmd = [ARGS.moray] + eal_args(tmp, lcores, inp, prefix) + ["--"] + a
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)
        ok, lines = one_error_line(p, what)
        if ok:
            check(word in lines[-1], "%s: %r does not mention %r" % (what, lines[-1], word))


def case_config_file(tmp):
    """--config holds the options; the command line overrides the file.

    The file makes 587 and 2525 the only SMTP ports, so the port-25 sample is
    plain TCP to moray and every frame passes even with no database; the
    file's idle-exit of 600 s is overridden to 2 s on the command line."""
    inp = os.path.join(ARGS.samples, "01_swaks_plain.pcap")
    conf = os.path.join(tmp, "moray.conf")
    with open(conf, "w") as f:
        f.write("# test config\nportmask = 3\nsmtp-ports = 587, 2525\nburst = 16\n"
                "idle-exit = 600\nstats-interval = 0\nno-promisc\n")
    r = run_moray(tmp, 1, inp, extra=["--config", conf, "--idle-exit", "2"], timeout=60)
    check(r["rc"] == 0, "config run exit %d: %s" % (r["rc"], r["err"][-500:]))
    check(r["out1"] == [bytes(x) for x in rdpcap(inp)],
          "config run: %d frames forwarded; port 25 is not SMTP here" % len(r["out1"]))
    # Without the file's smtp-ports, port 25 is SMTP: the message is withheld.
    r = run_moray(tmp, 1, inp, extra=["--idle-exit", "2"])
    check(len(r["out1"]) < len(rdpcap(inp)), "default smtp-ports: end of message not held")
    # The bundled example configuration parses (paths replaced).
    ex = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "dpdk-app",
                      "moray.conf.example")
    if os.path.exists(ex):
        with open(ex) as f:
            text = f.read()
        text = text.replace("/var/lib/moray/moray.mdb", os.path.join(tmp, "none.mdb"))
        text = text.replace("/var/log/moray/verdicts.jsonl", os.path.join(tmp, "ex.jsonl"))
        exc = os.path.join(tmp, "example.conf")
        with open(exc, "w") as f:
            f.write(text)
        r = run_moray(tmp, 1, inp, extra=["--config", exc, "--idle-exit", "2",
                                          "--hold-store-size", "16M", "--reasm-segments", "4096"])
        check(r["rc"] == 0, "moray.conf.example: exit %d: %s" % (r["rc"], r["err"][-300:]))
        check_schema(os.path.join(tmp, "ex.jsonl"))


def verdict_checks(inp, r, truth, db):
    """Clean flows unchanged and in order; infected ones answered 554 + RST."""
    fin = by_flow([bytes(x) for x in rdpcap(inp)])
    fout1 = by_flow(r["out1"])
    fout0 = by_flow(r["out0"])
    infected_conns = set()
    if db is not None:
        for k, m in truth.items():
            if m["verdict"] == "infected":
                infected_conns.add(k[:4])
    for flow, frames in fin.items():
        if flow is None:
            continue
        client_flow = flow if flow[3] in (25, 587, 2525) else (flow[2], flow[3], flow[0], flow[1])
        got = [x for x in fout1.get(flow, []) if x in frames]
        if client_flow not in infected_conns:
            check(got == frames, "clean flow %s: %d of %d frames forwarded unchanged in order"
                  % (flow, len(got), len(frames)))
            continue
        # Forwarded frames are an ordered subsequence of the input.
        it = iter(frames)
        check(all(any(g == f for f in it) for g in got),
              "infected flow %s: output not an ordered subsequence of the input" % (flow,))
        if flow != client_flow:
            continue
        sent = b"".join(payload(x) for x in frames)
        fwd = b"".join(payload(x) for x in got)
        check(sent.startswith(fwd) and len(fwd) < len(sent),
              "infected flow %s: the whole client stream reached the server" % (flow,))
        # The server's RCV.NXT: end of the client bytes it received.
        data_got = [x for x in got if payload(x)]
        rcv_nxt = tcp_end(data_got[-1]) if data_got else None
        rsts = [x for x in fout1.get(flow, []) if x not in frames and Ether(x)[TCP].flags & 0x04]
        if check(len(rsts) >= 1, "infected flow %s: no RST toward the server" % (flow,)):
            check(all(checksums_ok(x) for x in rsts), "RST checksums")
            check(Ether(rsts[0])[TCP].seq == rcv_nxt,
                  "RST seq %d != server RCV.NXT %s" % (Ether(rsts[0])[TCP].seq, rcv_nxt))
        rev = (flow[2], flow[3], flow[0], flow[1])
        replies = [x for x in fout0.get(rev, []) if payload(x).startswith(b"554 5.7.1")]
        if check(len(replies) == 1, "infected flow %s: %d '554 5.7.1' replies to the client"
                 % (flow, len(replies))):
            rep = Ether(replies[0])
            check(checksums_ok(replies[0]), "554 reply checksums")
            eom = eom_end_seq(frames)
            check(rep[TCP].ack == eom, "554 ack %d != end of the message %s" % (rep[TCP].ack, eom))
            srv = [x for x in fin.get(rev, []) if payload(x)]
            check(any(rep[TCP].seq == tcp_end(x) for x in srv),
                  "554 seq %d is not the server's next seq" % rep[TCP].seq)
            check(b"\r\n" == payload(replies[0])[-2:], "554 reply ends with CRLF")


def message_events(log):
    return {(e["src"], e["sport"], e["dst"], e["dport"], e["msg_index"]): e
            for e in log if e.get("event") == "message"}


def forward_case(tmp, workers, extra=()):
    inp = combined_pcap(tmp)
    db = database(tmp)
    extra = (["--db", db] if db else []) + list(extra)
    r = run_moray(tmp, workers, inp, extra=extra)
    if not check(r["rc"] == 0, "%d workers: exit %d: %s" % (workers, r["rc"], r["err"][-800:])):
        return
    check("final:" in r["out"], "%d workers: no final statistics" % workers)
    check(("dispatch direct" if workers == 0 else "dispatch sw") in r["out"],
          "dispatch mode not as asked: %s" % r["out"].splitlines()[0])
    truth = samples_truth()
    verdict_checks(inp, r, truth, db)
    dbev = [e for e in r["log"] if e.get("event") == "db"]
    check(len(dbev) >= 1, "no db event in the log")
    if db is None:
        return r
    check(dbev[0].get("state") == "valid", "db event at start: %r" % dbev[0])
    msgs = message_events(r["log"])
    for k, m in truth.items():
        e = msgs.get(k)
        if not check(e is not None, "no message event for %s" % (k,)):
            continue
        check(e["verdict"] == m["verdict"], "%s: verdict %s, want %s" % (k, e["verdict"], m["verdict"]))
        check(e["size"] == m["size"], "%s: size %s, want %s" % (k, e["size"], m["size"]))
        check(e["action"] == ("rejected" if m["verdict"] == "infected" else "forwarded"),
              "%s: action %s" % (k, e["action"]))
    return r


def case_forward_direct(tmp):
    forward_case(tmp, 0)


def case_forward_1w(tmp):
    forward_case(tmp, 1)


def case_forward_2w(tmp):
    forward_case(tmp, 2)


def large_capture(tmp):
    """Eight sessions from distinct clients (both workers get some), each a
    40 kB message in 300-byte segments, interleaved: 1,360 frames, far
    more than a 64-entry ring. Returns (pcap path, expected messages)."""
    import mkpcap
    out = os.path.join(tmp, "large")
    body = b"".join(b"line %05d of a long legitimate message body\r\n" % i
                    for i in range(900))
    sessions = [mkpcap.Session(client="192.0.2.%d" % (10 + i), cport=41000 + i, mss=300,
                               messages=[mkpcap.Message(mkpcap.make_message(
                                   subject="big %d" % i, body=body))])
                for i in range(8)]
    exp = mkpcap.build_capture(sessions, out)
    return os.path.join(out, exp["pcap"]), exp["messages"]


def case_forward_2w_small_ring(tmp):
    """Dispatch backpressure: a capture many times larger than a 64-entry
    ring, replayed as fast as net_pcap reads it into two workers. The
    dispatcher takes only what the rings can hold, so every frame reaches
    its worker (no ring_full, no tx loss), every frame is forwarded, every
    message completes with its verdict and size, and the bound did act
    (rx_throttled)."""
    inp, want = large_capture(tmp)
    n_in = len(rdpcap(inp))
    check(n_in > 16 * 64, "the capture must exceed the ring many times: %d frames" % n_in)
    db = database(tmp)
    prom = os.path.join(tmp, "ring.prom")
    r = run_moray(tmp, 2, inp, extra=(["--db", db] if db else []) +
                  ["--ring-size", "64", "--metrics-file", prom])
    if not check(r["rc"] == 0, "exit %d: %s" % (r["rc"], r["err"][-800:])):
        return
    msgs = message_events(r["log"])
    for m in want:
        k = (m["src"], m["sport"], m["dst"], m["dport"], m["msg_index"])
        e = msgs.get(k)
        if not check(e is not None, "no message event for %s" % (k,)):
            continue
        check(e["size"] == m["size"], "%s: size %s, want %s" % (k, e["size"], m["size"]))
        if db:
            check(e["verdict"] == "clean" and e["action"] == "forwarded",
                  "%s: %s/%s" % (k, e["verdict"], e["action"]))
    check(len(r["out0"]) + len(r["out1"]) == n_in,
          "forwarded %d of %d frames" % (len(r["out0"]) + len(r["out1"]), n_in))
    if not check(os.path.exists(prom), "no metrics file"):
        return
    m = read_metrics(prom)
    check(m.get("moray_dispatch_ring_full_total") == 0,
          "dispatcher dropped frames: ring_full %r" % m.get("moray_dispatch_ring_full_total"))
    check(m.get("moray_app_tx_dropped_total") == 0,
          "workers lost frames: tx_dropped %r" % m.get("moray_app_tx_dropped_total"))
    check(m.get("moray_dispatch_rx_pkts_total") == n_in,
          "dispatcher took %r of %d frames" % (m.get("moray_dispatch_rx_pkts_total"), n_in))
    check(m.get("moray_app_rx_pkts_total") == n_in,
          "workers handed %r of %d frames to the engine" % (m.get("moray_app_rx_pkts_total"), n_in))
    check(m.get("moray_dispatch_rx_throttled_total", 0) > 0,
          "the ring bound never cut an rx burst")


def case_forward_4w(tmp):
    forward_case(tmp, 4)


def case_forward_queue_2w(tmp):
    """--dispatch queue: two workers, each polling its own rx queue of both
    ports (net_pcap: one capture per queue, every connection whole in one of
    them), as a NIC with flow steering would deliver them; the same verdict
    checks as the other forwarding cases over the merged outputs."""
    db = database(tmp)
    pk = [list(rdpcap(os.path.join(ARGS.samples, s + ".pcap"))) for s in SAMPLES]
    q = [os.path.join(tmp, "q%d.pcap" % i) for i in range(2)]
    wrpcap(q[0], pk[0] + pk[2])
    wrpcap(q[1], pk[1] + pk[3])
    empty = os.path.join(tmp, "empty.pcap")
    wrpcap(empty, [])
    outs = [os.path.join(tmp, "out%d_%d.pcap" % (p, i)) for p in range(2) for i in range(2)]
    prefix = "mrytestq%d" % os.getpid()
    log = os.path.join(tmp, "moray.jsonl")
    cmd = [ARGS.moray, "--no-huge", "--no-pci", "-m", "1024", "--no-shconf",
           "--file-prefix=" + prefix, "--lcores", "(0-2)@(0-1)", "--log-level=lib.eal:warning",
           "--vdev=net_pcap0,rx_pcap=%s,rx_pcap=%s,tx_pcap=%s,tx_pcap=%s" % (q[0], q[1], outs[0], outs[1]),
           "--vdev=net_pcap1,rx_pcap=%s,rx_pcap=%s,tx_pcap=%s,tx_pcap=%s" % (empty, empty, outs[2], outs[3]),
           "--", "-p", "3", "--dispatch", "queue", "--idle-exit", "2", "--log", log] + \
        (["--db", db] if db else [])
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)
    if not check(p.returncode == 0, "queue dispatch: exit %d: %s" % (p.returncode, p.stderr[-800:])):
        return
    check("dispatch queue" in p.stdout and "2 worker(s)" in p.stdout,
          "dispatch mode not as asked: %s" % p.stdout.splitlines()[0])
    import re
    per_worker = re.findall(r"worker (\d+) \(lcore \d+\): engine pkts (\d+) .*? msgs (\d+) ",
                            p.stdout)
    check(len(per_worker) == 2 and all(int(m) > 0 for _, _, m in per_worker) and
          sum(int(m) for _, _, m in per_worker) == len(samples_truth()),
          "each worker judges the messages of its own queue: %r" % (per_worker,))
    r = {"out0": [bytes(x) for f in outs[:2] for x in rdpcap(f)],
         "out1": [bytes(x) for f in outs[2:] for x in rdpcap(f)]}
    check_schema(log)
    with open(log) as f:
        r["log"] = [json.loads(line) for line in f]
    inp = os.path.join(tmp, "all_q.pcap")
    wrpcap(inp, pk[0] + pk[2] + pk[1] + pk[3])
    truth = samples_truth()
    verdict_checks(inp, r, truth, db)
    msgs = message_events(r["log"])
    for k, m in truth.items():
        e = msgs.get(k)
        if check(e is not None, "queue dispatch: no message event for %s" % (k,)) and db:
            check(e["verdict"] == m["verdict"], "%s: verdict %s, want %s"
                  % (k, e["verdict"], m["verdict"]))
    # a device without enough queues is refused with a reason
    bad = [ARGS.moray] + eal_args(tmp, 3, q[0], prefix + "b") + \
        ["--", "-p", "3", "--dispatch", "queue"]
    p = subprocess.run(bad, capture_output=True, text=True, timeout=60)
    shutil.rmtree("/var/run/dpdk/" + prefix + "b", ignore_errors=True)
    check(p.returncode != 0 and "queue" in p.stderr and p.stderr.count("\n") <= 3,
          "one-queue port with --dispatch queue: exit %d: %s" % (p.returncode, p.stderr[-300:]))


# Fields left out of the moray / moray-scan comparison: the event time only
# (moray stamps the wall clock, moray-scan the capture's). With a valid
# database nothing is held, so held_ms (time on hold, also clock-dependent)
# does not occur here; every other field of every event must agree.
RUN_SPECIFIC_FIELDS = ("ts",)
# Event types only one program writes: "alarm" is the live process's health
# signal (wall-clock windows, telemetry); moray-scan has no alarm.
MORAY_ONLY_EVENTS = ("alarm",)


def comparable(events):
    """Events as sorted canonical JSON without the run-specific fields; the
    order across connections differs between workers, so a sorted list."""
    out = []
    for e in events:
        if e.get("event") in MORAY_ONLY_EVENTS:
            continue
        out.append(json.dumps({k: v for k, v in e.items() if k not in RUN_SPECIFIC_FIELDS},
                              sort_keys=True))
    return sorted(out)


def case_log_matches_scan(tmp):
    """moray and moray-scan over the same capture write the same events,
    field for field, every event type, apart from timestamps."""
    inp = combined_pcap(tmp)
    db = database(tmp)
    if db is None:
        return
    app_prom = os.path.join(tmp, "moray.prom")
    scan_prom = os.path.join(tmp, "scan.prom")
    scan_json = os.path.join(tmp, "scan-stats.json")
    r = run_moray(tmp, 2, inp, extra=["--db", db, "--metrics-file", app_prom])
    check(r["rc"] == 0, "moray exit %d" % r["rc"])
    scan_log = os.path.join(tmp, "scan.jsonl")
    p = subprocess.run([ARGS.scan, "--db", db, "--log", scan_log, "--metrics-file", scan_prom,
                        "--stats-json", scan_json, inp],
                       capture_output=True, text=True)
    if not check(p.returncode == 0, "moray-scan exit %d: %s" % (p.returncode, p.stderr[-400:])):
        return
    check_schema(scan_log)
    with open(scan_log) as f:
        scan_events = [json.loads(x) for x in f if x.strip()]
    scan = message_events(scan_events)
    mine = message_events(r["log"])
    check(set(scan) == set(mine), "message keys differ: scan %s moray %s" % (sorted(scan), sorted(mine)))
    check(len(scan) == len(samples_truth()), "moray-scan judged %d messages, samples have %d"
          % (len(scan), len(samples_truth())))
    for k in set(scan) & set(mine):
        for fld in sorted(set(scan[k]) | set(mine[k])):
            if fld in RUN_SPECIFIC_FIELDS:
                continue
            check(scan[k].get(fld) == mine[k].get(fld), "%s %s: scan %r moray %r"
                  % (k, fld, scan[k].get(fld), mine[k].get(fld)))
    kinds = sorted({e.get("event") for e in scan_events})
    check("db" in kinds and "message" in kinds, "event types compared: %r" % kinds)
    a, b = comparable(scan_events), comparable(r["log"])
    only_scan = [x for x in a if x not in b]
    only_moray = [x for x in b if x not in a]
    check(a == b, "logs differ beyond timestamps (%d vs %d events); only moray-scan: %s; "
          "only moray: %s" % (len(a), len(b), only_scan[:3], only_moray[:3]))
    metrics_checks(inp, r, mine, app_prom, scan_prom, scan_json)


def read_metrics(path):
    """Parse a Prometheus text file: {sample name + labels: value}, and its families."""
    from prometheus_client.parser import text_string_to_metric_families
    with open(path) as f:
        text = f.read()
    fams = list(text_string_to_metric_families(text))
    vals = {}
    for fam in fams:
        check(fam.name.startswith("moray_"), "metric %s: not moray_<group>_<name>" % fam.name)
        check(fam.type in ("counter", "gauge"), "metric %s: type %s" % (fam.name, fam.type))
        check(fam.documentation != "", "metric %s: no HELP" % fam.name)
        for smp in fam.samples:
            check(smp.name.endswith("_total") == (fam.type == "counter"),
                  "sample %s of a %s" % (smp.name, fam.type))
            key = smp.name + "".join('{%s="%s"}' % kv for kv in sorted(smp.labels.items()))
            vals[key] = smp.value
    # every sample has its own # HELP and # TYPE line
    names = {ln.split()[0] for ln in text.splitlines() if ln and not ln.startswith("#")}
    names = {n.split("{")[0] for n in names}
    for n in names:
        check("# HELP %s " % n in text and "# TYPE %s " % n in text, "%s: HELP/TYPE missing" % n)
    return vals


def metrics_checks(inp, r, msgs, app_prom, scan_prom, scan_json):
    """--metrics-file (moray, moray-scan) and --stats-json: parsed, and the key counters match the log."""
    if not check(os.path.exists(app_prom) and os.path.exists(scan_prom), "metrics files missing"):
        return
    app = read_metrics(app_prom)
    scan = read_metrics(scan_prom)
    verdicts = [e["verdict"] for e in msgs.values()]
    n = len(rdpcap(inp))
    for name, want in (("moray_engine_pkts_total", n),
                       ("moray_engine_msgs_total", len(verdicts)),
                       ("moray_engine_msgs_clean_total", verdicts.count("clean")),
                       ("moray_engine_msgs_infected_total", verdicts.count("infected")),
                       ("moray_scan_messages_total", len(verdicts))):
        check(app.get(name) == want, "moray %s = %r, want %d" % (name, app.get(name), want))
        check(scan.get(name) == want, "moray-scan %s = %r, want %d" % (name, scan.get(name), want))
    check(app.get("moray_log_written_total") == len(r["log"]),
          "moray_log_written_total %r, log has %d events" % (app.get("moray_log_written_total"),
                                                            len(r["log"])))
    check(app.get("moray_engine_hold_msgs") == 0, "gauge moray_engine_hold_msgs %r"
          % app.get("moray_engine_hold_msgs"))
    check(any(k.startswith('moray_port_rx_pkts_total{port="') for k in app), "no per-port samples")
    # the engine's counters are the same list in both programs
    only = sorted(set(k for k in scan) - set(k for k in app))
    check(not only, "moray-scan metrics missing from moray: %r" % only[:5])
    with open(scan_json) as f:
        js = json.load(f)
    flat = {"moray_%s_%s_total" % (g, c): v for g, cs in js.items() for c, v in cs.items()}
    diff = [k for k, v in flat.items() if k in scan and scan[k] != v]
    check(not diff and len([k for k in flat if k in scan]) > 100,
          "--stats-json and --metrics-file disagree: %r" % diff[:5])


def case_no_db_holds(tmp):
    """A missing database at start: moray starts, logs db invalid, holds."""
    inp = os.path.join(ARGS.samples, "01_swaks_plain.pcap")
    r = run_moray(tmp, 1, inp, extra=["--db", os.path.join(tmp, "nope.mdb")])
    check(r["rc"] == 0, "missing db: exit %d (must start anyway): %s" % (r["rc"], r["err"][-300:]))
    dbev = [e for e in r["log"] if e.get("event") == "db"]
    check(len(dbev) >= 1 and dbev[0]["state"] == "invalid", "db events: %r" % dbev)
    # The clean message was held, then answered 451 at exit: never forwarded.
    msgs = [e for e in r["log"] if e.get("event") == "message"]
    check(any(e.get("action") in ("held", "tempfailed") for e in msgs),
          "message not held without a database: %r" % msgs)
    sent = b"".join(payload(x) for x in map(bytes, rdpcap(inp)) if flow_of(x) and flow_of(x)[3] == 25)
    fwd = b"".join(payload(x) for x in r["out1"] if flow_of(x) and flow_of(x)[3] == 25)
    check(b"\r\n.\r\n" in sent and b"\r\n.\r\n" not in fwd, "end of message forwarded without a database")
    check(any(payload(x).startswith(b"451 4.7.1") for x in r["out0"]), "no 451 at shutdown")


def case_blocklist(tmp):
    """--blocklist FILE: a bad file at start stops moray with the file's
    line-numbered error; a good one is loaded (a "load" event), reloaded when
    the file changes, and a bad rewrite keeps the previous list (logged with
    its line number); /moray/block adds a prefix with an expiry, kept across
    a reload of the file, and /moray/unblock removes it; every change is a
    "blocklist" event. The client of the replayed session is blocked from
    the start: none of its frames reaches the server side (port 1)."""
    import telemetry
    blf = os.path.join(tmp, "block.txt")
    with open(blf, "w") as f:
        f.write("# test\n192.0.2.0/24\n10.0.0.1/8\n")
    inp = os.path.join(ARGS.samples, "01_swaks_plain.pcap")
    r = run_moray(tmp, 0, inp, extra=["--blocklist", blf], timeout=60)
    check(r["rc"] != 0 and "line 3" in r["out"] + r["err"],
          "bad blocklist at start: exit %d, %r" % (r["rc"], (r["out"] + r["err"])[-300:]))
    with open(blf, "w") as f:
        f.write("# test\n192.0.2.1\n198.51.100.0/24\n")
    prefix = "mrybl%d" % os.getpid()
    log = os.path.join(tmp, "bl.jsonl")
    cmd = [ARGS.moray] + eal_args(tmp, 3, inp, prefix) + \
        ["--", "-p", "3", "--log", log, "--blocklist", blf, "--idle-exit", "12"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            line = p.stdout.readline()
            out.append(line)
            if "running" in line or line == "":
                break
        check(any("blocklist %s: 2 prefixes" % blf in ln for ln in out),
              "no load line at start: %r" % out[-5:])

        def listed():
            d = telemetry.query(prefix, "/moray/blocklist") or {}
            return d.get("prefixes", []), d
        got, d = listed()
        check(sorted(got) == ["192.0.2.1/32", "198.51.100.0/24"], "list at start: %r" % d)
        d = telemetry.query(prefix, "/moray/block,2001:db8::/32,3600")
        check(d and d.get("ok") == 1 and d.get("entries") == 3, "block: %r" % d)
        d = telemetry.query(prefix, "/moray/block,192.0.2.300")
        check(d and d.get("ok") == 0 and "error" in d, "block of a bad prefix: %r" % d)
        got, d = listed()
        i = got.index("2001:db8::/32") if "2001:db8::/32" in got else -1
        check(i >= 0 and 3500 < d["expires_in_s"][i] <= 3600 and d["expires"][i].endswith("Z"),
              "runtime block with expiry: %r" % d)
        # the file changes: reloaded within the control loop's second
        time.sleep(1.1)   # a new mtime even on coarse file systems
        with open(blf + ".new", "w") as f:
            f.write("203.0.113.0/24\n")
        os.rename(blf + ".new", blf)
        time.sleep(2.5)
        got, d = listed()
        check(sorted(got) == ["2001:db8::/32", "203.0.113.0/24"],
              "after the file changed: %r (runtime block kept, file list replaced)" % d)
        # a bad rewrite keeps the list
        with open(blf + ".new", "w") as f:
            f.write("203.0.113.0/24\n\n2001:db8::/129\n")
        os.rename(blf + ".new", blf)
        time.sleep(2.5)
        got, d = listed()
        check(sorted(got) == ["2001:db8::/32", "203.0.113.0/24"], "after a bad file: %r" % d)
        d = telemetry.query(prefix, "/moray/unblock,2001:db8::/32")
        check(d and d.get("ok") == 1 and d.get("entries") == 1, "unblock: %r" % d)
        d = telemetry.query(prefix, "/moray/unblock,2001:db8::/32")
        check(d and d.get("ok") == 0, "unblock of a prefix not listed: %r" % d)
        rest, _ = p.communicate(timeout=60)
        out.append(rest)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)
    text = "".join(out)
    check(p.returncode == 0, "exit %d: %s" % (p.returncode, text[-500:]))
    check("previous list kept" in text and "line 3" in text,
          "bad rewrite not reported with its line: %r" % text[-800:])
    check_schema(log)
    with open(log) as f:
        ev = [json.loads(ln) for ln in f if '"blocklist"' in ln]
    acts = [(e["action"], e["prefix"], e["entries"]) for e in ev]
    check(acts == [("load", None, 2), ("block", "2001:db8::/32", 3), ("load", None, 2),
                   ("unblock", "2001:db8::/32", 1)], "blocklist events: %r" % acts)
    check(ev and ev[1]["expires"] is not None and ev[0]["expires"] is None,
          "expiry in the events: %r" % ev[:2])
    # the blocked client's frames never reached the server side
    out1 = [bytes(x) for x in rdpcap(os.path.join(tmp, "out1.pcap"))] \
        if os.path.exists(os.path.join(tmp, "out1.pcap")) else []
    leaked = [f for f in out1 if IP in Ether(f) and Ether(f)[IP].src == "192.0.2.1"]
    check(not leaked, "%d frames of the blocked client reached port 1" % len(leaked))


def case_sigterm(tmp):
    """SIGTERM: clean exit 0, final statistics, log flushed, telemetry live before."""
    inp = os.path.join(ARGS.samples, "01_swaks_plain.pcap")
    prefix = "mryterm%d" % os.getpid()
    log = os.path.join(tmp, "term.jsonl")
    cmd = [ARGS.moray] + eal_args(tmp, 3, inp, prefix) + ["--", "-p", "3", "--log", log]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    line = ""
    while time.time() < deadline:
        line = p.stdout.readline()
        if "running" in line or line == "":
            break
    check("running" in line, "moray did not report running")
    time.sleep(1)
    # DPDK telemetry command names (dpdk-app/telemetry.c), not file paths
    cmds = ["/moray/" + c for c in ("stats", "db", "alarm", "hold", "ports", "workers",
                                    "counters")]
    tel = subprocess.run(["/usr/bin/python3", "/usr/bin/dpdk-telemetry.py", "-f", prefix],
                         input="".join(c + "\n" for c in cmds),
                         capture_output=True, text=True, timeout=30)
    docs = {}
    for ln in tel.stdout.splitlines():
        ln = ln.strip()
        if ln.startswith("{"):
            try:
                docs.update(json.loads(ln))
            except ValueError:
                pass
    for c in cmds:
        check(c in docs, "telemetry %s missing (%s)" % (c, tel.stdout[-300:]))
    if "/moray/stats" in docs:
        check(docs["/moray/stats"].get("pkts") == len(rdpcap(inp)),
              "telemetry pkts %r" % docs["/moray/stats"].get("pkts"))
    if "/moray/db" in docs:
        check(docs["/moray/db"].get("state") == "invalid", "db state without --db")
    if "/moray/alarm" in docs:
        check(docs["/moray/alarm"].get("alarm") == 1 and "db_invalid" in docs["/moray/alarm"]["reason"],
              "alarm without a database: %r" % docs["/moray/alarm"])
    p.send_signal(signal.SIGTERM)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        fail("SIGTERM: moray did not exit")
    shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)
    check(p.returncode == 0, "SIGTERM exit %d: %s" % (p.returncode, err[-300:]))
    check("final:" in out, "SIGTERM: no final statistics")
    check_schema(log)
    with open(log) as f:
        check(any('"event":"db"' in x for x in f), "log not flushed at SIGTERM")


def crafted_pcap(tmp, name, sessions):
    """A capture made by tests/tools/mkpcap.py from a session spec."""
    import mkpcap
    out = os.path.join(tmp, name)
    exp = mkpcap.build_from_spec({"sessions": sessions}, out)
    return os.path.join(out, exp["pcap"])


SMUGGLED = ("Subject: hello\r\n\r\nhello\n.\r\nMAIL FROM:<evil@attacker.example>\r\n"
            "RCPT TO:<victim@server.example>\r\nDATA\r\nSubject: smuggled\r\n\r\n"
            "wire the money\r\n")


def case_smuggle_rejected(tmp):
    """SMTP smuggling on the wire: a '.' line ended by a bare LF inside DATA
    (Postfix 3.7 would end the message there) is withheld with everything
    after it; the client gets 554 5.5.2, the server a reset and none of the
    smuggled bytes; moray and moray-scan log the same evasion."""
    db = database(tmp)
    if db is None:
        return   # database() already failed the test
    inp = crafted_pcap(tmp, "smuggle", [{"cport": 44000, "messages": [{"data": SMUGGLED}]}])
    r = run_moray(tmp, 0, inp, extra=["--db", db])
    check(r["rc"] == 0, "moray exit %d: %s" % (r["rc"], r["err"][-300:]))
    to_client = [payload(x) for x in r["out0"] if flow_of(x) and flow_of(x)[1] == 25]
    to_server = [x for x in r["out1"] if flow_of(x) and flow_of(x)[3] == 25]
    check(any(x.startswith(b"554 5.5.2") for x in to_client),
          "client not answered 554 5.5.2: %r" % to_client[-3:])
    fwd = b"".join(payload(x) for x in to_server)
    check(b"MAIL FROM:<alice" in fwd, "the envelope was not forwarded")
    check(b"evil@attacker" not in fwd and b"hello\n." not in fwd,
          "smuggled bytes reached the server")
    check(any(Ether(x)[TCP].flags & 0x04 for x in to_server), "server side not reset")
    msgs = [e for e in r["log"] if e.get("event") == "message"]
    check(len(msgs) == 1 and msgs[0]["verdict"] == "evasion" and msgs[0]["action"] == "rejected"
          and "smtp_bare_lf_end_of_data" in msgs[0]["evasions"]
          and msgs[0]["server_reply"] is None, "message events: %r" % msgs)
    scan_log = os.path.join(tmp, "smuggle-scan.jsonl")
    p = subprocess.run([ARGS.scan, "--db", db, "--log", scan_log, inp],
                       capture_output=True, text=True)
    check(p.returncode == 0, "moray-scan exit %d" % p.returncode)
    with open(scan_log) as f:
        scan = [json.loads(x) for x in f if x.strip()]
    check(comparable([e for e in scan if e.get("event") == "message"]) == comparable(msgs),
          "moray-scan logs the message otherwise: %r" % scan)


def case_sigterm_in_data(tmp):
    """SIGTERM while a message is in DATA: the client gets 421 4.3.2, the
    server side a reset, the message is logged tempfail/tempfailed."""
    db = database(tmp)
    if db is None:
        return   # database() already failed the test
    inp = crafted_pcap(tmp, "indata", [{"cport": 44010, "close": "none", "messages": [
        {"mime": {"subject": "long", "body": "Hello Bob,\r\n"}, "unfinished": True}]}])
    prefix = "mrydata%d" % os.getpid()
    log = os.path.join(tmp, "indata.jsonl")
    for f in ("out0.pcap", "out1.pcap"):
        if os.path.exists(os.path.join(tmp, f)):
            os.unlink(os.path.join(tmp, f))
    cmd = [ARGS.moray] + eal_args(tmp, 2, inp, prefix) + ["--", "-p", "3", "--db", db,
                                                          "--log", log]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    line = ""
    while time.time() < deadline:
        line = p.stdout.readline()
        if "running" in line or line == "":
            break
    check("running" in line, "moray did not report running")
    time.sleep(2)
    p.send_signal(signal.SIGTERM)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        fail("SIGTERM: moray did not exit")
    shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)
    check(p.returncode == 0, "SIGTERM exit %d: %s" % (p.returncode, err[-300:]))
    check_schema(log)
    out0 = [bytes(x) for x in rdpcap(os.path.join(tmp, "out0.pcap"))]
    out1 = [bytes(x) for x in rdpcap(os.path.join(tmp, "out1.pcap"))]
    to_client = [x for x in out0 if flow_of(x) and flow_of(x)[1] == 25]
    to_server = [x for x in out1 if flow_of(x) and flow_of(x)[3] == 25]
    check(any(payload(x).startswith(b"421 4.3.2") for x in to_client),
          "client not answered 421 at SIGTERM: %r" % [payload(x) for x in to_client][-3:])
    check(any(Ether(x)[TCP].flags & 0x04 for x in to_server), "server side not reset at SIGTERM")
    with open(log) as f:
        msgs = [json.loads(x) for x in f if '"event":"message"' in x]
    check(len(msgs) == 1 and msgs[0]["verdict"] == "tempfail" and
          msgs[0]["action"] == "tempfailed" and msgs[0].get("reason") == "shutdown",
          "message events at SIGTERM: %r" % msgs)


CASES = {n[5:]: f for n, f in globals().items() if n.startswith("case_")}


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--moray", required=True)
    ap.add_argument("--scan", required=True)
    ap.add_argument("--sigc", required=True)
    ap.add_argument("--samples", required=True)
    ap.add_argument("--sigs", default="")
    ap.add_argument("cases", nargs="*")
    ARGS = ap.parse_args()
    if not ARGS.sigs:
        ARGS.sigs = os.path.join(os.path.dirname(os.path.abspath(ARGS.samples)), "data", "sigs",
                                 "test-eicar-clamexe.ndb")
    if os.geteuid() != 0:
        print("SKIP-REASON: not-root (DPDK virtual devices need root here)")
        return 77
    missing = [p for p in (ARGS.moray, ARGS.scan, ARGS.sigc, ARGS.sigs,
                           os.path.join(ARGS.samples, "samples.json"))
               if not os.path.exists(p)]
    if missing:
        print("FAIL: missing " + ", ".join(missing))
        return 1
    names = ARGS.cases or sorted(CASES)
    tmp = tempfile.mkdtemp(prefix="moray-app-test-")
    try:
        for n in names:
            if n not in CASES:
                fail("unknown case " + n)
                continue
            before = len(FAILS)
            t0 = time.time()
            CASES[n](tmp)
            print("%s %s (%.1fs)" % ("ok  " if len(FAILS) == before else "FAIL", n, time.time() - t0),
                  flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d failure(s)" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
