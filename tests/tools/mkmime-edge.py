#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Write tests/data/mime-edge/ (messages as mutt, Python's email and
uuencode -m emit them), its README, the fuzz seeds tests/fuzz/corpus/mime/edge-*
and the test.json of tests/integration/mime-{rfc822-base64,uuencode-m}-eicar.
EICAR is built from hex and only ever written encoded. Run: python3 tests/tools/mkmime-edge.py"""
import base64, binascii, json, os, quopri
from email.message import EmailMessage
from email import policy
EICAR = bytes.fromhex("58354f2150254041505b345c505a58353428505e2937434329377d24"
                      "45494341522d5354414e444152442d414e544956495255532d544553"
                      "542d46494c452124482b482a")
R = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
D = R + "/tests/data/mime-edge"

def b64lines(data, width=76):
    s = base64.b64encode(data).decode()
    return "\n".join(s[i:i + width] for i in range(0, len(s), width)) + "\n"

def uu_m(data, name, mode="644"):
    # what GNU "uuencode -m NAME" prints: 60-column base64, "====" ends it
    s = base64.b64encode(data).decode()
    body = "".join(s[i:i + 60] + "\n" for i in range(0, len(s), 60))
    return "begin-base64 %s %s\n%s====\n" % (mode, name, body)

def uu_classic(data, name, mode="644"):
    out = "begin %s %s\n" % (mode, name)
    for i in range(0, len(data), 45):
        out += binascii.b2a_uu(data[i:i + 45]).decode()
    return out + "`\nend\n"

def inner_message():
    # what Python's email (and mutt) build for a message with an attachment
    m = EmailMessage(policy=policy.SMTP.clone(linesep="\n"))
    m["From"] = "Carol <carol@partner.example>"
    m["To"] = "Alice <alice@client.example>"
    m["Subject"] = "Quarterly figures"
    m["Date"] = "Tue, 01 Dec 2026 09:12:00 +0000"
    m["Message-ID"] = "<inner.1@partner.example>"
    m.set_content("Hi Alice,\n\nthe figures are attached.\n\nCarol\n")
    m.add_attachment(EICAR, maintype="application", subtype="octet-stream",
                     filename="eicar.com")
    m.set_boundary("===============4406520839311232164==")  # reproducible
    return m.as_bytes().decode()

def mutt_headers(subject, ct, extra=""):
    return ("Date: Sat, 5 Dec 2026 10:00:00 +0000\n"
            "From: Alice <alice@client.example>\n"
            "To: Bob <bob@server.example>\n"
            "Subject: %s\n"
            "Message-ID: <%s@client.example>\n"
            "MIME-Version: 1.0\n"
            "Content-Type: %s\n%s"
            "User-Agent: Mutt/2.2.9 (2022-11-12)\n" %
            (subject, subject.replace(" ", "-").lower(), ct, extra))

README_HEAD = "Title: MIME edge cases real clients send\n\n# MIME edge cases real clients send\n\nMessages crafted as mutt, Python's `email` and `uuencode -m` emit them, each\nexercising one place where moray reads more than the RFCs allow, because\nmail clients and MTAs do. Where a hidden part carries the EICAR test file it\nis only ever encoded here (base64, quoted-printable, uuencode), never in\nplain text, so finding it proves the decoding. Written by\ntests/tools/mkmime-edge.py (email, base64, binascii, quopri); LF line ends, as stored on disk.\n(The first line of this file is a header field so that GMime and moray\nboth read this README as a one-part message and agree on it.)\n\nUsed by the `mime_diff_edge` test (tests/diff/meson.build: moray against\nGMime 3) and, with CRLF line ends, as fuzz seeds (tests/fuzz/corpus/mime/edge-*).\nIntegration cases tests/integration/mime-rfc822-base64-eicar and\nmime-uuencode-m-eicar send rfc822-base64.eml and uuencode-m.eml through\nmoray-scan.\n\n"
README_TAIL = "\n## Where GMime 3.2 disagrees, and why moray is right to\n\nEvery message here differs from GMime 3.2.13 on purpose; the differential\ntest needs each listed as an allowed difference:\n\n- `no-blank-line-*` (header-no-empty-line): GMime keeps reading a line\n  that is not a header field as part of the header block and ends it only\n  at an empty line, so the base64 body becomes header text and the part is\n  empty. RFC 5322 §2.2/§3.5 parsers, Python's `email`\n  (MissingHeaderBodySeparatorDefect) and Postfix cleanup end the header at\n  that line, so the recipient's mailbox holds the body: moray decodes it.\n- `rfc822-*` (message-encoded): GMime delivers a base64/QP-encoded\n  message/rfc822 as one leaf of decoded bytes (the whole inner message,\n  headers included) and does not parse it; moray parses it as a message as\n  ClamAV and clients do, so its parts (here EICAR in base64) are decoded.\n- `uuencode-m*` (uu-embedded): GMime leaves a uuencoded block inside a\n  text/plain part in the text; moray cuts it out as its own decoded part,\n  as for classic uuencode (and as ClamAV does).\n- `boundary-never-appears*` (multipart-boundary-not-found): GMime keeps the\n  body of a multipart whose boundary never appears as the multipart's\n  preamble, which is no part at all; Python's `email` keeps it as the text\n  payload and moray delivers it as one text/plain part, so it is scanned\n  decoded (and the uuencoded file in it is cut out).\n"

files = {}
# 6: header without the empty line (a script mailer writing headers, then the body)
files["no-blank-line-top.eml"] = (
    "From: backup@host.example\nTo: ops@server.example\nSubject: nightly report\n"
    "MIME-Version: 1.0\nContent-Type: application/octet-stream; name=\"eicar.com\"\n"
    "Content-Disposition: attachment; filename=\"eicar.com\"\n"
    "Content-Transfer-Encoding: base64\n" + b64lines(EICAR),
    "header without an empty line before a base64 body: the body starts at the first non-field line (item 6, top level)")
files["no-blank-line-part.eml"] = (
    mutt_headers("report attached", "multipart/mixed; boundary=\"kXw3Q8bnqgE2f0Hn\"",
                 "Content-Disposition: inline\n") + "\n"
    "--kXw3Q8bnqgE2f0Hn\nContent-Type: text/plain; charset=us-ascii\nContent-Disposition: inline\n\n"
    "Report attached.\n\n"
    "--kXw3Q8bnqgE2f0Hn\nContent-Type: application/octet-stream\n"
    "Content-Disposition: attachment; filename=\"eicar.com\"\n"
    "Content-Transfer-Encoding: base64\n" + b64lines(EICAR) +
    "\n--kXw3Q8bnqgE2f0Hn--\n",
    "part header without an empty line before its base64 body (item 6, part level)")
inner = inner_message()
files["rfc822-base64.eml"] = (
    mutt_headers("Fwd: Quarterly figures", "multipart/mixed; boundary=\"Fw1x0nZp3b2Kq8Lm\"") + "\n"
    "--Fw1x0nZp3b2Kq8Lm\nContent-Type: text/plain; charset=us-ascii\nContent-Disposition: inline\n\n"
    "Forwarding Carol's message.\n\n"
    "--Fw1x0nZp3b2Kq8Lm\nContent-Type: message/rfc822\nContent-Disposition: attachment\n"
    "Content-Transfer-Encoding: base64\n\n" + b64lines(inner.encode()) +
    "\n--Fw1x0nZp3b2Kq8Lm--\n",
    "forwarded message/rfc822 sent base64-encoded, whose own attachment is EICAR in base64 (item 7)")
files["rfc822-qp.eml"] = (
    mutt_headers("Fwd: Quarterly figures (qp)", "multipart/mixed; boundary=\"Qp7Hs2mWc9Rt4Ye1\"") + "\n"
    "--Qp7Hs2mWc9Rt4Ye1\nContent-Type: text/plain; charset=us-ascii\n\nSee the forwarded message.\n\n"
    "--Qp7Hs2mWc9Rt4Ye1\nContent-Type: message/rfc822\n"
    "Content-Transfer-Encoding: quoted-printable\n\n" +
    quopri.encodestring(inner.replace("Subject: Quarterly figures", "Subject: =?utf-8?q?Quartalsz=C3=A4hlen?=").encode()).decode() +
    "\n--Qp7Hs2mWc9Rt4Ye1--\n",
    "forwarded message/rfc822 sent quoted-printable-encoded, EICAR in base64 inside (item 7)")
files["uuencode-m.eml"] = (
    "From: Alice <alice@client.example>\nTo: Bob <bob@server.example>\nSubject: eicar.com\n"
    "Date: Sat, 5 Dec 2026 10:05:00 +0000\n\n"
    "Here is the file, made with uuencode -m:\n\n" + uu_m(EICAR, "eicar.com") + "\nBye\n",
    "uuencode -m output (begin-base64 ... ====) in a plain text body, EICAR inside (item 8)")
files["uuencode-m-in-part.eml"] = (
    mutt_headers("tools", "multipart/mixed; boundary=\"Uu5mB4s3Kx0Pq7Wd\"") + "\n"
    "--Uu5mB4s3Kx0Pq7Wd\nContent-Type: text/plain; charset=us-ascii\nContent-Disposition: inline\n\n"
    "Two files below.\n\n" + uu_m(b"#!/bin/sh\necho moray-test-decoded-tempfail\n", "run.sh", "755") +
    "\nand the other one:\n\n" + uu_m(EICAR, "eicar.com", "600") +
    "\n--Uu5mB4s3Kx0Pq7Wd--\n",
    "two uuencode -m files in a text/plain part of a multipart, text between and after them (item 8)")
files["boundary-never-appears.eml"] = (
    "From: Alice <alice@client.example>\nTo: Bob <bob@server.example>\nSubject: files\n"
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"==OUTER_7f3a==\"\n\n"
    "This is a multi-part message in MIME format.\n\n"
    "--==INNER_0b12==\nContent-Type: text/plain\n\nThe file follows.\n\n" +
    uu_classic(EICAR, "eicar.com") + "\n--==INNER_0b12==--\n",
    "multipart whose declared boundary never appears; its body (with a classic uuencoded EICAR) is one text part (item 9)")
files["boundary-never-appears-nested.eml"] = (
    mutt_headers("alt", "multipart/mixed; boundary=\"OutB0und4ry\"") + "\n"
    "--OutB0und4ry\nContent-Type: multipart/alternative; boundary=\"NeverSeen\"\n\n"
    "text of an alternative whose boundary is never used: moray-test-decoded-tempfail\n\n"
    "--OutB0und4ry\nContent-Type: text/plain\n\nlast part\n\n--OutB0und4ry--\n",
    "inner multipart/alternative whose boundary never appears before the outer delimiter closes it (item 9)")

for name, (text, what) in files.items():
    with open(os.path.join(D, name), "w") as f:
        f.write(text)
    assert EICAR not in text.encode(), name

# fuzz seeds: the same shapes with CRLF, smaller
fz = R + "/tests/fuzz/corpus/mime"
for i, name in enumerate(["no-blank-line-part.eml", "rfc822-base64.eml", "rfc822-qp.eml",
                          "uuencode-m-in-part.eml", "boundary-never-appears.eml",
                          "boundary-never-appears-nested.eml"]):
    data = files[name][0].replace("\n", "\r\n").encode()
    data = data.replace(EICAR, b"moray-test-decoded-tempfail")
    with open(os.path.join(fz, "edge-" + name.replace(".eml", "")), "wb") as f:
        f.write(data[:4096])

# integration cases
def case(dirname, desc, msgfile, evasions, after=True):
    data = files[msgfile][0].replace("\n", "\r\n")
    msgs = [{"data": data}]
    if after:
        msgs.append({"mime": {"subject": "clean after", "body": "Hello Bob,\r\nsee you.\r\n"}})
    spec = {"description": desc,
            "generate": {"sessions": [{"messages": msgs}]},
            "expect": [{"msg_index": 0, "verdict": "infected", "server_reply": None, "signatures": ["EICAR"], "evasions": evasions}]}
    os.makedirs(R + "/tests/integration/" + dirname, exist_ok=True)
    with open(R + "/tests/integration/%s/test.json" % dirname, "w") as f:
        json.dump(spec, f, indent=1)
        f.write("\n")
case("mime-rfc822-base64-eicar", "EICAR in a base64 attachment of a forwarded message/rfc822 that is itself sent base64: decoded twice, infected", "rfc822-base64.eml", ["message_encoded"], after=False)
case("mime-uuencode-m-eicar", "EICAR in a uuencode -m (begin-base64) block of a plain text body: infected", "uuencode-m.eml", [])

with open(os.path.join(D, "README.md"), "w") as f:
    f.write(README_HEAD)
    for name in sorted(files):
        f.write("- `%s`: %s.\n" % (name, files[name][1]))
    f.write(README_TAIL)
