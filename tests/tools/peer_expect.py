#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Extract per-capture expectations from tests/data/peer/*/README.md
("What an SMTP scanner should report") into JSON for run.py peer.

  peer_expect.py tests/data/peer > tests/integration/peer/expect.json

Each entry: file (relative to PEERDIR), messages (int, or [min, max] when
the README says the count depends on the engine's scope), eicar (bool),
mail_from (list per message, from the capture re-parse, only when the
README's count equals the re-parse), note (the README's line). OVERRIDES
below fixes the entries whose README line is prose, not a number; each
override says why."""
import json
import os
import re
import sys

# file -> dict merged over the extracted entry (reasons inline)
SV = "suricata-verify/"
OVERRIDES = {
    # README names smtp-simple-connection.pcap; the folder holds this file
    SV + "ruletype-firewall-122-smtp/smtp-simple-connection.pcap":
        {"file": SV + "ruletype-firewall-122-smtp/smtp-simple-session.pcap"},
    # DATA with no MAIL FROM at all: one message, empty envelope
    SV + "bug-1449-01/suricata_stackoverflow.pcap": {"mail_from": [""]},
    # the first envelope is aborted by RSET; the message is bob's
    SV + "ruletype-firewall-128-smtp-rset-next-tx-delivered/"
    "smtp-rset-change-sender.pcap": {"mail_from": ["bob@example.com"]},
    SV + "ruletype-firewall-132-smtp-nested-mail-from/smtp-nested-mail.pcap":
        {"mail_from": ["alice@example.com"]},
    SV + "ruletype-firewall-133-smtp-out-of-order-commands/"
    "smtp-out-of-order.pcap": {},
    # both BDAT transactions were refused/closed by the server: an engine
    # may log them as messages (unconfirmed) or not at all
    SV + "smtp-bdat-bad-tail-next-mail/input.pcap": {"messages": [0, 2]},
    # naive parse finds 2, the careful count is 1 (alice -> bob)
    SV + "smtp-bdat-bad-tail-reply-queue/input.pcap":
        {"messages": [1, 2], "mail_from_first": "alice@example.com"},
    SV + "smtp-bdat-zero-last-next-mail/input.pcap": {"messages": 2},
    # message transferred, then refused with 554 after end-of-data: it was
    # scanned, so a message event is expected
    SV + "smtp-data-rejected/10.7.29.101_49898-178.63.41.150_25.pcap":
        {"messages": 1},
    SV + "smtp-ehlo-reset-after-rejected-data/input.pcap":
        {"mail_from": ["bob@example.com"]},
    # flow 2's DATA is rejected: only flow 1 carries a message
    SV + "smtp-errors/smtperr.pcap": {"messages": 1},
    SV + "smtp-pipelined-rset-data-replies/input.pcap": {"messages": [0, 1]},
    SV + "smtp-rejected-ehlo-preserves-envelope/input.pcap":
        {"mail_from": ["alice@example.com"]},
    # encrypted: nothing visible (count excludes verdict "encrypted")
    SV + "smtp-startssl/input.pcap": {"messages": 0},
    # body cut off before end-of-data: logged incomplete, or not at all
    SV + "smtp-to-comma/10.7.29.101_49898-178.63.41.150_25.pcap":
        {"messages": [0, 1]},
    "zeek/smtp.pcap": {"messages": 2},
    # no server replies captured: whether a message starts is the engine's
    # stated choice (DESIGN: never pass unscanned, but nothing confirms it)
    "zeek/smtp-attachment-msg.pcap": {"messages": [0, 1]},
    "zeek/smtp-one-side-only.pcap": {"messages": [0, 2]},
    "zeek/smtp-multi-addr.pcap": {"messages": 1},
    "zeek/smtp-mail-transactions-invalid.pcap": {"messages": 2},
    "zeek/smtp-starttls.pcap": {"messages": 0},
    # SMTP inside HTTP CONNECT on a non-SMTP port: out of scope allowed
    "zeek/connect-with-smtp.pcap": {"messages": [0, 1]},
    "zeek/mime-header-size-limit.pcap.gz": {"messages": 1},
    "zeek/smtp-many-addresses.pcap.gz": {"messages": 1, "rcpt_count": 600},
    "zeek/rfc3030-bdat-example1.pcap": {"messages": 1, "sizes": [86],
                                        "mail_from": ["zeek@localhost"]},
    "zeek/rfc3030-bdat-0-last.pcap": {"messages": 1, "sizes": [0],
                                      "mail_from": ["zeek@localhost"]},
    "zeek/rfc3030-bdat-multipart.pcap": {"messages": 1, "sizes": [3460]},
    "zeek/rfc3030-bdat-multipart-chunked.pcap": {"messages": 1,
                                                 "sizes": [3460]},
    "zeek/rfc3030-bdat-nonascii.pcap": {
        "messages": 1, "sizes": [604],
        "eml": ["zeek/rfc3030-bdat-nonascii.expected-message.eml"]},
    "zeek/smtp-bdat-cmd-chunk-size-overflow.pcap": {"messages": 0,
                                                    "anomaly": True},
    "zeek/smtp-bdat-cmd-chunk-size-overflow2.pcap": {"messages": 0,
                                                     "anomaly": True},
    "zeek/smtp-bdat-cmd-negative-chunk-size.pcap": {"messages": 0,
                                                    "anomaly": True},
    "zeek/smtp-bdat-cmd-invalid.pcapng": {"messages": 0, "anomaly": True},
    # one incomplete BDAT message (never LAST) + one complete DATA message
    "zeek/smtp-bdat-gap.pcap": {"messages": [1, 2]},
}


def parse(readme, prefix):
    text = open(readme, encoding="utf-8").read()
    out = []
    for sec in re.split(r"\n### ", text)[1:]:
        m = re.search(r"^File: `([^`]+)`", sec, re.M)
        if not m:
            continue
        f = m.group(1)
        if f.startswith(prefix):
            f = f[len(prefix):]
        path = os.path.join(prefix.rstrip("/") or ".", f) if prefix else f
        carried = re.search(r"^- messages carried: (.*(?:\n  .*)*)", sec,
                            re.M)
        eic = re.search(r"EICAR test string in any decoded part: (\w+)", sec)
        froms = re.findall(r"message \d+ via [^:]*: MAIL FROM "
                           r"(?:<([^>]*)>|\(none seen\)|(\S+?),)", sec)
        note = " ".join(carried.group(1).split()) if carried else ""
        e = {"file": path, "note": note,
             "eicar": bool(eic and eic.group(1).lower() == "yes")}
        n = re.match(r"(\d+)", note)
        e["messages"] = int(n.group(1)) if n else None
        if (n and re.fullmatch(r"\d+(;.*| \(the naive re-parse above "
                               r"finds \d+\))?", note) and
                len(froms) == e["messages"] and
                ("finds" not in note or
                 note.endswith("finds %d)" % e["messages"]))):
            e["mail_from"] = [a or b for a, b in froms]
        out.append(e)
    return out


def main(argv):
    peer = argv[1]
    ents = []
    for sub in ("suricata-verify", "zeek"):
        rd = os.path.join(peer, sub, "README.md")
        if os.path.exists(rd):
            for e in parse(rd, ""):
                e["file"] = os.path.join(sub, e["file"])
                ents.append(e)
    for e in ents:
        e.update(OVERRIDES.get(e["file"], {}))
    json.dump({"captures": ents}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
