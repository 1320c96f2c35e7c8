#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""telemetry.py PREFIX COMMAND: send one DPDK telemetry command to the
moray running with --file-prefix PREFIX and print the JSON answer (the
value under the command's key). Exit 1 when the socket cannot be reached
or the answer is not JSON."""
import json
import socket
import sys


def query(prefix, cmd, timeout=5.0):
    path = "/var/run/dpdk/%s/dpdk_telemetry.v2" % prefix
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.recv(4096)
        s.send(cmd.encode())
        return json.loads(s.recv(1 << 22).decode()).get(cmd.split(",")[0])
    finally:
        s.close()


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    try:
        print(json.dumps(query(argv[1], argv[2]), sort_keys=True))
    except (OSError, ValueError) as e:
        sys.stderr.write("telemetry %s: %s\n" % (argv[2], e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
