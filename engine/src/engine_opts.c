/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The flood options, one table for both hosts: moray (command line and
 * --config keys) and moray-scan parse them through mry_engine_option_set(),
 * so an offline replay runs with what the inline engine runs with, and the
 * usage text names the same defaults.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moray/engine.h"
#include "moray/flow.h"

enum opt_kind {
	K_COUNT,      /* uint32 count */
	K_SECONDS,    /* uint64 ns, given in seconds */
	K_PCT,        /* uint8 percent */
};

enum opt_id {
	O_MAX_FLOWS, O_MAX_HALF_OPEN, O_MAX_PER_SOURCE, O_MAX_MSGS,
	O_T_HALF_OPEN, O_T_GREETING, O_T_CMD, O_T_DATA_INIT, O_T_DATA,
	O_MIN_DATA_RATE, O_T_DATA_END, O_T_CLOSING, O_EM_HIGH, O_EM_LOW, O_EM_PCT,
	O_SHED_LOG,
};

struct opt {
	const char *name;
	enum opt_kind kind;
	uint64_t min, max;
	const char *arg;
	const char *help;
};

static const struct opt opts[] = {
	[O_MAX_FLOWS] = { "max-flows", K_COUNT, 1, MRY_ENGINE_MAX_FLOWS_MAX, "N",
			  "flow table per worker (default 65536)" },
	[O_MAX_HALF_OPEN] = { "max-half-open", K_COUNT, 1, MRY_ENGINE_MAX_FLOWS_MAX, "N",
			      "half-open flow budget (default max-flows/4)" },
	[O_MAX_PER_SOURCE] = { "max-per-source", K_COUNT, 0, MRY_ENGINE_MAX_FLOWS_MAX, "N",
			       "open flows per client address per worker, 0 = unlimited (default 256)" },
	[O_MAX_MSGS] = { "max-msgs", K_COUNT, 1, MRY_ENGINE_MAX_FLOWS_MAX, "N",
			 "messages in progress per worker (default max-flows/16, at least 64)" },
	[O_T_HALF_OPEN] = { "timeout-half-open", K_SECONDS, 1, 3600, "S",
			    "handshake until first data (default 10)" },
	[O_T_GREETING] = { "timeout-greeting", K_SECONDS, 1, 3600, "S",
			   "waiting for the server's 220 (default 300)" },
	[O_T_CMD] = { "timeout-cmd", K_SECONDS, 1, 3600, "S",
		      "command phase, per command line and reply (default 300)" },
	[O_T_DATA_INIT] = { "timeout-data-init", K_SECONDS, 1, 3600, "S",
			    "DATA sent, waiting for 354 (default 120)" },
	[O_T_DATA] = { "timeout-data", K_SECONDS, 1, 3600, "S",
		       "data block, with the minimum rate (default 180)" },
	[O_MIN_DATA_RATE] = { "min-data-rate", K_COUNT, 0, 1u << 30, "B",
			      "bytes/s in DATA/BDAT, 0 = idle-only (default 500)" },
	[O_T_DATA_END] = { "timeout-data-end", K_SECONDS, 1, 3600, "S",
			   "end of data sent, waiting for the final reply (default 600)" },
	[O_T_CLOSING] = { "timeout-closing", K_SECONDS, 1, 3600, "S",
			  "after FIN/RST (default 10)" },
	[O_EM_HIGH] = { "emergency-high", K_PCT, 1, 100, "PCT",
			"fullest pool above this: emergency mode on (default 80)" },
	[O_EM_LOW] = { "emergency-low", K_PCT, 0, 100, "PCT",
		       "below this: emergency mode off (default 60)" },
	[O_EM_PCT] = { "emergency-timeout-pct", K_PCT, 1, 100, "PCT",
		       "deadlines in emergency mode, % of normal (default 20)" },
	[O_SHED_LOG] = { "shed-log-interval", K_SECONDS, 1, 3600, "S",
			 "aggregation interval of \"shed\" events (default 10)" },
};

#define NB_OPTS (sizeof(opts) / sizeof(opts[0]))

static int find(const char *name)
{
	while (*name == '-')
		name++;
	for (unsigned i = 0; i < NB_OPTS; i++)
		if (strcmp(opts[i].name, name) == 0)
			return (int)i;
	return -1;
}

bool mry_engine_option_known(const char *name)
{
	return find(name) >= 0;
}

int mry_engine_option_set(struct mry_engine_config *cfg, const char *name,
			  const char *value, char *why, size_t len)
{
	int i = find(name);
	const struct opt *o;
	unsigned long long v;
	char *end;

	if (i < 0)
		return -ENOENT;
	o = &opts[i];
	errno = 0;
	v = value != NULL && *value >= '0' && *value <= '9' ? strtoull(value, &end, 10) : 0;
	if (value == NULL || *value < '0' || *value > '9' || errno != 0 || *end != '\0' ||
	    v < o->min || v > o->max) {
		snprintf(why, len, "--%s %s: allowed %" PRIu64 " to %" PRIu64 "%s", o->name,
			 value != NULL ? value : "(none)", o->min, o->max,
			 o->kind == K_SECONDS ? " seconds" : o->kind == K_PCT ? " percent" : "");
		return -EINVAL;
	}
	switch ((enum opt_id)i) {
	case O_MAX_FLOWS: cfg->flow.max_flows = (uint32_t)v; break;
	case O_MAX_HALF_OPEN: cfg->flow.max_half_open = (uint32_t)v; break;
	case O_MAX_PER_SOURCE: cfg->flow.max_per_source = (uint32_t)v; break;
	case O_MAX_MSGS: cfg->max_msgs = (uint32_t)v; break;
	case O_T_HALF_OPEN: cfg->flow.timeout_ns[MRY_FLOW_PHASE_HALF_OPEN] = v * MRY_NS_PER_SEC; break;
	case O_T_GREETING: cfg->flow.timeout_ns[MRY_FLOW_PHASE_GREETING] = v * MRY_NS_PER_SEC; break;
	case O_T_CMD: cfg->flow.timeout_ns[MRY_FLOW_PHASE_CMD] = v * MRY_NS_PER_SEC; break;
	case O_T_DATA_INIT: cfg->flow.timeout_ns[MRY_FLOW_PHASE_DATA_INIT] = v * MRY_NS_PER_SEC; break;
	case O_T_DATA: cfg->flow.timeout_ns[MRY_FLOW_PHASE_DATA] = v * MRY_NS_PER_SEC; break;
	case O_MIN_DATA_RATE: cfg->flow.min_data_rate = (uint32_t)v; break;
	case O_T_DATA_END:
		cfg->flow.timeout_ns[MRY_FLOW_PHASE_DATA_END] = v * MRY_NS_PER_SEC;
		break;
	case O_T_CLOSING: cfg->flow.timeout_ns[MRY_FLOW_PHASE_CLOSING] = v * MRY_NS_PER_SEC; break;
	case O_EM_HIGH: cfg->flow.emergency_high_pct = (uint8_t)v; break;
	case O_EM_LOW: cfg->flow.emergency_low_pct = (uint8_t)v; break;
	case O_EM_PCT: cfg->flow.emergency_timeout_pct = (uint8_t)v; break;
	case O_SHED_LOG: cfg->shed_log_interval_ns = v * MRY_NS_PER_SEC; break;
	}
	return 0;
}

void mry_engine_option_usage(FILE *out)
{
	for (unsigned i = 0; i < NB_OPTS; i++) {
		char lhs[40];

		snprintf(lhs, sizeof(lhs), "--%s %s", opts[i].name, opts[i].arg);
		fprintf(out, "  %-28s %s\n", lhs, opts[i].help);
	}
}
