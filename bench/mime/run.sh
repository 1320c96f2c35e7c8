#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# MIME decoding throughput: moray's parser and Python's email package on the
# same corpus, each as a ratio to memcpy of the same bytes measured in the
# same run (bench/mime/mime_bench.c reports the memcpy figure).
#
# usage: bench/mime/run.sh [iterations]   (from the repository root, after
#        `meson setup build && ninja -C build` built the engine library)
set -eu
N=${1:-50}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
BIN=$BUILD/bench/mime_bench
mkdir -p "$BUILD/bench"
# not wired into bench/meson.build: built here against the engine library
cc -std=c11 -O2 -D_GNU_SOURCE -Wall -Wextra -I"$ROOT/engine/include" \
	"$ROOT/bench/mime/mime_bench.c" "$BUILD/engine/libmoray_engine.a" \
	$(pkg-config --libs libhs jemalloc libsodium) -lpthread -lm -o "$BIN"
OUT=$("$BIN" -n "$N" "$ROOT/tests/data/mail" "$ROOT/tests/data/samples")
echo "$OUT"
MEMCPY=$(echo "$OUT" | sed -n 's/.*memcpy_mbps=\([0-9.]*\).*/\1/p')
MIME=$(echo "$OUT" | sed -n 's/.*mime_mbps=\([0-9.]*\).*/\1/p')
PYN=$(( N / 10 > 0 ? N / 10 : 1 ))
PY=$(/usr/bin/python3 - "$PYN" "$ROOT/tests/data" <<'PYEOF'
import email, email.policy, glob, os, sys, time
n = int(sys.argv[1])
paths = [p for p in glob.glob(sys.argv[2] + '/mail/**', recursive=True) if os.path.isfile(p)]
paths += glob.glob(sys.argv[2] + '/samples/*.eml')
data = [open(p, 'rb').read() for p in paths]
total = sum(len(d) for d in data)
t0 = time.perf_counter()
for _ in range(n):
    for d in data:
        msg = email.message_from_bytes(d, policy=email.policy.default)
        for part in msg.walk():
            if not part.is_multipart():
                part.get_payload(decode=True)
dt = time.perf_counter() - t0
print("%.3f" % (total * n / dt / 1e6))
PYEOF
)
echo "python_email_mbps=$PY (iterations $PYN)"
awk -v m="$MIME" -v p="$PY" -v c="$MEMCPY" 'BEGIN {
	printf "ratio vs memcpy: moray %.4f  python-email %.6f  (moray/python %.0fx)\n", m / c, p / c, m / p }'
