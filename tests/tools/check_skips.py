#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Count the skipped tests of the last `meson test` run and fail unless every
skip states a reason README.md allows.

  check_skips.py BUILD_DIR [README]

A test that skips (exit 77) prints `SKIP-REASON: <key> (...)`; the allowed
keys are the ones listed in README.md between the lines
`<!-- allowed-skip-reasons -->` and `<!-- /allowed-skip-reasons -->` as
"- `key`: why". Reads BUILD_DIR/meson-logs/testlog.json. Exit 0 when no
test skipped without an allowed reason, 1 otherwise."""
import json
import os
import re
import sys


def allowed_reasons(readme):
    text = open(readme, encoding="utf-8").read()
    m = re.search(r"<!-- allowed-skip-reasons -->(.*?)<!-- /allowed-skip-reasons -->",
                  text, re.S)
    if m is None:
        sys.exit("check_skips: %s has no allowed-skip-reasons list" % readme)
    return set(re.findall(r"^- `([a-z0-9-]+)`", m.group(1), re.M))


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    build = argv[1]
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    readme = argv[2] if len(argv) > 2 else os.path.join(src, "README.md")
    allowed = allowed_reasons(readme)
    log = os.path.join(build, "meson-logs", "testlog.json")
    if not os.path.exists(log):
        print("check_skips: %s missing (no test run?)" % log)
        return 1
    total = skipped = 0
    bad = []
    by_reason = {}
    for line in open(log, encoding="utf-8"):
        if not line.strip():
            continue
        t = json.loads(line)
        total += 1
        if t.get("result") != "SKIP":
            continue
        skipped += 1
        out = (t.get("stdout") or "") + (t.get("stderr") or "")
        keys = re.findall(r"^SKIP-REASON: ([a-z0-9-]+)", out, re.M)
        if not keys or keys[-1] not in allowed:
            bad.append("%s (%s)" % (t["name"], ("reason '%s' is not in README.md's list"
                                                % keys[-1]) if keys else "no SKIP-REASON"))
        else:
            by_reason.setdefault(keys[-1], []).append(t["name"])
    print("tests: %d run, %d skipped%s" % (total, skipped, "".join(
        "; %s: %d" % (k, len(v)) for k, v in sorted(by_reason.items()))))
    for b in bad:
        print("FAIL skipped without an allowed reason: " + b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
