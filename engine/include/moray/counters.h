/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The one table of counters. Every counter moray shows (telemetry, the
 * periodic stats line, moray-scan's summary and --stats-json, the Prometheus
 * text file) is declared here once and nowhere else; everything that prints
 * counters is generated from this list.
 *
 * A row is
 *   X(src, group, name, kind, line, field, help)
 * or, for a module's event table (one counter per event, named by the module),
 *   XA(src, group, nb, name_fn, kind, field, help)
 * where
 *   src    where the value lives: ENG (struct mry_counters, filled by the
 *          engine) or one of the DPDK app's sources (APPW per-worker app
 *          stats, RX rx lcores, CTL the control thread, RING rings and pools,
 *          PORT per-port ethdev stats); an expansion picks the sources it
 *          knows and ignores the rest (see MRY_COUNTER_ROW_* below).
 *   group  first word of the metric name, the /moray/counters key
 *   name   counter name (<noun>_<event>), unique within its group
 *   kind   COUNTER (only grows) or GAUGE (current level)
 *   line   1: shown on the periodic stats line and moray-scan's summary line
 *   field  the member holding it, a path into src's snapshot struct
 *   help   one line for operators (Prometheus HELP)
 *
 * The engine's own stats struct (struct mry_engine_stats) is generated from
 * MRY_ENGINE_STATS below, so its field names are the counter names.
 * Metric names: moray_<group>_<name>_total for counters, moray_<group>_<name>
 * for gauges.
 */
#ifndef MORAY_COUNTERS_H
#define MORAY_COUNTERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "moray/decode.h"
#include "moray/flow.h"
#include "moray/ipfrag.h"
#include "moray/mime.h"
#include "moray/scan.h"
#include "moray/smtp.h"
#include "moray/tcp_reasm.h"

/* Engine-level evasions counted apart from the SMTP/MIME anomalies. */
#define MRY_ENGINE_NB_EVASION 5

/* The engine's stats: E(X, name, kind, line, help); group "engine". */
#define MRY_ENGINE_STATS(E, X) \
	E(X, pkts, COUNTER, 1, "Frames handed to the engine") \
	E(X, bytes, COUNTER, 0, "Bytes of the frames handed to the engine") \
	E(X, pkts_non_smtp, COUNTER, 1, "Frames forwarded on the short path (not SMTP)") \
	E(X, pkts_forwarded, COUNTER, 1, "Frames the host was told to forward") \
	E(X, pkts_dropped, COUNTER, 1, "Frames the host was told to drop") \
	E(X, drop_invalid, COUNTER, 0, "Frames dropped: failed to decode") \
	E(X, drop_withheld, COUNTER, 0, "Frames dropped: carried bytes at or past a pending end-of-message") \
	E(X, drop_conflict, COUNTER, 0, "Frames dropped: conflicting TCP overlap (evasion)") \
	E(X, drop_ooo, COUNTER, 0, "Frames dropped: ahead of the client stream, the sender retransmits") \
	E(X, drop_after_verdict, COUNTER, 0, "Frames dropped: toward a rejected or tempfailed message") \
	E(X, drop_no_flow, COUNTER, 0, "Frames dropped: no flow (table full or per-source cap)") \
	E(X, drop_midstream_data, COUNTER, 0, "Frames dropped: message content on a flow never seen to start") \
	E(X, msgs, COUNTER, 1, "Messages whose data began") \
	E(X, msgs_clean, COUNTER, 1, "Messages scanned clean and forwarded") \
	E(X, msgs_infected, COUNTER, 1, "Messages rejected: a signature matched") \
	E(X, msgs_tempfail, COUNTER, 1, "Messages answered 451: no slot, hold timeout, hold store full, shutdown") \
	E(X, msgs_encrypted, COUNTER, 1, "Messages after STARTTLS: passed under the encrypted policy") \
	E(X, msgs_evasion, COUNTER, 1, "Messages rejected 554 5.5.2: an end of data some server would honour (SMTP smuggling)") \
	E(X, msgs_shutdown_tempfail, COUNTER, 0, "Messages in DATA answered 421 4.3.2 at stop") \
	E(X, msgs_held, COUNTER, 1, "Messages held: no usable generation when their data began") \
	E(X, msgs_released, COUNTER, 1, "Held messages rescanned and released") \
	E(X, hold_timeouts, COUNTER, 1, "Held messages answered 451 after the hold timeout") \
	E(X, hold_store_full, COUNTER, 0, "Messages answered 451: the hold store was full") \
	E(X, hold_bytes, GAUGE, 0, "Bytes currently in the hold store") \
	E(X, hold_msgs, GAUGE, 0, "Messages currently held") \
	E(X, msgs_open, GAUGE, 0, "Messages in progress (message slots in use, of --max-msgs)") \
	E(X, replies_injected, COUNTER, 1, "SMTP replies moray sent to clients") \
	E(X, resets_injected, COUNTER, 1, "TCP resets moray sent") \
	E(X, events, COUNTER, 0, "Verdict-log events written by the engine") \
	E(X, evasions, COUNTER, 0, "Evasion and anomaly events noted on flows") \
	E(X, msgs_aborted, COUNTER, 1, "Messages whose data ended without an end-of-message") \
	E(X, midstream_resets, COUNTER, 0, "SMTP flows never seen to start, reset") \
	E(X, encrypted_blocked, COUNTER, 0, "STARTTLS refused under the block policy") \
	E(X, session_pool_empty, COUNTER, 0, "Flows without an engine session: pool empty") \
	E(X, msg_pool_empty, COUNTER, 0, "Messages answered 451: message pool empty") \
	E(X, frag_withheld, COUNTER, 0, "IP fragments of TCP held until their datagram completes") \
	E(X, frag_too_big, COUNTER, 0, "Reassembled TCP datagrams dropped: larger than the largest frame") \
	E(X, frag_reassembled_sent, COUNTER, 0, "Reassembled TCP datagrams forwarded as one frame") \
	E(X, msg_slot_reclaimed, COUNTER, 0, "Message slots freed by ending a DATA flow behind --min-data-rate") \
	E(X, msg_no_envelope, COUNTER, 0, "Messages answered 451 4.3.2: envelope pool was empty at MAIL") \
	E(X, env_slot_reclaimed, COUNTER, 0, "Envelopes freed by ending a slow DATA or idle connection") \
	E(X, shed_deadline, COUNTER, 0, "Flows moray ended: deadline of their phase") \
	E(X, shed_evicted, COUNTER, 0, "Flows moray ended: evicted under pressure") \
	E(X, shed_per_source_cap, COUNTER, 0, "New connections refused: source over its cap") \
	E(X, shed_half_open_budget, COUNTER, 0, "New connections refused: table or half-open budget full") \
	E(X, shed_blocked, COUNTER, 0, "Connections refused or ended: source blocklisted") \
	E(X, shed_no_msg_slot, COUNTER, 0, "Messages answered 451 4.3.2: no message slot") \
	E(X, drop_after_shed, COUNTER, 0, "Frames dropped: their flow was ended by moray")

#define MRY_COUNTER_ENGINE_ROW_(X, name, kind, line, help) \
	X(ENG, engine, name, kind, line, engine.name, help)

/*
 * Every counter, engine first, then the DPDK app's.
 *
 * The scanner's own msg_pool_empty and stream_pool_empty (struct
 * mry_scan_stats) are not rows: the engine sizes the scanner from its
 * message pool (one scan per message, at most three streams per scan), so
 * a message that gets a slot always gets its scan and streams, and a
 * shortage shows as engine.msg_pool_empty. They stay in the scanner's
 * stats for its other users (mry_scan_buffer, bench).
 */
#define MRY_COUNTERS(X, XA) \
	MRY_ENGINE_STATS(MRY_COUNTER_ENGINE_ROW_, X) \
	X(ENG, decode, pkts, COUNTER, 0, decode.pkts, "Frames decoded") \
	X(ENG, decode, tcp, COUNTER, 0, decode.tcp, "Frames decoded as TCP") \
	X(ENG, decode, other, COUNTER, 0, decode.other, "Frames decoded as neither TCP nor a fragment") \
	X(ENG, decode, fragments, COUNTER, 0, decode.fragments, "IP fragments decoded") \
	X(ENG, decode, invalid, COUNTER, 0, decode.invalid, "Frames that failed to decode") \
	XA(ENG, decode, MRY_DEV_MAX, mry_decode_event_name, COUNTER, decode.ev, \
	   "Frames with this decode event") \
	X(ENG, ipfrag, fragments, COUNTER, 0, ipfrag.fragments, "IP fragments taken for reassembly") \
	X(ENG, ipfrag, completed, COUNTER, 0, ipfrag.completed, "IP datagrams reassembled") \
	X(ENG, ipfrag, timeouts, COUNTER, 0, ipfrag.timeouts, "Incomplete IP datagrams timed out") \
	X(ENG, ipfrag, table_full, COUNTER, 0, ipfrag.table_full, "IP fragments dropped: reassembly table full") \
	X(ENG, ipfrag, too_big, COUNTER, 0, ipfrag.too_big, "IP fragments dropped: datagram past 65535 bytes") \
	X(ENG, ipfrag, overlap_same, COUNTER, 0, ipfrag.overlap_same, "IP fragment overlaps with identical bytes") \
	X(ENG, ipfrag, overlap_conflict, COUNTER, 0, ipfrag.overlap_conflict, "IP fragment overlaps with different bytes (evasion)") \
	X(ENG, flow, created, COUNTER, 0, flow.created, "Flows created") \
	X(ENG, flow, timeout_syn, COUNTER, 0, flow.timeouts[MRY_FLOW_PHASE_HALF_OPEN], "Flows ended by the handshake deadline") \
	X(ENG, flow, timeout_cmd, COUNTER, 0, flow.timeouts[MRY_FLOW_PHASE_CMD], "Flows ended by the command-phase deadline") \
	X(ENG, flow, timeout_data, COUNTER, 0, flow.timeouts[MRY_FLOW_PHASE_DATA], "Flows ended by the data-phase deadline") \
	X(ENG, flow, timeout_closing, COUNTER, 0, flow.timeouts[MRY_FLOW_PHASE_CLOSING], "Flows ended after FIN or RST") \
	X(ENG, flow, evicted_pre_data, COUNTER, 0, flow.evicted_pre_data, "Flows evicted before DATA") \
	X(ENG, flow, evicted_data, COUNTER, 0, flow.evicted_data, "Flows evicted with a message in progress") \
	X(ENG, flow, table_full, COUNTER, 0, flow.table_full, "Flows not created: table full") \
	X(ENG, flow, per_source_limit, COUNTER, 0, flow.per_source_limit, "Flows not created: source over its cap") \
	X(ENG, flow, timeout_greeting, COUNTER, 0, flow.timeouts[MRY_FLOW_PHASE_GREETING], "Flows ended waiting for the server greeting") \
	X(ENG, flow, timeout_data_init, COUNTER, 0, flow.timeouts[MRY_FLOW_PHASE_DATA_INIT], "Flows ended waiting for the 354 to DATA") \
	X(ENG, flow, timeout_data_end, COUNTER, 0, flow.timeouts[MRY_FLOW_PHASE_DATA_END], "Flows ended waiting for the final reply to a message") \
	X(ENG, flow, timeout_held, COUNTER, 0, flow.timeout_held, "Deadlines passed on held flows: re-armed, not ended") \
	X(ENG, flow, timeout_data_slow, COUNTER, 0, flow.timeout_data_slow, "DATA flows ended by the minimum data rate") \
	XA(ENG, flow_evicted, MRY_FLOW_EVICT_MAX, mry_flow_evict_class_name_u, COUNTER, flow.evicted, \
	   "Flows evicted from this class") \
	X(ENG, flow, half_open_full, COUNTER, 0, flow.half_open_full, "New flows that found the half-open budget full") \
	X(ENG, flow, emergency_entered, COUNTER, 0, flow.emergency_entered, "Emergency mode entered") \
	X(ENG, flow, emergency_exited, COUNTER, 0, flow.emergency_exited, "Emergency mode left") \
	X(ENG, flow, emergency_shortened, COUNTER, 0, flow.emergency_shortened, "Armed deadlines shortened by emergency mode") \
	XA(ENG, flow_open, MRY_FLOW_PHASE_MAX, mry_flow_phase_name_u, GAUGE, flow.open_by_phase, \
	   "Open flows in this phase") \
	X(ENG, flow, sources, GAUGE, 0, flow.sources, "Distinct client addresses with open flows") \
	X(ENG, flow, half_open_budget, GAUGE, 0, flow.half_open_budget, "Half-open flow budget") \
	X(ENG, flow, pressure_pct, GAUGE, 0, flow.pressure_pct, "Use of the fullest pool, percent") \
	X(ENG, flow, emergency, GAUGE, 0, flow.emergency, "1 while in emergency mode") \
	X(ENG, tcp_reasm, segments, COUNTER, 0, tcp_reasm.segments, "TCP segments taken by reassembly") \
	X(ENG, tcp_reasm, out_of_order, COUNTER, 0, tcp_reasm.out_of_order, "TCP segments ahead of the stream") \
	X(ENG, tcp_reasm, retransmit, COUNTER, 0, tcp_reasm.retransmit, "TCP segments wholly before the stream edge") \
	X(ENG, tcp_reasm, overlap_same, COUNTER, 0, tcp_reasm.overlap_same, "TCP overlaps with identical bytes") \
	X(ENG, tcp_reasm, overlap_conflict, COUNTER, 0, tcp_reasm.overlap_conflict, "TCP overlaps with different bytes (evasion)") \
	X(ENG, tcp_reasm, ooo_stream_cap, COUNTER, 0, tcp_reasm.ooo_stream_cap, "Out-of-order segments refused: per-stream cap") \
	X(ENG, tcp_reasm, ooo_pool_empty, COUNTER, 0, tcp_reasm.ooo_pool_empty, "Out-of-order segments refused: pool empty") \
	X(ENG, tcp_reasm, after_close, COUNTER, 0, tcp_reasm.after_close, "TCP segments after the stream closed") \
	X(ENG, tcp_reasm, bytes_delivered, COUNTER, 0, tcp_reasm.bytes_delivered, "Stream bytes delivered in order") \
	X(ENG, smtp, sessions, COUNTER, 0, smtp.sessions, "SMTP sessions") \
	X(ENG, smtp, messages_begun, COUNTER, 0, smtp.messages_begun, "SMTP messages whose data began") \
	X(ENG, smtp, messages_ended, COUNTER, 0, smtp.messages_ended, "SMTP messages ended by their end-of-message") \
	X(ENG, smtp, messages_aborted, COUNTER, 0, smtp.messages_aborted, "SMTP messages ended otherwise") \
	X(ENG, smtp, starttls, COUNTER, 0, smtp.starttls, "STARTTLS accepted by the server") \
	XA(ENG, smtp, MRY_SMTP_AN_MAX, mry_smtp_anomaly_name, COUNTER, smtp.anomalies, \
	   "SMTP protocol anomalies of this kind") \
	X(ENG, mime, parts, COUNTER, 0, mime.parts, "MIME parts parsed") \
	X(ENG, mime, bytes_decoded, COUNTER, 0, mime.bytes_decoded, "MIME bytes decoded") \
	X(ENG, mime, pool_empty, COUNTER, 0, mime.pool_empty, "Messages without a MIME parser: pool empty") \
	X(ENG, mime, preamble_spills, COUNTER, 0, mime.preamble_spills, "Multipart preambles longer than max_preamble, scanned as a text part at once") \
	X(ENG, mime, encoded_msgs, COUNTER, 0, mime.encoded_msgs, "Encoded message/rfc822 bodies decoded and parsed as messages") \
	X(ENG, mime, encoded_msg_no_parser, COUNTER, 0, mime.encoded_msg_no_parser, "Encoded message/rfc822 bodies left as one decoded leaf: no nested parser free") \
	XA(ENG, mime, MRY_MIME_AN_MAX, mry_mime_anomaly_name, COUNTER, mime.anomalies, \
	   "MIME anomalies of this kind") \
	X(ENG, scan, messages, COUNTER, 0, scan.messages, "Messages scanned") \
	X(ENG, scan, bytes_raw, COUNTER, 0, scan.bytes_raw, "Raw message bytes scanned") \
	X(ENG, scan, bytes_decoded, COUNTER, 0, scan.bytes_decoded, "Decoded part bytes scanned") \
	X(ENG, scan, bytes_headers, COUNTER, 0, scan.bytes_headers, "Header bytes scanned") \
	X(ENG, scan, matches, COUNTER, 0, scan.matches, "Signature matches") \
	X(ENG, scan, hs_errors, COUNTER, 0, scan.hs_errors, "Hyperscan errors") \
	XA(ENG, evasion, MRY_ENGINE_NB_EVASION, mry_engine_evasion_name, COUNTER, evasion, \
	   "Engine-level evasions of this kind") \
	X(APPW, app, rx_pkts, COUNTER, 0, w.rx_pkts, "Frames workers handed to the engine") \
	X(APPW, app, tx_pkts, COUNTER, 0, w.tx_pkts, "Frames workers handed to a tx path") \
	X(APPW, app, tx_dropped, COUNTER, 1, w.tx_dropped, "Frames lost: tx queue full") \
	X(APPW, app, ret_full_waits, COUNTER, 0, w.ret_full_waits, "Waits for room in a full return ring (sw dispatch)") \
	X(APPW, app, multiseg_copied, COUNTER, 1, w.multiseg_copied, "Multi-segment frames linearised") \
	X(APPW, app, oversize_dropped, COUNTER, 0, w.oversize_dropped, "Frames dropped: larger than the linear buffer") \
	X(APPW, app, emitted, COUNTER, 0, w.emitted, "Frames the engine emitted (replies, resets, releases)") \
	X(APPW, app, emit_nombuf, COUNTER, 1, w.emit_nombuf, "Emitted frames lost: no mbuf") \
	X(APPW, app, emit_too_big, COUNTER, 0, w.emit_too_big, "Emitted frames lost: larger than an mbuf") \
	X(APPW, app, polls, COUNTER, 0, w.polls, "Worker poll loops") \
	X(APPW, app, busy_polls, COUNTER, 0, w.busy_polls, "Worker poll loops that found frames") \
	X(APPW, log, events, COUNTER, 1, w.log_events, "Verdict-log events queued by workers") \
	X(APPW, log, ring_full, COUNTER, 1, w.log_ring_full, "Verdict-log events lost: ring full") \
	X(APPW, log, too_long, COUNTER, 0, w.log_too_long, "Verdict-log events lost: too long for the ring") \
	X(CTL, log, written, COUNTER, 1, log_written, "Verdict-log events written to the log file") \
	X(CTL, log, write_errors, COUNTER, 0, log_write_errors, "Verdict-log write errors") \
	X(RX, dispatch, rx_pkts, COUNTER, 0, rx.rx_pkts, "Frames received by the rx lcores") \
	X(RX, dispatch, rx_bytes, COUNTER, 0, rx.rx_bytes, "Bytes received by the rx lcores") \
	X(RX, dispatch, ring_full, COUNTER, 1, rx.ring_full, "Frames dropped by the dispatcher: worker ring full") \
	X(RX, dispatch, rx_throttled, COUNTER, 0, rx.rx_throttled, "Rx bursts cut short by worker ring space (frames left in the rx queue)") \
	X(RX, dispatch, tx_pkts, COUNTER, 0, rx.tx_pkts, "Frames sent by the rx lcores") \
	X(RX, dispatch, non_ip, COUNTER, 0, rx.non_ip, "Non-IP frames sent to worker 0") \
	X(RING, ring, log_used, GAUGE, 0, ring.log_used, "Verdict-log ring entries in use (all workers)") \
	X(RING, ring, in_used, GAUGE, 0, ring.in_used, "Dispatch ring entries in use (all workers)") \
	X(RING, ring, mbuf_avail, GAUGE, 0, ring.mbuf_avail, "Free mbufs in the workers' pools") \
	X(CTL, db, generation, GAUGE, 0, db.generation, "Active signature database generation (0: none)") \
	X(CTL, db, created, GAUGE, 0, db.created, "Creation time of the active generation, unix seconds") \
	X(CTL, db, signatures, GAUGE, 0, db.signatures, "Signatures in the active generation") \
	X(CTL, db, valid, GAUGE, 0, db.valid, "1 when the generation state is valid") \
	X(CTL, db, scanning, GAUGE, 0, db.scanning, "1 when workers can scan new messages") \
	X(CTL, db, changes, COUNTER, 0, db.changes, "Generation state changes") \
	X(CTL, db, offers, COUNTER, 0, db.offers, "Database candidates offered") \
	X(CTL, db, rejected, COUNTER, 0, db.rejected, "Database candidates rejected") \
	X(CTL, db, reclaimed, COUNTER, 0, db.reclaimed, "Old generations freed") \
	X(CTL, alarm, active, GAUGE, 0, alarm, "1 while an alarm is raised (reason: /moray/alarm)") \
	X(CTL, blocklist, changes_refused, COUNTER, 0, blocklist_refused, "Blocklist changes refused: their event queue toward the log writer was full") \
	X(PORT, port, rx_pkts, COUNTER, 0, eth.ipackets, "Frames received by the port") \
	X(PORT, port, tx_pkts, COUNTER, 0, eth.opackets, "Frames sent by the port") \
	X(PORT, port, rx_bytes, COUNTER, 0, eth.ibytes, "Bytes received by the port") \
	X(PORT, port, tx_bytes, COUNTER, 0, eth.obytes, "Bytes sent by the port") \
	X(PORT, port, rx_missed, COUNTER, 1, eth.imissed, "Frames the port dropped: rx queue full") \
	X(PORT, port, rx_errors, COUNTER, 0, eth.ierrors, "Frames received in error") \
	X(PORT, port, tx_errors, COUNTER, 1, eth.oerrors, "Frames the port failed to send") \
	X(PORT, port, rx_nombuf, COUNTER, 1, eth.rx_nombuf, "Frames the port dropped: no mbuf") \
	X(PORT, port, sw_tx_dropped, COUNTER, 0, sw_tx_dropped, "Frames an rx lcore could not send on the port")

enum mry_counter_kind {
	MRY_COUNTER_KIND_COUNTER = 0,
	MRY_COUNTER_KIND_GAUGE,
};

/* One row of the table, as generated (see MRY_COUNTER_ROW_ENG). */
struct mry_counter_def {
	const char *group;
	const char *name;             /* NULL for an event table: see elem_name */
	const char *help;
	enum mry_counter_kind kind;
	bool line;
	unsigned src;                 /* which snapshot @off is into (host-defined) */
	unsigned nb;                  /* 1, or the event table's length */
	const char *(*elem_name)(unsigned i);
	size_t off;                   /* offset of the uint64_t (first element) */
};

/* One source's snapshots: @nb instances @stride apart (a label when nb > 1). */
struct mry_counter_src {
	const void *base;
	size_t stride;
	unsigned nb;
	const char *label;            /* label name for instances ("port"), NULL: one */
	const uint16_t *ids;          /* label values (NULL: 0..nb-1) */
};

/*
 * The engine's own stats, per worker, generated from MRY_ENGINE_STATS; the
 * two timestamps after them are state for the alarm and /moray/hold, not
 * counters.
 */
struct mry_engine_stats {
#define MRY_COUNTER_FIELD_(X, name, kind, line, help) uint64_t name;
	MRY_ENGINE_STATS(MRY_COUNTER_FIELD_, _)
#undef MRY_COUNTER_FIELD_
	uint64_t last_clean_ns;          /* time the last clean message was forwarded */
	uint64_t hold_oldest_ns;         /* arrival of the oldest held message (0: none) */
};

/* Every counter of the engine, one snapshot per engine. */
struct mry_counters {
	struct mry_engine_stats engine;
	struct mry_decode_stats decode;
	struct mry_ipfrag_stats ipfrag;
	struct mry_flow_stats flow;
	struct mry_reasm_stats tcp_reasm;
	struct mry_smtp_stats smtp;
	struct mry_mime_stats mime;
	struct mry_scan_stats scan;
	uint64_t evasion[MRY_ENGINE_NB_EVASION];
};

/* Generators: turn the rows of one source into struct mry_counter_def. */
#define MRY_COUNTER_KIND_(k) MRY_COUNTER_KIND_##k
#define MRY_COUNTER_DEF_(srcid, snap, group, name, kind, line, field, help) \
	{ #group, #name, help, MRY_COUNTER_KIND_(kind), line, srcid, 1, NULL, \
	  offsetof(snap, field) },
#define MRY_COUNTER_DEFA_(srcid, snap, group, nb, fn, kind, field, help) \
	{ #group, NULL, help, MRY_COUNTER_KIND_(kind), 0, srcid, nb, fn, \
	  offsetof(snap, field) },

/** Names of the flow table's eviction classes and phases, by index. */
const char *mry_flow_evict_class_name_u(unsigned i);
const char *mry_flow_phase_name_u(unsigned i);

/** Name of engine-level evasion @i (< MRY_ENGINE_NB_EVASION). */
const char *mry_engine_evasion_name(unsigned i);

struct mry_engine;

/** The engine's table (source 0 = struct mry_counters). */
const struct mry_counter_def *mry_counters_engine_table(size_t *nb);

/** Every counter of @e into @c. Not fast-path: copies every module's stats. */
void mry_engine_counters(const struct mry_engine *e, struct mry_counters *c);

/** Adds every counter and gauge of @in to @sum (several workers into one). */
void mry_counters_add(struct mry_counters *sum, const struct mry_counters *in);

/**
 * Calls @fn for every counter of the table @defs over the snapshots @srcs
 * (indexed by def->src; a source with nb == 0 is skipped), event tables
 * expanded one counter per event. @inst is the instance (label) index.
 */
void mry_counters_foreach(const struct mry_counter_def *defs, size_t nb_defs,
			  const struct mry_counter_src *srcs, unsigned nb_srcs,
			  void (*fn)(void *ctx, const struct mry_counter_def *d,
				     const char *name, const struct mry_counter_src *s,
				     unsigned inst, uint64_t value),
			  void *ctx);

/** One JSON object, {"group": {"name": value, ...}, ...}, instances as "name.N". */
int mry_counters_write_json(FILE *f, const struct mry_counter_def *defs, size_t nb_defs,
			    const struct mry_counter_src *srcs, unsigned nb_srcs);

/**
 * Prometheus text exposition (node_exporter textfile collector): # HELP and
 * # TYPE once per metric, moray_<group>_<name>_total for counters,
 * moray_<group>_<name> for gauges, instances labelled.
 */
int mry_counters_write_prom(FILE *f, const struct mry_counter_def *defs, size_t nb_defs,
			    const struct mry_counter_src *srcs, unsigned nb_srcs);

/**
 * Writes the Prometheus text to @path atomically: a temporary file in the
 * same directory, then rename(). 0 or a negative errno.
 */
int mry_counters_write_prom_file(const char *path, const struct mry_counter_def *defs,
				 size_t nb_defs, const struct mry_counter_src *srcs,
				 unsigned nb_srcs);

/**
 * The stats line: "group name value name value | group ..." for the rows
 * marked line, in table order, zeros included (instances summed).
 */
void mry_counters_write_line(FILE *f, const struct mry_counter_def *defs, size_t nb_defs,
			     const struct mry_counter_src *srcs, unsigned nb_srcs);

#endif /* MORAY_COUNTERS_H */
