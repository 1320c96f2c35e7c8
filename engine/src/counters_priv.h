/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What counters.c reads inside an engine: the engine keeps its state private
 * and hands out read-only pointers to where its counters live.
 */
#ifndef MORAY_COUNTERS_PRIV_H
#define MORAY_COUNTERS_PRIV_H

#include <stdint.h>

#include "moray/engine.h"

struct mry_engine_counter_src {
	const struct mry_engine_stats *st;
	const struct mry_decode_stats *decode;
	const uint64_t *evasion;               /* MRY_ENGINE_NB_EVASION */
	const struct mry_ipfrag_table *frag;
	const struct mry_flow_table *flows;
	const struct mry_reasm *reasm;
	const struct mry_smtp_ctx *smtp;
	const struct mry_mime_ctx *mime;
	const struct mry_scanner *scanner;
};

/** Where @e's counters live (valid while @e is). */
void mry_engine_counter_src(const struct mry_engine *e, struct mry_engine_counter_src *src);

#endif /* MORAY_COUNTERS_PRIV_H */
