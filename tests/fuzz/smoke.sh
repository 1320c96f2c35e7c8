#!/bin/sh
# Short smoke run of every fuzz target: seeds from tests/fuzz/corpus/<t>/,
# then a bounded number of mutations. Any crash, leak or UBSan report fails.
set -eu
DIR=$1
RUNS=${FUZZ_RUNS:-20000}
HERE=$(cd "$(dirname "$0")" && pwd)
found=0
for exe in "$DIR"/fuzz_*; do
	[ -f "$exe" ] && [ -x "$exe" ] || continue
	found=1
	t=$(basename "$exe")
	t=${t#fuzz_}
	work=$(mktemp -d)
	[ -d "$HERE/corpus/$t" ] && cp -r "$HERE/corpus/$t/." "$work/" 2>/dev/null || true
	echo "fuzz $t: $RUNS runs"
	"$exe" -runs="$RUNS" -max_len=4096 -timeout=10 -rss_limit_mb=2048 "$work" \
		>"$work.log" 2>&1 || { tail -50 "$work.log"; exit 1; }
	rm -rf "$work" "$work.log"
done
[ "$found" = 1 ] || echo "no fuzz targets built"
