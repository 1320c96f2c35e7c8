#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# MIME decoding throughput: moray's parser and Python's email package on the
# same corpus, each as a ratio to memcpy of the same bytes measured in the
# same run (bench/mime/mime_bench.c reports the memcpy figure).
#
# usage: bench/mime/run.sh [iterations]   (from the repository root, after
#        `meson setup build && ninja -C build` built the engine library)
# BUILD: build directory (default build/); MORAY_MAIL and MORAY_SAMPLES: the
# mail corpus directory and the directory of .eml samples Python parses
# (mime_bench.c reads its own corpus; keep the two pointing at the same data).
set -eu
N=${1:-50}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
BIN=$BUILD/bench/mime_bench
MAIL=${MORAY_MAIL:-$ROOT/tests/data/mail}
SAMPLES=${MORAY_SAMPLES:-$ROOT/tests/data/samples}
. "$ROOT/bench/lib/env.sh"
bench_env "$BUILD"
mkdir -p "$BUILD/bench"
# not wired into bench/meson.build: built here against the engine library
cc -std=c11 -O2 -D_GNU_SOURCE -Wall -Wextra -I"$ROOT/engine/include" \
	"$ROOT/bench/mime/mime_bench.c" "$BUILD/engine/libmoray_engine.a" \
	$(pkg-config --libs libhs jemalloc libsodium) -lpthread -lm -o "$BIN"
echo "moray: mime_bench feeds every file from memory to mry_mime_feed in 1448-byte pieces (headers, multipart, base64/QP/uuencode decoding); memcpy: copies the same bytes; python: email.message_from_bytes + get_payload(decode=True) of every leaf, same files"
OUT=$("$BIN" -n "$N" "$MAIL" "$SAMPLES")
echo "$OUT"
MEMCPY=$(echo "$OUT" | sed -n 's/.*memcpy_mbps=\([0-9.]*\).*/\1/p')
MIME=$(echo "$OUT" | sed -n 's/.*mime_mbps=\([0-9.]*\).*/\1/p')
PYN=$(( N / 10 > 0 ? N / 10 : 1 ))
PY=$(/usr/bin/python3 - "$PYN" "$MAIL" "$SAMPLES" <<'PYEOF'
import email, email.policy, glob, os, sys, time
n = int(sys.argv[1])
paths = [p for p in glob.glob(os.path.join(sys.argv[2], '**'), recursive=True) if os.path.isfile(p)]
paths += glob.glob(os.path.join(sys.argv[3], '*.eml'))
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
bench_env "$BUILD"
