#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Regenerate moray's bundled example capture (example.pcap) with mkpcap.

Four SMTP connections to 198.51.100.25:25:
  1. a plain clean message (DATA)
  2. the EICAR test file as a base64 attachment, PIPELINING (DATA)
  3. GTUBE, the anti-spam test string, in a text body (DATA)
  4. a clean message sent with BDAT/CHUNKING in two chunks, one line
     starting with '.' (not dot-stuffed under BDAT)
EICAR and GTUBE are built from hex here; the capture carries EICAR only
base64-encoded, so no plain test string is stored in the repository.
Usage: make-example.py OUTDIR   (writes OUTDIR/example.pcap + expectations)
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import mkpcap  # noqa: E402

GTUBE_HEX = ("584a532a43344a44425141444e312e4e53424e332a324944"
             "4e454e2a47545542452d5354414e444152442d414e54492d"
             "5542452d544553542d454d41494c2a432e333458")


def main(out):
    gtube = bytes.fromhex(GTUBE_HEX)
    m_clean = mkpcap.Message(mkpcap.make_message(
        "Quarterly report", b"Hi Bob,\r\n\r\nthe figures are attached to the wiki.\r\n"),
        rcpt_to=["bob@server.example"])
    m_eicar = mkpcap.Message(mkpcap.make_message(
        "Invoice", b"Please find the invoice attached.\r\n",
        attachments=[("invoice.com", mkpcap.eicar())]),
        rcpt_to=["bob@server.example", "carol@server.example"])
    m_gtube = mkpcap.Message(mkpcap.make_message(
        "Cheap watches", b"Buy now!\r\n" + gtube + b"\r\n"),
        rcpt_to=["dave@server.example"])
    m_bdat = mkpcap.Message(mkpcap.make_message(
        "Notes", b"Line one\r\n.a line that starts with a dot\r\nLast line\r\n"),
        rcpt_to=["erin@server.example"], method="BDAT", chunks=[200])
    sessions = [
        mkpcap.Session(cport=40001, messages=[m_clean], seed=1),
        mkpcap.Session(cport=40002, messages=[m_eicar], pipelining=True, seed=2),
        mkpcap.Session(cport=40003, messages=[m_gtube], seed=3),
        mkpcap.Session(cport=40004, messages=[m_bdat], pipelining=True, seed=4),
    ]
    mkpcap.build_capture(sessions, out, pcap_name="example.pcap",
                         interleave_mode="sequential")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
