/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A set of blocked IPv4 and IPv6 prefixes (CIDR), each with an optional
 * expiry time. A list is immutable once built: adding or removing a prefix
 * gives a new list and leaves the old one untouched, so the host can publish
 * a list to its workers by swapping one pointer (RCU) and free the old one
 * once every worker has passed a quiescent point. Pure: no DPDK, no I/O
 * except mry_blocklist_load_file().
 */
#ifndef MORAY_BLOCKLIST_H
#define MORAY_BLOCKLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moray/common.h"

/* Most prefixes one list holds (a file or add past it is refused). */
#define MRY_BLOCKLIST_MAX_ENTRIES (1u << 20)
/* Longest line of a blocklist file, without its line end. */
#define MRY_BLOCKLIST_MAX_LINE    255u

/* One blocked prefix. */
struct mry_blocklist_entry {
	uint8_t addr[16];          /* network address, host bits zero; IPv4 in the first 4 bytes */
	uint8_t ip_version;        /* 4 or 6 */
	uint8_t prefix_len;        /* 0..32 or 0..128 */
	uint8_t pad[6];
	uint64_t expires_ns;       /* 0 = never; else blocked while now_ns < expires_ns */
};

struct mry_blocklist;

/**
 * Parse one prefix: "192.0.2.0/24", "2001:db8::/32", or a single address
 * ("192.0.2.7" = /32, "2001:db8::1" = /128). Host bits set below the prefix
 * ("10.0.0.1/8") are refused: such a line is usually a typo that would block
 * far more than meant. Leading and trailing blanks are ignored. expires_ns
 * is set to 0.
 * @param text  not NUL-terminated; @len bytes
 * @param err   receives a reason on failure (may be NULL)
 * @return 0, or -EINVAL (err says why).
 */
int mry_blocklist_parse_entry(const char *text, size_t len,
			      struct mry_blocklist_entry *e,
			      char *err, size_t err_len);

/** Write "192.0.2.0/24" / "2001:db8::/32" into @buf. @return 0 or -ENOSPC. */
int mry_blocklist_format_entry(const struct mry_blocklist_entry *e,
			       char *buf, size_t len);

/**
 * A list of @n entries (copied; need not be sorted or unique). A prefix
 * given twice keeps the later expiry (0 = never wins). Entries are checked
 * (version, prefix length, host bits zero).
 * @return the list, or NULL: bad entry or more than MRY_BLOCKLIST_MAX_ENTRIES
 * (err says which), out of memory.
 */
struct mry_blocklist *mry_blocklist_build(const struct mry_alloc *a,
					  const struct mry_blocklist_entry *e,
					  size_t n, char *err, size_t err_len);

/** A list from prefix strings, as mry_blocklist_parse_entry() reads them. */
struct mry_blocklist *mry_blocklist_from_strings(const struct mry_alloc *a,
						 const char *const *s, size_t n,
						 char *err, size_t err_len);

/**
 * A list from the text of a blocklist file: one prefix a line, '#' starts a
 * comment, blank lines and CRLF line ends allowed. Any bad line fails the
 * whole text (never half-loaded): NULL, and err says "line N: ...".
 */
struct mry_blocklist *mry_blocklist_parse(const struct mry_alloc *a,
					  const char *text, size_t len,
					  char *err, size_t err_len);

/** mry_blocklist_parse() over the file at @path (err names I/O errors too). */
struct mry_blocklist *mry_blocklist_load_file(const struct mry_alloc *a,
					      const char *path,
					      char *err, size_t err_len);

/**
 * A new list: @bl (NULL = empty) plus @e; the same prefix already there
 * takes @e's expiry. @bl is unchanged.
 * @return 0 and *out; -EINVAL bad entry; -ENOSPC list full; -ENOMEM.
 */
int mry_blocklist_add(const struct mry_alloc *a, const struct mry_blocklist *bl,
		      const struct mry_blocklist_entry *e, struct mry_blocklist **out);

/**
 * A new list: @bl without the exact prefix @e (expiry ignored). @bl is
 * unchanged.
 * @return 0 and *out; -ENOENT not in the list (*out NULL); -ENOMEM.
 */
int mry_blocklist_remove(const struct mry_alloc *a, const struct mry_blocklist *bl,
			 const struct mry_blocklist_entry *e, struct mry_blocklist **out);

/**
 * A new list without the entries expired at @now_ns.
 * @return how many were dropped (0: *out NULL, keep @bl), or -ENOMEM.
 */
int mry_blocklist_prune(const struct mry_alloc *a, const struct mry_blocklist *bl,
			uint64_t now_ns, struct mry_blocklist **out);

/** Frees a list (NULL accepted). */
void mry_blocklist_free(struct mry_blocklist *bl);

/**
 * Is @addr (4 bytes for IPv4, 16 for IPv6) inside a prefix of @bl that has
 * not expired at @now_ns? NULL list: false. Fast-path safe: no allocation,
 * a binary search per distinct prefix length in the list.
 */
bool mry_blocklist_match(const struct mry_blocklist *bl, uint8_t ip_version,
			 const uint8_t *addr, uint64_t now_ns);

/** Number of entries (expired ones included until pruned). */
size_t mry_blocklist_count(const struct mry_blocklist *bl);

/**
 * Entry @i, in order: IPv4 before IPv6, then by address, then shorter
 * prefix first. NULL past the end.
 */
const struct mry_blocklist_entry *mry_blocklist_entry_at(const struct mry_blocklist *bl,
							 size_t i);

#endif /* MORAY_BLOCKLIST_H */
