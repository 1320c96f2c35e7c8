#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Feed every message of a mail directory to a running clamd over its unix
socket with INSTREAM: the message bytes are read into memory first, then
sent in 1448-byte chunks (the size bench_scan feeds moray), one connection
and one INSTREAM per message. clamd never opens a file: it parses the mail
(MIME, decoding) and scans what it gets from the socket.

  clamd_instream.py SOCKET MAILDIR CLAMD_PID [PASSES]

Prints, best of PASSES (default 3): wall seconds for the corpus seen by
this client, and clamd's own CPU seconds (user+sys from /proc/PID/stat)
over that pass, which leaves out this client's time; then the number of
messages clamd reported FOUND and a result line for scripts.
"""
import os
import socket
import struct
import sys
import time

CHUNK = 1448


def clamd_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3): utime, stime are fields 14, 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def command(path, cmd):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(b"z" + cmd + b"\0")
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
    s.close()
    return out.rstrip(b"\0").decode(errors="replace")


def instream(path, data):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(b"zINSTREAM\0")
    for o in range(0, len(data), CHUNK):
        piece = data[o:o + CHUNK]
        s.sendall(struct.pack("!L", len(piece)) + piece)
    s.sendall(struct.pack("!L", 0))
    out = b""
    while not out.endswith(b"\0"):
        d = s.recv(4096)
        if not d:
            break
        out += d
    s.close()
    return out.rstrip(b"\0").decode(errors="replace")


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    path, mail, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
    passes = int(sys.argv[4]) if len(sys.argv) == 5 else 3
    for _ in range(600):
        try:
            if command(path, b"PING").startswith("PONG"):
                break
        except OSError:
            pass
        time.sleep(0.1)
    else:
        sys.exit("clamd_instream: clamd did not answer PING")
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(mail) for f in fs)
    msgs = [open(f, "rb").read() for f in files]
    msgs = [m for m in msgs if m]
    nbytes = sum(len(m) for m in msgs)
    best_wall = best_cpu = 1e9
    found = 0
    for _ in range(passes):
        c0, t0 = clamd_cpu(pid), time.monotonic()
        replies = [instream(path, m) for m in msgs]
        wall, cpu = time.monotonic() - t0, clamd_cpu(pid) - c0
        bad = [r for r in replies if not (r.endswith(" OK") or r.endswith(" FOUND"))]
        if bad:
            sys.exit("clamd_instream: clamd answered: " + bad[0])
        found = sum(1 for r in replies if r.endswith(" FOUND"))
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    print(f"clamd INSTREAM: {len(msgs)} messages, {nbytes} bytes from memory; "
          f"best of {passes}: {best_wall:.3f} s wall (client side), "
          f"{best_cpu:.3f} s clamd CPU; {found} messages FOUND")
    print(f"result clamd_wall_s={best_wall:.6f} clamd_cpu_s={best_cpu:.6f} "
          f"clamd_found={found} clamd_msgs={len(msgs)} clamd_bytes={nbytes}")


if __name__ == "__main__":
    main()
