/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Top talkers of one engine's flow table, for hosts that publish them (the
 * app's workers, once a second). Kept apart from engine.c: a read-only view
 * over the table, no per-packet code.
 */
#include "engine_priv.h"

uint32_t mry_engine_top_sources(struct mry_engine *e, enum mry_flow_top_key key,
				uint32_t n, struct mry_flow_source *out)
{
	return mry_flow_top_sources(e->flows, key, n, out);
}
