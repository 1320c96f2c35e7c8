/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The engine's log hook. The engine never includes rte_log.h: the host
 * installs a sink (the app routes to moray.<module> log types).
 */
#include <stdio.h>

#include "moray/common.h"

static void stderr_sink(enum mry_log_level level, const char *module,
			const char *msg, void *ctx)
{
	static const char *const names[] = { "ERR", "WARNING", "INFO", "DEBUG" };

	(void)ctx;
	fprintf(stderr, "moray.%s: %s: %s\n", module,
		names[level <= MRY_LOG_DEBUG ? level : MRY_LOG_DEBUG], msg);
}

static mry_log_fn log_fn = stderr_sink;
static void *log_ctx;
static enum mry_log_level log_level = MRY_LOG_INFO;

void mry_log_set_handler(mry_log_fn fn, void *ctx)
{
	log_fn = fn != NULL ? fn : stderr_sink;
	log_ctx = ctx;
}

void mry_log_set_level(enum mry_log_level level)
{
	log_level = level;
}

void mry_log(enum mry_log_level level, const char *module, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_fn(level, module, buf, log_ctx);
}

bool mry_ratelimit_ok(struct mry_ratelimit *rl, uint64_t now_ns,
		      uint64_t interval_ns, uint64_t *suppressed)
{
	if (!rl->started || now_ns - rl->last_ns >= interval_ns) {
		if (suppressed != NULL)
			*suppressed = rl->suppressed;
		rl->suppressed = 0;
		rl->last_ns = now_ns;
		rl->started = true;
		return true;
	}
	rl->suppressed++;
	return false;
}
