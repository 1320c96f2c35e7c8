#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Per-stage instruction counts from a callgrind profile of the engine.

Reads a callgrind.out written with --separate-callers (each function named
by its call chain, innermost first) and charges every instruction to the
innermost stage entry on its call chain: an instruction of memcpy called
from the MIME decoder's output path counts as "decoders", the same memcpy
called from reassembly counts as "reassembly". Instructions with no stage
entry on their chain (the replay loop, tcp_packet's own dispatch) are
"other".

    breakdown.py CALLGRIND_OUT FRAMES [--detail N]

--detail N lists, for each stage, the N functions whose own instructions
(innermost name of the chain) cost it most.
"""
import sys
from collections import defaultdict

# (stage, test on one function name of the chain); order matters only for
# a name matching two tests, never for nesting: the innermost name decides.
ENGINE_GLUE = {
    "deliver", "smtp_msg_begin", "smtp_msg_data", "smtp_msg_end", "smtp_msg_reply",
    "smtp_msg_abort", "smtp_starttls", "smtp_anomaly", "hold_append", "hold_store_full",
    "hold_free_bytes", "hold_ring_add", "hold_ring_del", "mime_header", "mime_part_begin",
    "mime_part_data", "mime_part_end", "mime_anomaly", "scan_open", "scan_feed",
    "scan_close", "scan_abort", "msg_free", "copy_envelope", "session_new",
    "session_end", "flow_end", "hold_tick", "save_template", "tempfail_msg", "msg_abort",
}
VERDICT = {
    "message_event", "hold_event", "flow_event", "emit_event", "event_begin", "emit",
    "build_segment", "apply_result", "release_held", "release_synthesized",
    "answer_and_reset", "reset_both", "on_event", "on_emit", "conn_of", "ipv4_text",
    # the engine split into one file per job (verdict.c, event_log.c, inject.c)
    "mry_verdict_message_event", "mry_verdict_encrypted_event", "mry_verdict_hold_event",
    "mry_verdict_flow_event", "mry_verdict_apply", "mry_verdict_conn_of", "mry_verdict_name",
    "mry_inject_segment", "mry_inject_emit", "mry_inject_answer_and_reset",
    "mry_inject_reset_both",
}


def stage_of(name):
    base = name.split(".", 1)[0]          # foo.isra.0, foo.part.1, foo.constprop.0
    if base == "on_match":                # scan.c's match callback, called by Hyperscan
        return "scan glue (scan.c)"
    if base.startswith("hs_") or "_hs_" in base:   # fat runtime: avx2_hs_scan_stream
        return "scan calls (Hyperscan)"
    if base.startswith("mry_scan_"):
        return "scan glue (scan.c)"
    if base.startswith(("mry_b64_", "mry_qp_", "mry_uu_")) or base == "mry_mime_decode_2047":
        return "decoders (base64/qp/uu/2047)"
    if base.startswith("mry_mime_"):
        return "MIME"
    if base.startswith("mry_smtp_"):
        return "SMTP"
    if base.startswith("mry_json_") or base in VERDICT:
        return "verdict/log (events, emit)"
    if base.startswith(("mry_reasm_", "mry_tcp_stream_")):
        return "reassembly"
    if base.startswith("mry_flow_"):
        return "flow table"
    if base.startswith(("mry_decode_", "mry_ipfrag_", "mry_csum_", "mry_tcp_csum")) or \
            base == "fast_non_smtp":
        return "decode"
    if base.startswith("mry_event_"):
        return "verdict/log (events, emit)"
    if base in ENGINE_GLUE or base.startswith(("mry_verdict_", "mry_hold_", "mry_inject_")):
        return "engine glue (message/hold callbacks)"
    if base.startswith(("mry_pool_", "mry_zalloc", "mry_alloc", "malloc", "calloc", "free",
                        "realloc", "je_", "rte_malloc", "rte_zmalloc", "rte_free")):
        return "allocation"
    if base == "mry_engine_tick":
        return "timers (engine tick)"
    return None


ORDER = [
    "decode", "flow table", "reassembly", "SMTP", "MIME", "decoders (base64/qp/uu/2047)",
    "engine glue (message/hold callbacks)", "scan glue (scan.c)",
    "scan calls (Hyperscan)", "verdict/log (events, emit)", "allocation",
    "timers (engine tick)", "other",
]


def main():
    path, frames = sys.argv[1], int(sys.argv[2])
    detail = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--detail" else 0
    cost = defaultdict(int)
    own = defaultdict(lambda: defaultdict(int))
    fn_stage = None
    fn_name = ""
    obj = ""
    fn_obj = ""
    skip = False
    cache = {}
    with open(path) as f:
        for line in f:
            if skip:
                skip = False
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                if len(parts) >= 2:
                    cost[fn_stage] += int(parts[1])
                    own[fn_stage][fn_name.split("'", 1)[0]] += int(parts[1])
                continue
            if line.startswith("fn="):
                fn_name = line[3:].rstrip("\n")
                fn_obj = obj
                st = cache.get((fn_name, fn_obj))
                if st is None:
                    st = "other"
                    for n in fn_name.split("'"):
                        s = stage_of(n)
                        if s is not None:
                            st = s
                            break
                    else:
                        if "libhs" in fn_obj:
                            st = "scan calls (Hyperscan)"
                    cache[(fn_name, fn_obj)] = st
                fn_stage = st
            elif line.startswith("ob="):
                obj = line[3:].rstrip("\n")
            elif line.startswith("calls="):
                skip = True
    total = sum(cost.values())
    print("%-48s %14s %10s %7s" % ("stage", "instructions", "Ir/frame", "share"))
    for st in ORDER:
        v = cost.get(st, 0)
        print("%-48s %14d %10.0f %6.1f%%" % (st, v, v / frames, 100.0 * v / total if total else 0))
    print("%-48s %14d %10.0f %6.1f%%" % ("total", total, total / frames, 100.0))
    scan = cost.get("scan calls (Hyperscan)", 0)
    print("scan share (Hyperscan calls / all): %.3f; outside the scan: %.0f Ir/frame"
          % (scan / total if total else 0, (total - scan) / frames))
    if detail:
        print("largest own costs per stage (Ir/frame):")
        for st in ORDER:
            top = sorted(own[st].items(), key=lambda kv: -kv[1])[:detail]
            if top:
                print("  %s: %s" % (st, ", ".join("%s %.0f" % (n, v / frames) for n, v in top)))


if __name__ == "__main__":
    main()
