/*
 * posix_mqueue: a POSIX message queue with prioritized messages in flight,
 * opened twice (blocking read-write, non-blocking read-only).
 *
 * Each step sends one message with a priority derived from its sequence
 * number and receives one (highest priority, oldest first), so the receive
 * order is deterministic but not FIFO. The queue name is derived from DIR
 * so concurrent runs never share a queue.
 */
#include "common.h"

#include <mqueue.h>

#define LEAD 5
#define MSGSIZE 128
#define MAXMSG 8

struct qmsg {
	uint32_t seq;
	unsigned char body[60];
};

static unsigned prio_of(uint32_t seq)
{
	return (seq * 7) % 4;
}

static void q_send(mqd_t q, uint32_t seq)
{
	struct qmsg m = { seq, { 0 } };

	fill_pattern(m.body, sizeof(m.body), 0x4400 + seq);
	while (mq_send(q, (char *)&m, sizeof(m), prio_of(seq)))
		if (errno != EINTR)
			die("mq_send");
}

static uint32_t q_recv(mqd_t q, unsigned *prio)
{
	unsigned char want[sizeof(((struct qmsg *)0)->body)];
	char buf[MSGSIZE];
	struct qmsg *m = (struct qmsg *)buf;
	ssize_t r;

	while ((r = mq_receive(q, buf, sizeof(buf), prio)) < 0)
		if (errno != EINTR)
			die("mq_receive");
	fill_pattern(want, sizeof(want), 0x4400 + m->seq);
	if (r != sizeof(*m) || *prio != prio_of(m->seq) || memcmp(m->body, want, sizeof(want)))
		bail("message %u corrupt", m->seq);
	return m->seq;
}

static long curmsgs(mqd_t q)
{
	struct mq_attr a;

	if (mq_getattr(q, &a))
		die("mq_getattr");
	return a.mq_curmsgs;
}

int main(int argc, char **argv)
{
	struct mq_attr attr = { .mq_maxmsg = MAXMSG, .mq_msgsize = MSGSIZE };
	uint64_t seen = 0, want = 0;
	uint32_t next = 1, s;
	char name[64];
	unsigned prio;
	mqd_t q, q2;
	int n;

	wl_init(argc, argv, "posix_mqueue");
	snprintf(name, sizeof(name), "/crtest-%016llx", (unsigned long long)fnv1a(wl.dir, strlen(wl.dir)));
	q = mq_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, &attr);
	if (q == (mqd_t)-1)
		die("mq_open");
	q2 = mq_open(name, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (q2 == (mqd_t)-1)
		die("mq_open read-only");
	for (; next <= LEAD; next++)
		q_send(q, next);

	for (n = 1; n <= wl.steps; n++) {
		q_send(q, next++);
		/* Alternate the two descriptors: both must keep working. */
		s = q_recv(n % 2 ? q2 : q, &prio);
		seen += mix64(s);
		tr_line("step %d got=%u prio=%u queued=%ld", n, s, prio, curmsgs(q));
		step_sleep();
	}

	{
		struct mq_attr a;

		check(!mq_getattr(q2, &a) && (a.mq_flags & O_NONBLOCK) && a.mq_maxmsg == MAXMSG &&
			      a.mq_msgsize == MSGSIZE,
		      "queue attributes changed");
		check(!mq_getattr(q, &a) && !(a.mq_flags & O_NONBLOCK), "blocking descriptor became non-blocking");
	}
	check(curmsgs(q) == LEAD, "%ld messages queued, expected %d", curmsgs(q), LEAD);
	while (curmsgs(q) > 0)
		seen += mix64(q_recv(q2, &prio));
	for (s = 1; s < next; s++)
		want += mix64(s);
	check(seen == want, "messages lost or duplicated");
	check(mq_receive(q2, (char[MSGSIZE]){ 0 }, MSGSIZE, NULL) < 0 && errno == EAGAIN, "queue not empty");
	mq_unlink(name);
	wl_finish();
}
