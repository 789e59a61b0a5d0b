/*
 * epoll: two epoll instances with several registered fds whose readiness
 * follows a fixed schedule. Each step adjusts the targets (write/read data),
 * modifies or removes/re-adds registrations, then polls with timeout 0 and
 * prints the ready set. Level-triggered only: edge-triggered state is not
 * something a restore can reproduce exactly.
 *
 * Targets (key = epoll data):
 *   1  pipe read end         EPOLLIN     readable on odd steps
 *   2  eventfd               EPOLLIN     readable when n % 3 == 0
 *   3  socketpair end        EPOLLIN|EPOLLRDHUP, data re-keyed every 6 steps
 *   4  1-page pipe write end EPOLLOUT    full for part of every 5 steps
 * The second instance watches the eventfd and the socket under other keys.
 */
#include "common.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>

#define NT 4

struct target {
	int fd;
	uint32_t events;
	uint64_t data;
	int registered;
};

static int ep, ep2;
static struct target t[NT];
static int p[2], q[2], s[2], ev;

static void ctl(int epfd, int op, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event e = { .events = events, .data.u64 = data };

	if (epoll_ctl(epfd, op, fd, &e))
		die("epoll_ctl op %d", op);
}

static void one_byte(int fd, int write_it, const char *what)
{
	char c = 'x';

	if (write_it)
		xwrite(fd, &c, 1, what);
	else
		xread(fd, &c, 1, what);
}

/* Drive every target's readiness for step n. */
static void schedule(int n)
{
	uint64_t v = 1;

	one_byte(n % 2 ? p[1] : p[0], n % 2, "pipe p");
	if (n % 3 == 0)
		xwrite(ev, &v, sizeof(v), "eventfd");
	if (n % 3 == 1 && n > 1)
		xread(ev, &v, sizeof(v), "eventfd");
	if (n % 4 == 0)
		one_byte(s[1], 1, "socket");
	if (n % 4 == 2 && n > 2)
		one_byte(s[0], 0, "socket");
	if (n % 5 == 0)
		one_byte(q[1], 1, "pipe q");
	if (n % 5 == 3 && n > 3)
		one_byte(q[0], 0, "pipe q");
}

/* Registration changes of step n. */
static void reconfigure(int n)
{
	if (n % 6 == 0) {
		t[2].data = 3 | (uint64_t)(n / 6) << 8;
		ctl(ep, EPOLL_CTL_MOD, t[2].fd, t[2].events, t[2].data);
	}
	if (n % 7 == 0 && t[0].registered) {
		ctl(ep, EPOLL_CTL_DEL, t[0].fd, 0, 0);
		t[0].registered = 0;
	}
	if (n % 7 == 3 && !t[0].registered) {
		ctl(ep, EPOLL_CTL_ADD, t[0].fd, t[0].events, t[0].data);
		t[0].registered = 1;
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Ready set of epfd as "key:events,..." sorted by key. */
static void ready_set(int epfd, char *out, size_t size)
{
	struct epoll_event e[8];
	uint64_t pairs[8];
	int n, i, off = 0;

	do
		n = epoll_wait(epfd, e, 8, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		die("epoll_wait");
	for (i = 0; i < n; i++)
		pairs[i] = e[i].data.u64 << 32 | e[i].events;
	qsort(pairs, n, sizeof(pairs[0]), cmp_u64);
	out[0] = 0;
	for (i = 0; i < n; i++)
		off += snprintf(out + off, size - off, "%s%llx:%x", i ? "," : "",
				(unsigned long long)(pairs[i] >> 32), (unsigned)(pairs[i] & 0xffffffff));
	if (!n)
		snprintf(out, size, "-");
}

/* Is key among epfd's ready events right now? */
static int has_key(int epfd, uint64_t key)
{
	struct epoll_event e[8];
	int n, i;

	do
		n = epoll_wait(epfd, e, 8, 0);
	while (n < 0 && errno == EINTR);
	for (i = 0; i < n; i++)
		if (e[i].data.u64 == key)
			return 1;
	return 0;
}

/* Does epfd's fdinfo list exactly the expected registrations? */
static int fdinfo_matches(int epfd, const struct target *want, int nwant)
{
	char path[64], buf[8192], *line;
	int seen = 0, i;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", epfd);
	if (read_text(path, buf, sizeof(buf)) < 0)
		die("read %s", path);
	for (line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		int tfd;
		unsigned events;
		unsigned long long data;

		if (sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &events, &data) != 3)
			continue;
		for (i = 0; i < nwant; i++)
			if (want[i].registered && want[i].fd == tfd)
				break;
		if (i == nwant || (events & ~(EPOLLERR | EPOLLHUP)) != want[i].events || data != want[i].data)
			return 0;
		seen++;
	}
	for (i = 0; i < nwant; i++)
		seen -= want[i].registered;
	return seen == 0;
}

int main(int argc, char **argv)
{
	struct target t2[2];
	char r1[256], r2[256];
	int n, i;

	wl_init(argc, argv, "epoll");
	if (pipe2(p, O_CLOEXEC) || pipe2(q, O_CLOEXEC) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s))
		die("pipe/socketpair");
	if (fcntl(q[1], F_SETPIPE_SZ, 4096) < 0)
		die("F_SETPIPE_SZ");
	ev = eventfd(0, EFD_CLOEXEC);
	ep = epoll_create1(EPOLL_CLOEXEC);
	ep2 = epoll_create1(EPOLL_CLOEXEC);
	if (ev < 0 || ep < 0 || ep2 < 0)
		die("eventfd/epoll_create1");

	t[0] = (struct target){ p[0], EPOLLIN, 1, 1 };
	t[1] = (struct target){ ev, EPOLLIN, 2, 1 };
	t[2] = (struct target){ s[0], EPOLLIN | EPOLLRDHUP, 3, 1 };
	t[3] = (struct target){ q[1], EPOLLOUT, 4, 1 };
	for (i = 0; i < NT; i++)
		ctl(ep, EPOLL_CTL_ADD, t[i].fd, t[i].events, t[i].data);
	t2[0] = (struct target){ ev, EPOLLIN, 0x22, 1 };
	t2[1] = (struct target){ s[0], EPOLLIN, 0x33, 1 };
	for (i = 0; i < 2; i++)
		ctl(ep2, EPOLL_CTL_ADD, t2[i].fd, t2[i].events, t2[i].data);

	for (n = 1; n <= wl.steps; n++) {
		schedule(n);
		reconfigure(n);
		ready_set(ep, r1, sizeof(r1));
		ready_set(ep2, r2, sizeof(r2));
		tr_line("step %d ep=%s ep2=%s", n, r1, r2);
		step_sleep();
	}

	check(fdinfo_matches(ep, t, NT), "registrations of the first epoll differ");
	check(fdinfo_matches(ep2, t2, 2), "registrations of the second epoll differ");
	/* Readiness must still track the targets after a restore. */
	{
		char c;

		while (recv(s[0], &c, 1, MSG_DONTWAIT) == 1)
			;
		check(!has_key(ep, t[2].data), "drained socket still reported ready");
		one_byte(s[1], 1, "socket");
		check(has_key(ep, t[2].data) && has_key(ep2, t2[1].data), "socket data not reported");
	}
	wl_finish();
}
