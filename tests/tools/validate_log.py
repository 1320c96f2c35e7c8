#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Validate verdict logs (JSON lines) against docs/verdict-log.schema.json.

Usage: validate_log.py LOG.jsonl...   exit 0 when every line of every log is
a JSON object the schema accepts, 1 otherwise (each failure printed with
file, line and the offending field). Tests import it and call
validate_file() / validate_events() on the logs they produce.
"""
import json
import os
import sys

import jsonschema

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                           "docs", "verdict-log.schema.json")
_VALIDATOR = None


def validator():
    global _VALIDATOR
    if _VALIDATOR is None:
        with open(SCHEMA_PATH) as f:
            schema = json.load(f)
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        _VALIDATOR = cls(schema)
    return _VALIDATOR


def validate_events(events, name="log"):
    """Returns a list of error strings, empty when every event is valid."""
    errs = []
    v = validator()
    for i, ev in enumerate(events, 1):
        for e in sorted(v.iter_errors(ev), key=lambda e: list(e.path)):
            where = "/".join(str(p) for p in e.path) or "(event)"
            errs.append("%s: event %d (%s) %s: %s" % (name, i, ev.get("event") if isinstance(ev, dict)
                                                      else "?", where, e.message))
    return errs


def validate_file(path):
    """Returns a list of error strings for the log at @path (missing: no errors)."""
    if not os.path.exists(path):
        return []
    events, errs = [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                events.append(json.loads(line))
            except ValueError as e:
                errs.append("%s:%d: not JSON: %s" % (path, n, e))
    return errs + validate_events(events, path)


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip())
        return 2
    errs = []
    for p in argv[1:]:
        if not os.path.exists(p):
            errs.append("%s: no such log" % p)
            continue
        errs += validate_file(p)
    for e in errs:
        print("INVALID " + e)
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
