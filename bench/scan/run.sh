#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# One run, same machine, same bytes: moray's scan stage vs plain Hyperscan
# (streaming in the same chunks, and block mode) vs ClamAV's clamscan with
# the same .ndb signatures over the same messages.
#
#   bench/scan/run.sh [BUILD_DIR] [DATA_DIR]      (defaults: build tests/data)
#
# BUILD_DIR must hold bench/scan/bench_scan (bench/meson.build: subdir('scan')).
# ClamAV: Debian package clamav; -d with the .ndb files, so no freshclam.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-build}
DATA=${2:-$HERE/../../tests/data}
BENCH=$BUILD/bench/scan/bench_scan
SIGS="$DATA/sigs/rfxn-2013.ndb $DATA/sigs/test-eicar-clamexe.ndb"
[ -x "$BENCH" ] || { echo "run.sh: $BENCH not built" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

python3 "$HERE/decode_corpus.py" "$DATA/mail" "$tmp/corpus"
"$BENCH" --reps 5 --loops 20 "$tmp/corpus" $SIGS | tee "$tmp/bench.out"
moray_s=$(sed -n 's/^result moray_full_s=\([0-9.]*\).*/\1/p' "$tmp/bench.out")

if ! command -v clamscan >/dev/null 2>&1; then
	echo "clamscan: not installed (apt-get install clamav), skipped"
	exit 0
fi
python3 - "$moray_s" "$DATA/mail" $SIGS <<'PY'
import os, resource, subprocess, sys, time
moray = float(sys.argv[1])
mail, sigs = sys.argv[2], sys.argv[3:]
cmd = ["clamscan", "--no-summary", "-i"] + [a for s in sigs for a in ("-d", s)]

def run(args):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = subprocess.run(cmd + args, capture_output=True, text=True).stdout
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, cpu, out

one = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"moray-bench-one.{os.getpid()}")
with open(one, "w") as f:
    f.write("x\n")
lw, lc, _ = run([one])                 # start-up + signature load
os.unlink(one)
w, c, out = run(["-r", mail])
found = sum(1 for l in out.splitlines() if l.endswith(" FOUND"))
print(f"clamscan: {w:.3f} s wall, {c:.3f} s CPU for the corpus "
      f"(start-up + load {lw:.3f} s wall), {found} messages found")
print(f"ratio clamscan / moray scan stage (raw+headers+parts): wall {w / moray:.0f}x, CPU {c / moray:.0f}x")
PY

# clamd (Debian clamav-daemon) with DisableCache: the daemon keeps its
# signatures loaded, so this is ClamAV's best case. Talks the clamd socket
# protocol directly (no clamdscan needed).
if ! command -v clamd >/dev/null 2>&1 && [ ! -x /usr/sbin/clamd ]; then
	echo "clamd: not installed (apt-get install clamav-daemon), skipped"
	exit 0
fi
CLAMD=$(command -v clamd || echo /usr/sbin/clamd)
mkdir -p "$tmp/db"
cp $SIGS "$tmp/db/"
cat >"$tmp/clamd.conf" <<CONF
LocalSocket $tmp/clamd.sock
DatabaseDirectory $tmp/db
Foreground yes
DisableCache yes
LogFile $tmp/clamd.log
PidFile $tmp/clamd.pid
TemporaryDirectory $tmp
CONF
"$CLAMD" --config-file="$tmp/clamd.conf" >"$tmp/clamd.out" 2>&1 &
clamd_pid=$!
trap 'kill $clamd_pid 2>/dev/null; wait $clamd_pid 2>/dev/null; rm -rf "$tmp"' EXIT INT TERM
python3 - "$moray_s" "$DATA/mail" "$tmp/clamd.sock" <<'PY'
import os, socket, sys, time
moray, mail, sock = float(sys.argv[1]), sys.argv[2], sys.argv[3]

def cmd(c):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall(b"z" + c.encode() + b"\0")
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
    s.close()
    return out.decode(errors="replace")

for _ in range(600):
    try:
        if cmd("PING").startswith("PONG"):
            break
    except OSError:
        pass
    time.sleep(0.1)
else:
    sys.exit("clamd did not start")
best, found = 1e9, 0
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(mail) for f in fs)
for _ in range(3):
    t0 = time.monotonic()
    found = sum(1 for f in files if cmd("SCAN " + os.path.abspath(f)).rstrip("\0").endswith("FOUND"))
    best = min(best, time.monotonic() - t0)
print(f"clamd (DisableCache yes): {best:.3f} s wall for the corpus, one SCAN per message, "
      f"{found} messages found")
print(f"ratio clamd / moray scan stage (raw+headers+parts): {best / moray:.0f}x")
PY
