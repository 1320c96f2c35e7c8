/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Option values written by people: numbers with size suffixes and port
 * lists, parsed the same way by moray, its --config file and moray-scan.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "moray/common.h"

int mry_parse_u64(const char *s, uint64_t min, uint64_t max, bool size_suffix, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s == '\0' || *s == '-' || *s == '+' || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	/* 0x... is hexadecimal (masks); a leading 0 is not octal: "010" is ten */
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		if (!isxdigit((unsigned char)s[2]))
			return -EINVAL;
		v = strtoull(s + 2, &end, 16);
	} else {
		v = strtoull(s, &end, 10);
	}
	if (errno != 0 || end == s)
		return -EINVAL;
	if (size_suffix && *end != '\0' && end[1] == '\0') {
		unsigned shift;

		switch (*end) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		default: return -EINVAL;
		}
		if (v > (UINT64_MAX >> shift))
			return -ERANGE;
		v <<= shift;
		end++;
	}
	if (*end != '\0')
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int mry_parse_port_list(const char *s, uint16_t *ports, unsigned cap)
{
	const char *p = s;
	unsigned n = 0;

	if (s == NULL)
		return -EINVAL;
	while (1) {
		char tok[16];
		const char *e = strchr(p, ',');
		size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
		uint64_t v;

		while (len > 0 && isspace((unsigned char)*p)) {
			p++;
			len--;
		}
		while (len > 0 && isspace((unsigned char)p[len - 1]))
			len--;
		if (len == 0 || len >= sizeof(tok))
			return -EINVAL;
		memcpy(tok, p, len);
		tok[len] = '\0';
		if (mry_parse_u64(tok, 1, 65535, false, &v) != 0)
			return -EINVAL;
		if (n == cap)
			return -E2BIG;
		ports[n++] = (uint16_t)v;
		if (e == NULL)
			return (int)n;
		p = e + 1;
	}
}
