/*
 * eventfd: eventfd counters with pending values at every step boundary.
 *
 *  e1  counter mode; +n every step, read (reset) every third step
 *  e2  EFD_NONBLOCK, starts at 5; +2 every step, read every fourth step
 *  e3/e4  a ping-pong with a child blocked in read(e3) between steps
 *
 * Counter values are taken from /proc/self/fdinfo without consuming them.
 * Not covered: EFD_SEMAPHORE. No CRIU (<= 4.2) saves it; a restored
 * semaphore eventfd silently turns into a plain counter.
 */
#include "common.h"

#include <sys/eventfd.h>

static int xeventfd(unsigned init, int flags)
{
	int fd = eventfd(init, flags | EFD_CLOEXEC);

	if (fd < 0)
		die("eventfd");
	return fd;
}

static void ev_write(int fd, uint64_t v)
{
	xwrite(fd, &v, sizeof(v), "eventfd");
}

static uint64_t ev_read(int fd)
{
	uint64_t v;

	xread(fd, &v, sizeof(v), "eventfd");
	return v;
}

/* Current counter from fdinfo ("eventfd-count: <hex>"), without reading it. */
static unsigned long long ev_peek(int fd)
{
	char val[64];

	if (fdinfo_field(fd, "eventfd-count:", val, sizeof(val)))
		bail("no eventfd-count in fdinfo");
	return strtoull(val, NULL, 16);
}

static void child(int e3, int e4)
{
	uint64_t v;

	while ((v = ev_read(e3)) != 1000000)
		ev_write(e4, v * v + 1);
	_exit(0);
}

int main(int argc, char **argv)
{
	uint64_t e1_expect = 0, e2_expect = 5, v;
	int e1, e2, e3, e4, n;
	pid_t pid;

	wl_init(argc, argv, "eventfd");
	e1 = xeventfd(0, 0);
	e2 = xeventfd(5, EFD_NONBLOCK);
	e3 = xeventfd(0, 0);
	e4 = xeventfd(0, 0);
	pid = xfork();
	if (pid == 0)
		child(e3, e4);

	for (n = 1; n <= wl.steps; n++) {
		unsigned long long read1 = 0, read2 = 0;

		ev_write(e1, n);
		e1_expect += n;
		if (n % 3 == 0) {
			read1 = ev_read(e1);
			if (read1 != e1_expect)
				bail("step %d: e1 read %llu, expected %llu", n, read1, (unsigned long long)e1_expect);
			e1_expect = 0;
		}
		ev_write(e2, 2);
		e2_expect += 2;
		if (n % 4 == 0) {
			read2 = ev_read(e2);
			if (read2 != e2_expect)
				bail("step %d: e2 read %llu, expected %llu", n, read2, (unsigned long long)e2_expect);
			e2_expect = 0;
		}
		ev_write(e3, n);
		v = ev_read(e4);
		tr_line("step %d e1=%llu read1=%llu e2=%llu read2=%llu child=%llu", n, ev_peek(e1), read1,
			ev_peek(e2), read2, (unsigned long long)v);
		step_sleep();
	}

	ev_write(e3, 1000000);
	reap_expect(pid, 0, "child");
	check(ev_peek(e1) == e1_expect, "e1 counter %llu, expected %llu", ev_peek(e1),
	      (unsigned long long)e1_expect);
	check(e1_expect == 0 || ev_read(e1) == e1_expect, "e1 read differs");
	check(fcntl(e2, F_GETFL) & O_NONBLOCK, "e2 lost O_NONBLOCK");
	check(e2_expect == 0 || ev_read(e2) == e2_expect, "e2 read differs");
	check(read(e2, &v, sizeof(v)) < 0 && errno == EAGAIN, "e2 not empty after reading it");
	check(ev_peek(e3) == 0 && ev_peek(e4) == 0, "ping-pong eventfds not empty");
	wl_finish();
}
