/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Which vector kernels this CPU runs. The engine is built for the x86-64
 * baseline (SSE2) so one binary runs everywhere; the few byte loops that
 * dominate (base64, DATA line scanning) also have AVX2 versions picked here
 * at run time, as Hyperscan picks its own. MORAY_FORCE_SCALAR=1 in the
 * environment (read once, at the first probe) keeps every kernel on the
 * baseline, so the scalar code can be tested on an AVX2 machine.
 */
#include <stdlib.h>
#include <string.h>

#include "moray/common.h"

/*
 * 0 not yet probed, 1 baseline (no AVX2, or MORAY_FORCE_SCALAR=1), 2 AVX2;
 * racing first callers store the same
 */
static int avx2_state;
static bool baseline_forced;

bool mry_cpu_avx2(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	int s = __atomic_load_n(&avx2_state, __ATOMIC_RELAXED);

	if (mry_unlikely(s == 0)) {
		const char *force = getenv("MORAY_FORCE_SCALAR");

		__builtin_cpu_init();
		s = __builtin_cpu_supports("avx2") && !(force != NULL && strcmp(force, "1") == 0)
			    ? 2 : 1;
		__atomic_store_n(&avx2_state, s, __ATOMIC_RELAXED);
	}
	return s == 2 && !__atomic_load_n(&baseline_forced, __ATOMIC_RELAXED);
#else
	return false;
#endif
}

bool mry_cpu_force_baseline(bool on)
{
	__atomic_store_n(&baseline_forced, on, __ATOMIC_RELAXED);
	return mry_cpu_avx2();
}
