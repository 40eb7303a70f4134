/*
 * Statistics: every queue keeps its own counters (no sharing on the hot path, see rf_stat_inc
 * in ringfuse_i.h); reading them sums a snapshot. The printed form is one line per queue so tests
 * and people can read it.
 */
#include "ringfuse_i.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void add_one(struct rf_queue_stats *dst, struct rf_queue_stats *src)
{
	dst->requests += rf_stat_get(src->requests);
	for (int i = 0; i < RF_STATS_OPCODES; i++)
		dst->by_opcode[i] += rf_stat_get(src->by_opcode[i]);
	dst->bytes_in += rf_stat_get(src->bytes_in);
	dst->bytes_out += rf_stat_get(src->bytes_out);
	dst->enters += rf_stat_get(src->enters);
	dst->commits += rf_stat_get(src->commits);
	dst->handler_ns += rf_stat_get(src->handler_ns);
	dst->errors += rf_stat_get(src->errors);
	dst->bad_requests += rf_stat_get(src->bad_requests);
	dst->dup_replies += rf_stat_get(src->dup_replies);
	dst->deferred += rf_stat_get(src->deferred);
	dst->spreads += rf_stat_get(src->spreads);
	dst->spins += rf_stat_get(src->spins);
	dst->spin_hits += rf_stat_get(src->spin_hits);
	dst->spin_ns += rf_stat_get(src->spin_ns);
	dst->entries += rf_stat_get(src->entries);
	dst->grows += rf_stat_get(src->grows);
	dst->trims += rf_stat_get(src->trims);
	dst->payload_resident += rf_stat_get(src->payload_resident);
	dst->thread += rf_stat_get(src->thread);
}

static void add_stats(struct rf_queue_stats *dst, struct rf_qstats *src)
{
	add_one(dst, &src->own);
	add_one(dst, &src->shared);
}

int rf_session_stats(rf_session *se, struct rf_stats *out)
{
	if (!se || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	snprintf(out->transport, sizeof(out->transport), "%s", rf_session_transport(se));
	pthread_mutex_lock(&se->lock);
	out->nqueues = se->nqueues;
	add_stats(&out->dev, &se->dev_stats);
	add_stats(&out->total, &se->dev_stats);
	for (unsigned int q = 0; q < se->nqueues; q++) {
		if (!se->qstats[q])
			continue;
		add_stats(&out->queue[q], se->qstats[q]);
		add_stats(&out->total, se->qstats[q]);
	}
	out->total.thread = 0;
	out->nthreads = se->nthreads;
	if (se->tp && se->tp->sample)
		se->tp->sample(se, out);
	pthread_mutex_unlock(&se->lock);
	return 0;
}

/* The io-uring queues' shape: entries, growth, trims, resident payload, serving thread. */
static void print_elastic(char *buf, size_t len, const struct rf_queue_stats *s, bool thread)
{
	int n = snprintf(buf, len,
			 " entries %llu grows %llu trims %llu payload_kib %llu spins %llu "
			 "spin_hits %llu spin_us %llu",
			 (unsigned long long)s->entries, (unsigned long long)s->grows,
			 (unsigned long long)s->trims,
			 (unsigned long long)(s->payload_resident / 1024),
			 (unsigned long long)s->spins, (unsigned long long)s->spin_hits,
			 (unsigned long long)(s->spin_ns / 1000));

	if (thread && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, " thread %llu", (unsigned long long)s->thread);
}

static void print_line(int fd, const char *what, const struct rf_queue_stats *s, const char *more)
{
	double per_enter = s->enters ? (double)s->commits / (double)s->enters : 0.0;
	double avg_us = s->requests ? (double)s->handler_ns / (double)s->requests / 1000.0 : 0.0;

	dprintf(fd,
		"ringfuse-stats: %s: requests %llu commits %llu enters %llu commits/enter %.2f "
		"bytes_in %llu bytes_out %llu errors %llu bad %llu dup %llu deferred %llu "
		"handler_avg_us %.2f spreads %llu%s\n",
		what, (unsigned long long)s->requests, (unsigned long long)s->commits,
		(unsigned long long)s->enters, per_enter, (unsigned long long)s->bytes_in,
		(unsigned long long)s->bytes_out, (unsigned long long)s->errors,
		(unsigned long long)s->bad_requests, (unsigned long long)s->dup_replies,
		(unsigned long long)s->deferred, avg_us, (unsigned long long)s->spreads, more);
}

/* One line of per-opcode counts, only the opcodes that were seen. */
static void print_opcodes(int fd, const struct rf_queue_stats *s)
{
	char line[2048];
	size_t used = 0;

	used += (size_t)snprintf(line, sizeof(line), "ringfuse-stats: opcodes:");
	for (int op = 0; op < RF_STATS_OPCODES && used < sizeof(line); op++) {
		if (!s->by_opcode[op])
			continue;
		used += (size_t)snprintf(line + used, sizeof(line) - used, " %s=%llu",
					 rf_opcode_name((uint32_t)op),
					 (unsigned long long)s->by_opcode[op]);
	}
	dprintf(fd, "%.*s\n", (int)(used < sizeof(line) ? used : sizeof(line) - 1), line);
}

void rf_stats_print(const struct rf_stats *st, int fd)
{
	bool uring = st->nthreads > 0;
	char what[32], more[256] = "";

	if (uring)
		dprintf(fd, "ringfuse-stats: transport %s queues %u threads %u\n", st->transport,
			st->nqueues, st->nthreads);
	else
		dprintf(fd, "ringfuse-stats: transport %s queues %u\n", st->transport, st->nqueues);
	print_line(fd, "dev", &st->dev, "");
	for (unsigned int q = 0; q < st->nqueues && q < RF_MAX_QUEUES; q++) {
		snprintf(what, sizeof(what), "queue %u", q);
		if (uring)
			print_elastic(more, sizeof(more), &st->queue[q], true);
		print_line(fd, what, &st->queue[q], more);
	}
	if (uring)
		print_elastic(more, sizeof(more), &st->total, false);
	print_line(fd, "total", &st->total, more);
	print_opcodes(fd, &st->total);
}

struct rf_queue_stats rf_session_totals(rf_session *se)
{
	struct rf_queue_stats t;

	memset(&t, 0, sizeof(t));
	pthread_mutex_lock(&se->lock);
	add_stats(&t, &se->dev_stats);
	for (unsigned int q = 0; q < se->nqueues; q++)
		if (se->qstats[q])
			add_stats(&t, se->qstats[q]);
	pthread_mutex_unlock(&se->lock);
	return t;
}
