#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# moray's SMTP payload throughput per worker against a plain Hyperscan
# streaming loop over the same payload bytes, in the same segments, with
# the same database (issue [D], "Benchmark"; goal >= 0.7). One worker's
# engine is what moray-scan runs, so its CPU time over the capture is the
# per-worker cost (pcap reading included, which a NIC port would not pay).
#
#   bench/app/payload.sh [BUILD_DIR] [CAPTURE_MB]      (default build 50)
set -eu
BUILD=${1:-build}
MB=${2:-50}
HERE=$(cd "$(dirname "$0")" && pwd)
SIGS=${MORAY_SIGS:-/work/shared/data/sigs}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

/usr/bin/python3 "$HERE/../gen/moray-gen.py" -o "$tmp/smtp.pcap" --size "$MB" \
	--smtp-share 1.0 --seed 7 >/dev/null
"$BUILD/engine/tools/moray-sigc" compile -o "$tmp/db.mdb" "$SIGS"/*.ndb >/dev/null
"$BUILD/bench/hs_payload" "$tmp/db.mdb" "$tmp/smtp.pcap" 5 >"$tmp/hs.out"
/usr/bin/python3 - "$BUILD" "$tmp" <<'PY'
import re, resource, subprocess, sys
build, tmp = sys.argv[1], sys.argv[2]
hs = open(tmp + "/hs.out").read()
payload = int(re.search(r"payload_bytes=(\d+)", hs).group(1))
hs_s = float(re.search(r"seconds=([0-9.]+)", hs).group(1))
best = 1e9
for _ in range(3):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([build + "/engine/tools/moray-scan", "--quiet", "--db", tmp + "/db.mdb",
                    "--log", "/dev/null", tmp + "/smtp.pcap"], check=True,
                   capture_output=True)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    best = min(best, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
print(hs.strip())
print("plain hyperscan streaming: %.1f MB/s of SMTP payload" % (payload / hs_s / 1e6))
print("moray engine (one worker): %.1f MB/s of SMTP payload (%.3f s CPU)" %
      (payload / best / 1e6, best))
print("ratio moray / plain streaming: %.2f  (goal >= 0.7)" % (hs_s / best))
PY
