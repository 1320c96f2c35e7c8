/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Start-up checks of the engine's configuration, shared by moray and
 * moray-scan so both refuse the same values with the same words. Each
 * parser checks what a value looks like (a number, a list); this checks
 * what the values mean together: a setting that would turn every message
 * into a tempfail or leave none judged is refused at start, not discovered
 * in the verdict log. Messages name the command-line option.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "moray/engine.h"

int mry_engine_config_check(const struct mry_engine_config *c,
			    const struct mry_sigdb_ctl_config *db, char *why, size_t len)
{
	uint64_t hold_s = c->hold_timeout_ns / MRY_NS_PER_SEC;

	if (c->nb_smtp_ports == 0 || c->nb_smtp_ports > MRY_ENGINE_MAX_SMTP_PORTS) {
		snprintf(why, len, "--smtp-ports: 1 to %u ports, got %u",
			 MRY_ENGINE_MAX_SMTP_PORTS, c->nb_smtp_ports);
		return -EINVAL;
	}
	for (unsigned i = 0; i < c->nb_smtp_ports; i++) {
		if (c->smtp_ports[i] == 0) {
			snprintf(why, len, "--smtp-ports: port 0 is not a port (1-65535)");
			return -EINVAL;
		}
		for (unsigned j = 0; j < i; j++) {
			if (c->smtp_ports[j] == c->smtp_ports[i]) {
				snprintf(why, len, "--smtp-ports: port %u listed twice",
					 c->smtp_ports[i]);
				return -EINVAL;
			}
		}
	}
	if (c->hold_store_bytes < MRY_ENGINE_HOLD_STORE_MIN ||
	    c->hold_store_bytes > MRY_ENGINE_HOLD_STORE_MAX) {
		snprintf(why, len, "--hold-store-size %" PRIu64 ": allowed %llu (1M) to "
			 "%llu (1T) bytes; a smaller store tempfails every message that "
			 "must be held", c->hold_store_bytes,
			 MRY_ENGINE_HOLD_STORE_MIN, MRY_ENGINE_HOLD_STORE_MAX);
		return -EINVAL;
	}
	if (c->hold_timeout_ns < MRY_NS_PER_SEC || hold_s > MRY_ENGINE_HOLD_TIMEOUT_MAX_S) {
		snprintf(why, len, "--hold-timeout %" PRIu64 ": allowed 1 to %u seconds; "
			 "clients stop waiting for the reply to the end of data after "
			 "10 minutes (RFC 5321 4.5.3.2.6), a later 451 reaches nobody",
			 hold_s, MRY_ENGINE_HOLD_TIMEOUT_MAX_S);
		return -EINVAL;
	}
	if (c->flow.max_flows == 0 || c->flow.max_flows > MRY_ENGINE_MAX_FLOWS_MAX) {
		snprintf(why, len, "--max-flows %u: allowed 1 to %u", c->flow.max_flows,
			 MRY_ENGINE_MAX_FLOWS_MAX);
		return -EINVAL;
	}
	if (db != NULL && db->max_age_s != 0 && db->max_age_s < MRY_ENGINE_DB_MAX_AGE_MIN_S) {
		snprintf(why, len, "--db-max-age %" PRIu64 ": 0 (no limit) or at least %u "
			 "seconds; a shorter limit refuses every database before it "
			 "can be used", db->max_age_s, MRY_ENGINE_DB_MAX_AGE_MIN_S);
		return -EINVAL;
	}
	if (c->hold_max_msgs == 0) {
		snprintf(why, len, "message limits must be at least 1 (hold ring %u)",
			 c->hold_max_msgs);
		return -EINVAL;
	}
	if (c->max_msgs > MRY_ENGINE_MAX_FLOWS_MAX) {
		snprintf(why, len, "--max-msgs %u: allowed 1 to %u", c->max_msgs,
			 MRY_ENGINE_MAX_FLOWS_MAX);
		return -EINVAL;
	}
	if (c->flow.max_half_open > c->flow.max_flows) {
		snprintf(why, len, "--max-half-open %u: at most --max-flows (%u)",
			 c->flow.max_half_open, c->flow.max_flows);
		return -EINVAL;
	}
	for (unsigned p = 0; p < MRY_FLOW_PHASE_MAX; p++) {
		static const char *const opt[MRY_FLOW_PHASE_MAX] = {
			"timeout-half-open", "timeout-greeting", "timeout-cmd",
			"timeout-data-init", "timeout-data", "timeout-data-end",
			"timeout-closing",
		};
		uint64_t t = c->flow.timeout_ns[p];

		if (t != 0 && (t < MRY_NS_PER_SEC || t > 3600 * MRY_NS_PER_SEC)) {
			snprintf(why, len, "--%s %" PRIu64 ": allowed 1 to 3600 seconds",
				 opt[p], (uint64_t)(t / MRY_NS_PER_SEC));
			return -EINVAL;
		}
	}
	if (c->flow.emergency_high_pct > 100 || c->flow.emergency_timeout_pct > 100 ||
	    (c->flow.emergency_low_pct != 0 &&
	     c->flow.emergency_low_pct >= c->flow.emergency_high_pct)) {
		snprintf(why, len, "--emergency-high %u, --emergency-low %u, "
			 "--emergency-timeout-pct %u: percentages up to 100, low below high",
			 c->flow.emergency_high_pct, c->flow.emergency_low_pct,
			 c->flow.emergency_timeout_pct);
		return -EINVAL;
	}
	if (c->shed_log_interval_ns != 0 && c->shed_log_interval_ns < MRY_NS_PER_SEC) {
		snprintf(why, len, "--shed-log-interval: at least 1 second");
		return -EINVAL;
	}
	return 0;
}
