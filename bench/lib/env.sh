# SPDX-License-Identifier: BSD-3-Clause
# Sourced by every benchmark script under bench/ (POSIX sh):
#   . "$HERE/../lib/env.sh"
#   bench_env BUILD_DIR
# prints one line naming the machine and the build a ratio was measured
# on: the CPU model from /proc/cpuinfo, the CPUs online, and the meson
# buildtype, optimization and debug_asserts of BUILD_DIR (read from
# meson-info/intro-buildoptions.json, which `meson setup` writes).

bench_env() {
	_be_cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1)
	[ -n "$_be_cpu" ] || _be_cpu=unknown
	_be_build=$(python3 - "$1/meson-info/intro-buildoptions.json" <<'PY' 2>/dev/null
import json, sys
try:
    opts = {o["name"]: o["value"] for o in json.load(open(sys.argv[1]))}
except OSError:
    sys.exit(1)
print("buildtype=%s optimization=%s debug_asserts=%s" % (
    opts.get("buildtype"), opts.get("optimization"),
    str(opts.get("debug_asserts")).lower()))
PY
	) || _be_build="unknown (no meson-info in $1)"
	echo "env: cpu \"$_be_cpu\", $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') CPUs online; build $1: $_be_build"
}
