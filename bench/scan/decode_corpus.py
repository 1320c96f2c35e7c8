#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Lay a mail corpus out for bench_scan: OUT/NNNN/raw (the message),
OUT/NNNN/hK (header block K: top level and every part), OUT/NNNN/pK
(decoded leaf body K: base64 / quoted-printable / uuencode undone).

Python's email package stands in for moray's MIME stage so the scan stage
can be measured on its own, on the same bytes for every contender.
"""
import email
import email.policy
import os
import sys


def header_block(part):
    return b"".join(
        f"{k}: {v}\r\n".encode("utf-8", "surrogateescape")
        for k, v in part.items()) + b"\r\n"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: decode_corpus.py MAILDIR OUTDIR")
    src, out = sys.argv[1], sys.argv[2]
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs)
    n = 0
    for path in files:
        raw = open(path, "rb").read()
        if not raw:
            continue
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        d = os.path.join(out, f"{n:04d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "raw"), "wb") as f:
            f.write(raw)
        with open(os.path.join(d, "name"), "w") as f:
            f.write(os.path.relpath(path, src) + "\n")
        h = p = 0
        for part in msg.walk():
            with open(os.path.join(d, f"h{h}"), "wb") as f:
                f.write(header_block(part))
            h += 1
            if part.is_multipart():
                continue
            try:
                body = part.get_payload(decode=True)
            except Exception:
                body = None
            if body is None:
                payload = part.get_payload()
                body = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
            with open(os.path.join(d, f"p{p}"), "wb") as f:
                f.write(body)
            p += 1
        n += 1
    print(f"{n} messages laid out in {out}")


if __name__ == "__main__":
    main()
