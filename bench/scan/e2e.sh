#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# moray-scan end to end (capture in, verdicts out) against references on the
# same machine, in one run, over the same messages:
#   - a plain hs_scan block-mode loop over the already-decoded bytes (raw
#     message + header blocks + decoded parts) with the same database
#     (bench_scan's "hs block"), and
#   - ClamAV clamscan with the same .ndb signatures over the same messages.
# Every corpus message is carried REPEAT times (default 10) in a generated
# capture (bench/gen/moray-gen.py --each --repeat); clamscan scans the
# corpus once and its time is multiplied. Times are CPU seconds
# (user+sys), start-up included for moray-scan and clamscan alike.
#
#   bench/scan/e2e.sh [BUILD_DIR] [DATA_DIR]       (defaults: build tests/data)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-build}
DATA=${2:-$HERE/../../tests/data}
SIGS="$DATA/sigs/rfxn-2013.ndb $DATA/sigs/test-eicar-clamexe.ndb"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

"$BUILD/engine/tools/moray-sigc" compile -o "$tmp/sigs.mdb" $SIGS >/dev/null
REPEAT=${REPEAT:-10}
/usr/bin/python3 "$HERE/../gen/moray-gen.py" --each --repeat "$REPEAT" --concurrency 16 \
	--mail "$DATA/mail" -o "$tmp/corpus.pcap" >/dev/null
/usr/bin/python3 "$HERE/decode_corpus.py" "$DATA/mail" "$tmp/corpus" >/dev/null
"$BUILD/bench/scan/bench_scan" --reps 3 --loops 10 "$tmp/corpus" $SIGS >"$tmp/bench.out"

/usr/bin/python3 - "$BUILD" "$tmp" "$DATA/mail" "$REPEAT" $SIGS <<'PY'
import json, os, re, resource, subprocess, sys
build, tmp, mail, repeat, sigs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]

def cpu(cmd):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd, capture_output=True)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), p

bench = open(os.path.join(tmp, "bench.out")).read()
block_s = float(re.search(r"block_full_s=([0-9.]+)", bench).group(1))
raw_bytes = int(re.search(r"raw (\d+) bytes", bench).group(1))
best_scan, log = 1e9, os.path.join(tmp, "log.jsonl")
for _ in range(3):
    t, p = cpu([os.path.join(build, "engine/tools/moray-scan"), "--quiet",
                "--db", os.path.join(tmp, "sigs.mdb"), "--log", log,
                os.path.join(tmp, "corpus.pcap")])
    if p.returncode != 0:
        sys.exit("moray-scan failed: " + p.stderr.decode()[-500:])
    best_scan = min(best_scan, t)
msgs = [json.loads(l) for l in open(log) if '"event":"message"' in l]
msg_bytes = sum(m["size"] for m in msgs)
infected = sum(1 for m in msgs if m["verdict"] == "infected")
pcap_mb = os.path.getsize(os.path.join(tmp, "corpus.pcap")) / 1e6
print("corpus: %d messages in the capture (%.1f MB pcap), %d message bytes, "
      "%d infected" % (len(msgs), pcap_mb, msg_bytes, infected))
print("moray-scan end to end: %.3f s CPU, %.1f MB/s of messages" %
      (best_scan, msg_bytes / best_scan / 1e6))
# block loop normalised to the same message bytes (the decoded corpus may
# count messages the capture normalised to CRLF slightly differently)
block_norm = block_s * msg_bytes / raw_bytes
print("hs_scan block loop over decoded bytes: %.3f s per corpus (%d raw bytes)"
      % (block_s, raw_bytes))
print("ratio moray-scan / hs block (same message bytes): %.2f  (goal >= 0.5)" %
      (block_norm / best_scan))
t, p = cpu(["clamscan", "--no-summary", "-i", "-r", mail] +
           [x for s in sigs for x in ("-d", s)])
found = sum(1 for l in p.stdout.decode().splitlines() if l.endswith(" FOUND"))
# clamscan over the corpus once; the capture carries it @repeat times
print("clamscan: %.3f s CPU for the corpus once (%d found), x%d = %.3f s" %
      (t, found, repeat, t * repeat))
print("ratio clamscan / moray-scan: %.0fx  (goal >= 50x)" % (t * repeat / best_scan))
PY
