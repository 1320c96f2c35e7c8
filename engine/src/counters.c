/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The counter table (moray/counters.h) turned into data, and the writers
 * every host uses to show it: a JSON object, the Prometheus text exposition
 * and the stats line. The table is a list of offsets into snapshot structs,
 * so a writer never names a counter; a host (moray-scan, the DPDK app)
 * builds its snapshots and hands them in with the table for its sources.
 * None of this is fast path: snapshots are taken on the control side.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moray/counters.h"
#include "moray/engine.h"

#include "counters_priv.h"
#include "engine_priv.h"

#define ROW_ENG(group, name, kind, line, field, help) \
	MRY_COUNTER_DEF_(0, struct mry_counters, group, name, kind, line, field, help)
#define ROWA_ENG(group, nb, fn, kind, field, help) \
	MRY_COUNTER_DEFA_(0, struct mry_counters, group, nb, fn, kind, field, help)
#define ROW_APPW(...)
#define ROWA_APPW(...)
#define ROW_RX(...)
#define ROW_CTL(...)
#define ROW_RING(...)
#define ROW_PORT(...)
#define ENG_X(src, ...) ROW_##src(__VA_ARGS__)
#define ENG_XA(src, ...) ROWA_##src(__VA_ARGS__)

static const struct mry_counter_def engine_table[] = {
	MRY_COUNTERS(ENG_X, ENG_XA)
};

const struct mry_counter_def *mry_counters_engine_table(size_t *nb)
{
	*nb = sizeof(engine_table) / sizeof(engine_table[0]);
	return engine_table;
}

void mry_engine_get_stats(const struct mry_engine *e, struct mry_engine_stats *st)
{
	struct mry_engine_counter_src src;

	mry_engine_counter_src(e, &src);
	*st = *src.st;
}

void mry_engine_counters(const struct mry_engine *e, struct mry_counters *c)
{
	struct mry_engine_counter_src src;

	memset(c, 0, sizeof(*c));
	mry_engine_counter_src(e, &src);
	c->engine = *src.st;
	c->decode = *src.decode;
	memcpy(c->evasion, src.evasion, sizeof(c->evasion));
	mry_ipfrag_get_stats(src.frag, &c->ipfrag);
	mry_flow_get_stats(src.flows, &c->flow);
	mry_reasm_get_stats(src.reasm, &c->tcp_reasm);
	mry_smtp_get_stats(src.smtp, &c->smtp);
	mry_mime_get_stats(src.mime, &c->mime);
	mry_scan_get_stats(src.scanner, &c->scan);
}

const char *mry_flow_evict_class_name_u(unsigned i)
{
	return i < MRY_FLOW_EVICT_MAX ? mry_flow_evict_class_name((enum mry_flow_evict_class)i) : NULL;
}

const char *mry_flow_phase_name_u(unsigned i)
{
	return i < MRY_FLOW_PHASE_MAX ? mry_flow_phase_name((enum mry_flow_phase)i) : NULL;
}

static uint64_t *u64_at(void *base, size_t off)
{
	return (uint64_t *)(void *)((char *)base + off);
}

static uint64_t u64_get(const void *base, size_t off)
{
	uint64_t v;

	memcpy(&v, (const char *)base + off, sizeof(v));
	return v;
}

void mry_counters_add(struct mry_counters *sum, const struct mry_counters *in)
{
	size_t i, j;

	/* every counter and gauge in the table is summed (gauges are levels per worker) */
	for (i = 0; i < sizeof(engine_table) / sizeof(engine_table[0]); i++)
		for (j = 0; j < engine_table[i].nb; j++)
			*u64_at(sum, engine_table[i].off + j * sizeof(uint64_t)) +=
				u64_get(in, engine_table[i].off + j * sizeof(uint64_t));
	/* the timestamps: the latest clean message, the oldest held one */
	if (in->engine.last_clean_ns > sum->engine.last_clean_ns)
		sum->engine.last_clean_ns = in->engine.last_clean_ns;
	if (in->engine.hold_oldest_ns != 0 &&
	    (sum->engine.hold_oldest_ns == 0 || in->engine.hold_oldest_ns < sum->engine.hold_oldest_ns))
		sum->engine.hold_oldest_ns = in->engine.hold_oldest_ns;
}

void mry_counters_foreach(const struct mry_counter_def *defs, size_t nb_defs,
			  const struct mry_counter_src *srcs, unsigned nb_srcs,
			  void (*fn)(void *ctx, const struct mry_counter_def *d,
				     const char *name, const struct mry_counter_src *s,
				     unsigned inst, uint64_t value),
			  void *ctx)
{
	size_t i;
	unsigned j, k;

	for (i = 0; i < nb_defs; i++) {
		const struct mry_counter_def *d = &defs[i];
		const struct mry_counter_src *s;

		if (d->src >= nb_srcs)
			continue;
		s = &srcs[d->src];
		for (j = 0; j < d->nb; j++) {
			const char *name = d->nb == 1 && d->name != NULL ? d->name : d->elem_name(j);

			if (name == NULL)
				continue;
			for (k = 0; k < s->nb; k++)
				fn(ctx, d, name, s, k,
				   u64_get((const char *)s->base + (size_t)k * s->stride,
					   d->off + j * sizeof(uint64_t)));
		}
	}
}

/* ---- JSON ------------------------------------------------------------------ */

struct json_ctx {
	FILE *f;
	const char *group;
	bool first;
};

static void json_one(void *ctx, const struct mry_counter_def *d, const char *name,
		     const struct mry_counter_src *s, unsigned inst, uint64_t v)
{
	struct json_ctx *j = ctx;

	if (j->group == NULL || strcmp(j->group, d->group) != 0) {
		fprintf(j->f, "%s\"%s\":{", j->group == NULL ? "" : "},", d->group);
		j->group = d->group;
		j->first = true;
	}
	fprintf(j->f, "%s\"%s", j->first ? "" : ",", name);
	if (s->label != NULL)
		fprintf(j->f, ".%u", s->ids != NULL ? s->ids[inst] : inst);
	fprintf(j->f, "\":%" PRIu64, v);
	j->first = false;
}

int mry_counters_write_json(FILE *f, const struct mry_counter_def *defs, size_t nb_defs,
			    const struct mry_counter_src *srcs, unsigned nb_srcs)
{
	struct json_ctx j = { f, NULL, true };

	fputc('{', f);
	mry_counters_foreach(defs, nb_defs, srcs, nb_srcs, json_one, &j);
	fputs(j.group != NULL ? "}}\n" : "}\n", f);
	return ferror(f) ? -EIO : 0;
}

/* ---- Prometheus text ------------------------------------------------------- */

struct prom_ctx {
	FILE *f;
	const struct mry_counter_def *last_def;
	const char *last_name;
};

static void prom_one(void *ctx, const struct mry_counter_def *d, const char *name,
		     const struct mry_counter_src *s, unsigned inst, uint64_t v)
{
	struct prom_ctx *p = ctx;
	bool counter = d->kind == MRY_COUNTER_KIND_COUNTER;
	const char *suffix = counter ? "_total" : "";

	/* one HELP/TYPE block per metric, before its first sample */
	if (p->last_def != d || p->last_name != name) {
		fprintf(p->f, "# HELP moray_%s_%s%s %s", d->group, name, suffix, d->help);
		if (d->nb > 1)
			fprintf(p->f, ": %s", name);
		fprintf(p->f, "\n# TYPE moray_%s_%s%s %s\n", d->group, name, suffix,
			counter ? "counter" : "gauge");
		p->last_def = d;
		p->last_name = name;
	}
	fprintf(p->f, "moray_%s_%s%s", d->group, name, suffix);
	if (s->label != NULL)
		fprintf(p->f, "{%s=\"%u\"}", s->label, s->ids != NULL ? s->ids[inst] : inst);
	fprintf(p->f, " %" PRIu64 "\n", v);
}

int mry_counters_write_prom(FILE *f, const struct mry_counter_def *defs, size_t nb_defs,
			    const struct mry_counter_src *srcs, unsigned nb_srcs)
{
	struct prom_ctx p = { f, NULL, NULL };

	mry_counters_foreach(defs, nb_defs, srcs, nb_srcs, prom_one, &p);
	return ferror(f) ? -EIO : 0;
}

int mry_counters_write_prom_file(const char *path, const struct mry_counter_def *defs,
				 size_t nb_defs, const struct mry_counter_src *srcs,
				 unsigned nb_srcs)
{
	char tmp[4096];
	FILE *f;
	int fd, rc;

	/* same directory, so rename() is atomic; the collector ignores names
	 * that do not end in .prom, so readers never see a partial file */
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = mkstemp(tmp);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (f == NULL) {
		rc = -errno;
		close(fd);
		unlink(tmp);
		return rc;
	}
	rc = mry_counters_write_prom(f, defs, nb_defs, srcs, nb_srcs);
	if (fchmod(fd, 0644) != 0 && rc == 0)
		rc = -errno;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0)
		unlink(tmp);
	return rc;
}

/* ---- the stats line -------------------------------------------------------- */

struct line_ctx {
	FILE *f;
	const char *group;
	const struct mry_counter_def *def;
	const char *name;
	uint64_t sum;
};

static void line_flush(struct line_ctx *l)
{
	if (l->def == NULL)
		return;
	if (l->group == NULL || strcmp(l->group, l->def->group) != 0) {
		fprintf(l->f, "%s%s", l->group == NULL ? "" : " | ", l->def->group);
		l->group = l->def->group;
	}
	fprintf(l->f, " %s %" PRIu64, l->name, l->sum);
	l->def = NULL;
}

static void line_one(void *ctx, const struct mry_counter_def *d, const char *name,
		     const struct mry_counter_src *s, unsigned inst, uint64_t v)
{
	struct line_ctx *l = ctx;

	(void)s;
	(void)inst;
	if (!d->line)
		return;
	if (l->def != d || l->name != name) {
		line_flush(l);
		l->def = d;
		l->name = name;
		l->sum = 0;
	}
	l->sum += v;
}

void mry_counters_write_line(FILE *f, const struct mry_counter_def *defs, size_t nb_defs,
			     const struct mry_counter_src *srcs, unsigned nb_srcs)
{
	struct line_ctx l = { f, NULL, NULL, NULL, 0 };

	mry_counters_foreach(defs, nb_defs, srcs, nb_srcs, line_one, &l);
	line_flush(&l);
	fputc('\n', f);
}

/* The engine's counters, for the table above (counters_priv.h). */
void mry_engine_counter_src(const struct mry_engine *e, struct mry_engine_counter_src *src)
{
	src->st = &e->st;
	src->decode = &e->dst;
	src->evasion = &e->ev_count[EV_TCP_CONFLICT];
	src->frag = e->frag;
	src->flows = e->flows;
	src->reasm = e->reasm;
	src->smtp = e->smtp;
	src->mime = e->mime;
	src->scanner = e->scanner;
}

_Static_assert(EV_MAX - EV_TCP_CONFLICT == MRY_ENGINE_NB_EVASION, "engine evasions in the counter table");

const char *mry_engine_evasion_name(unsigned i)
{
	return i < MRY_ENGINE_NB_EVASION ? ev_name(EV_TCP_CONFLICT + i) : NULL;
}
