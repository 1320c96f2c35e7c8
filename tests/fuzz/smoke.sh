#!/bin/sh
# Short smoke run of every fuzz target: seeds from tests/fuzz/corpus/<t>/,
# then a bounded number of mutations. Any crash, leak or UBSan report fails;
# so does a target that was not built or a seed corpus that is missing or
# empty. The targets are the ones tests/fuzz/meson.build lists (one per
# parser: decode, ipfrag, reasm, smtp, mime, sigsrc, sigdb).
#   smoke.sh BUILD_FUZZ_DIR/tests/fuzz
set -eu
DIR=${1:?usage: smoke.sh BUILD_FUZZ_DIR/tests/fuzz}
RUNS=${FUZZ_RUNS:-20000}
HERE=$(cd "$(dirname "$0")" && pwd)
TARGETS=$(sed -n "/^fuzz_targets = \[/,/^\]/s/^ *'\([a-z0-9_]*\)',*$/\1/p" "$HERE/meson.build")
[ -n "$TARGETS" ] || { echo "FAIL: no fuzz targets listed in $HERE/meson.build"; exit 1; }
fail=0
for t in $TARGETS; do
	exe=$DIR/fuzz_$t
	if [ ! -x "$exe" ]; then
		echo "FAIL fuzz $t: $exe missing (not built; meson setup ... -Dfuzz=true with clang)"
		fail=1
		continue
	fi
	if [ ! -d "$HERE/corpus/$t" ] || [ -z "$(ls -A "$HERE/corpus/$t")" ]; then
		echo "FAIL fuzz $t: seed corpus $HERE/corpus/$t missing or empty"
		fail=1
		continue
	fi
	work=$(mktemp -d)
	cp -r "$HERE/corpus/$t/." "$work/"
	echo "fuzz $t: $(ls "$HERE/corpus/$t" | wc -l) seeds, $RUNS runs"
	if ! "$exe" -runs="$RUNS" -max_len=4096 -timeout=10 -rss_limit_mb=2048 "$work" \
		>"$work.log" 2>&1; then
		tail -50 "$work.log"
		echo "FAIL fuzz $t"
		fail=1
	fi
	rm -rf "$work" "$work.log"
done
[ "$fail" = 0 ] || exit 1
echo "fuzz smoke: all $(echo $TARGETS | wc -w) targets passed"
