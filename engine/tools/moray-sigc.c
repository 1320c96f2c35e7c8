/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * moray-sigc: the signature compiler (DESIGN.md "Interfaces").
 *
 *   moray-sigc compile -o OUT.mdb [--generation N] [--sign-key K] [--notes] SRC...
 *   moray-sigc verify [--pubkey P] FILE     exit 0 only for a valid file
 *   moray-sigc info [--list] FILE
 *   moray-sigc keygen OUT.key OUT.pub
 *
 * Sources ending in .ndb are ClamAV body signatures, others moray format.
 * --generation defaults to the creation time (unix seconds), so a later
 * compile is always a newer generation; SOURCE_DATE_EPOCH, when set, fixes
 * the creation time for reproducible builds.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "moray/sigdb.h"
#include "moray/sigsrc.h"

static void usage(FILE *f)
{
	fputs("usage: moray-sigc compile -o OUT.mdb [--generation N] [--sign-key K] [--notes] SRC...\n"
	      "       moray-sigc verify [--pubkey P] FILE\n"
	      "       moray-sigc info [--list] FILE\n"
	      "       moray-sigc keygen OUT.key OUT.pub\n", f);
}

static int read_key(const char *path, uint8_t *key, size_t len)
{
	char why[128];

	if (mry_sigdb_read_key(path, key, len, why, sizeof(why)) != 0) {
		fprintf(stderr, "moray-sigc: %s: %s\n", path, why);
		return -1;
	}
	return 0;
}

static int write_key(const char *path, const uint8_t *key, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	if (fd < 0 || write(fd, key, len) != (ssize_t)len || fsync(fd) != 0) {
		fprintf(stderr, "moray-sigc: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int cmd_compile(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "generation", required_argument, NULL, 'g' },
		{ "sign-key", required_argument, NULL, 'k' },
		{ "notes", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	const char *outp = NULL, *keyp = NULL, *sde;
	struct mry_sigc_opts o = { 0 };
	struct mry_sigc_report rep;
	const struct mry_ndb_report *nr;
	struct mry_sigsrc *s;
	uint8_t key[MRY_SIGDB_SECKEY_BYTES];
	uint8_t *img = NULL;
	size_t len = 0;
	bool gen_set = false, notes = false;
	int c, rc, ret = 1;

	while ((c = getopt_long(argc, argv, "o:g:k:n", lo, NULL)) != -1) {
		switch (c) {
		case 'o': outp = optarg; break;
		case 'g': {
			char *e;

			errno = 0;
			o.generation = strtoull(optarg, &e, 10);
			if (errno != 0 || *e != '\0' || optarg[0] == '-') {
				fprintf(stderr, "moray-sigc: bad --generation '%s'\n", optarg);
				return 2;
			}
			gen_set = true;
			break;
		}
		case 'k': keyp = optarg; break;
		case 'n': notes = true; break;
		default: usage(stderr); return 2;
		}
	}
	if (outp == NULL || optind >= argc) {
		usage(stderr);
		return 2;
	}
	sde = getenv("SOURCE_DATE_EPOCH");
	o.created = sde != NULL ? strtoull(sde, NULL, 10) : (uint64_t)time(NULL);
	if (!gen_set)
		o.generation = o.created;
	if (keyp != NULL) {
		if (read_key(keyp, key, sizeof(key)) != 0)
			return 1;
		o.sign_key = key;
	}
	s = mry_sigsrc_create();
	if (s == NULL)
		return 1;
	for (int i = optind; i < argc; i++) {
		rc = mry_sigsrc_add_file(s, argv[i]);
		if (rc == -ENOMEM)
			goto out;
	}
	if (mry_sigsrc_nb_errors(s) == 0)
		rc = mry_sigsrc_compile(s, &o, &img, &len, &rep);
	else
		rc = -EINVAL;
	/* after compiling: Hyperscan may have refused translations too */
	nr = mry_sigsrc_ndb_report(s);
	if (nr->lines > 0) {
		uint32_t skipped = 0;

		for (int r = 0; r < MRY_NDB_SKIP_MAX; r++)
			skipped += nr->skipped[r];
		printf("ndb: %u signatures, %u translated, %u not translated",
		       nr->lines, nr->translated, skipped);
		for (int r = 0; r < MRY_NDB_SKIP_MAX; r++)
			if (nr->skipped[r] != 0)
				printf(", %s %u", mry_ndb_skip_name((enum mry_ndb_skip)r),
				       nr->skipped[r]);
		if (nr->flevel_ignored != 0)
			printf("; MinFL/MaxFL ignored on %u", nr->flevel_ignored);
		if (nr->wide_bounds != 0)
			printf("; %u bounds above 32767 widened", nr->wide_bounds);
		printf("\n");
	}

	if (notes || rc != 0)
		for (uint32_t i = 0; i < mry_sigsrc_nb_notes(s); i++)
			if (notes)
				printf("note: %s\n", mry_sigsrc_note(s, i));
	if (rc != 0) {
		for (uint32_t i = 0; mry_sigsrc_error(s, i) != NULL; i++)
			fprintf(stderr, "%s\n", mry_sigsrc_error(s, i));
		if (mry_sigsrc_nb_errors(s) > MRY_SIGSRC_MAX_ERRORS)
			fprintf(stderr, "... %u errors in all\n", mry_sigsrc_nb_errors(s));
		fprintf(stderr, "moray-sigc: %s not written (%s)\n", outp, strerror(-rc));
		goto out;
	}
	rc = mry_sigdb_write_file(outp, img, len);
	if (rc != 0) {
		fprintf(stderr, "moray-sigc: %s: %s\n", outp, strerror(-rc));
		goto out;
	}
	printf("%s: generation %llu, %u signatures (raw %u, decoded %u, headers %u), "
	       "%zu bytes%s, compiled in %.3f s\n",
	       outp, (unsigned long long)o.generation, rep.nb_sigs,
	       rep.per_slot[MRY_SLOT_RAW], rep.per_slot[MRY_SLOT_DECODED],
	       rep.per_slot[MRY_SLOT_HEADERS], len, keyp != NULL ? ", signed" : "",
	       rep.compile_s);
	printf("hyperscan: db bytes raw %zu decoded %zu headers %zu; stream state raw %zu "
	       "decoded %zu headers %zu; scratch %zu\n",
	       rep.hs_size[0], rep.hs_size[1], rep.hs_size[2], rep.stream_size[0],
	       rep.stream_size[1], rep.stream_size[2], rep.scratch_size);
	ret = 0;
out:
	free(img);
	mry_sigsrc_destroy(s);
	return ret;
}

static int load(int argc, char **argv, bool verify, bool *list, struct mry_sigdb_gen **g,
		const char **path)
{
	static const struct option lo[] = {
		{ "pubkey", required_argument, NULL, 'p' },
		{ "list", no_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	struct mry_sigdb_load_opts opts = { 0 };
	uint8_t pk[MRY_SIGDB_PUBKEY_BYTES];
	enum mry_sigdb_status st;
	char detail[256];
	int c;

	while ((c = getopt_long(argc, argv, verify ? "p:" : "l", lo, NULL)) != -1) {
		if (c == 'p' && verify) {
			if (read_key(optarg, pk, sizeof(pk)) != 0)
				return 2;
			opts.pubkey = pk;
		} else if (c == 'l' && !verify) {
			*list = true;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 2;
	}
	*path = argv[optind];
	st = mry_sigdb_load_file(*path, &opts, g, detail, sizeof(detail));
	if (st != MRY_SIGDB_OK) {
		printf("%s: invalid: %s: %s\n", *path, mry_sigdb_status_name(st), detail);
		return 1;
	}
	return 0;
}

static void quiet_log(enum mry_log_level level, const char *module, const char *msg,
		      void *ctx)
{
	(void)level;
	(void)module;
	(void)msg;
	(void)ctx;
}

static int cmd_verify(int argc, char **argv)
{
	struct mry_sigdb_gen *g = NULL;
	const char *path = NULL;
	int rc;

	mry_log_set_handler(quiet_log, NULL);
	rc = load(argc, argv, true, NULL, &g, &path);
	if (rc != 0)
		return rc;
	printf("%s: valid: generation %llu, %u signatures%s\n", path,
	       (unsigned long long)mry_sigdb_gen_number(g), mry_sigdb_gen_nb_sigs(g),
	       mry_sigdb_gen_signed(g) ? ", signed" : "");
	mry_sigdb_gen_unref(g);
	return 0;
}

static const char *action_name(uint8_t a)
{
	switch (a) {
	case MRY_ACTION_REJECT: return "reject";
	case MRY_ACTION_TEMPFAIL: return "tempfail";
	case MRY_ACTION_LOG: return "log";
	default: return "none";
	}
}

static int cmd_info(int argc, char **argv)
{
	static const char *const slot[] = { "raw", "decoded", "headers" };
	struct mry_sigdb_gen *g = NULL;
	const char *path = NULL;
	bool list = false;
	uint32_t per_action[4] = { 0 };
	time_t t;
	char tbuf[64];
	int rc;

	mry_log_set_handler(quiet_log, NULL);
	rc = load(argc, argv, false, &list, &g, &path);
	if (rc != 0)
		return rc;
	t = (time_t)mry_sigdb_gen_created(g);
	strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	printf("file:        %s\n", path);
	printf("generation:  %llu\n", (unsigned long long)mry_sigdb_gen_number(g));
	printf("created:     %s (%llu)\n", tbuf, (unsigned long long)mry_sigdb_gen_created(g));
	printf("signatures:  %u\n", mry_sigdb_gen_nb_sigs(g));
	printf("signed:      %s\n", mry_sigdb_gen_signed(g) ? "yes (Ed25519)" : "no");
	printf("hyperscan:   %s\n", mry_sigdb_gen_hs_info(g));
	printf("scratch:     %zu bytes per worker\n", mry_sigdb_gen_scratch_size(g));
	printf("digest:      ");
	for (int i = 0; i < MRY_SIGDB_DIGEST_BYTES; i++)
		printf("%02x", mry_sigdb_gen_digest(g)[i]);
	printf(" (BLAKE2b-256)\n");
	for (int k = 0; k < MRY_SLOT_MAX; k++)
		printf("slot %-8s db %zu bytes, stream state %zu bytes\n", slot[k],
		       mry_sigdb_gen_db_size(g, (enum mry_sigdb_slot)k),
		       mry_sigdb_gen_stream_size(g, (enum mry_sigdb_slot)k));
	for (uint32_t i = 0; i < mry_sigdb_gen_nb_sigs(g); i++)
		per_action[mry_sigdb_gen_sig_at(g, i)->action & 3]++;
	printf("actions:     reject %u, tempfail %u, log %u\n", per_action[MRY_ACTION_REJECT],
	       per_action[MRY_ACTION_TEMPFAIL], per_action[MRY_ACTION_LOG]);
	if (list) {
		for (uint32_t i = 0; i < mry_sigdb_gen_nb_sigs(g); i++) {
			const struct mry_sig_meta *m = mry_sigdb_gen_sig_at(g, i);

			char tg[32] = "";

			if (m->targets & MRY_TARGET_RAW)
				strcat(tg, ",raw");
			if (m->targets & MRY_TARGET_DECODED)
				strcat(tg, ",decoded");
			if (m->targets & MRY_TARGET_HEADERS)
				strcat(tg, ",headers");
			printf("%u\t%s\t%s\t%s\n", m->id, m->name, action_name(m->action), tg + 1);
		}
	}
	mry_sigdb_gen_unref(g);
	return 0;
}

static int cmd_keygen(int argc, char **argv)
{
	uint8_t pk[MRY_SIGDB_PUBKEY_BYTES], sk[MRY_SIGDB_SECKEY_BYTES];

	if (argc != 3) {
		usage(stderr);
		return 2;
	}
	if (mry_sigdb_keygen(pk, sk) != 0)
		return 1;
	if (write_key(argv[1], sk, sizeof(sk), 0600) != 0 ||
	    write_key(argv[2], pk, sizeof(pk), 0644) != 0)
		return 1;
	printf("secret key %s, public key %s\n", argv[1], argv[2]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "compile") == 0)
		return cmd_compile(argc - 1, argv + 1);
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 1, argv + 1);
	if (strcmp(argv[1], "info") == 0)
		return cmd_info(argc - 1, argv + 1);
	if (strcmp(argv[1], "keygen") == 0)
		return cmd_keygen(argc - 1, argv + 1);
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
