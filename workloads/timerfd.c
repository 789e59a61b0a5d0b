/*
 * timerfd: several timerfds in different states.
 *
 *  tick     CLOCK_MONOTONIC, 10 ms interval; every step blocks until it
 *           expired at least once (only ">= 1" is recorded, never the count)
 *  far      CLOCK_REALTIME one-shot due in one hour: must stay armed
 *  boot     CLOCK_BOOTTIME, 1 h interval, first expiry in 2 h
 *  once     CLOCK_MONOTONIC one-shot that expired right at start and is never
 *           read: exactly one pending expiration must survive
 *  off      created and left disarmed
 *
 * Remaining times are only checked against bounds, never printed.
 */
#include "common.h"

#include <sys/timerfd.h>

#define SEC 1000000000LL

static int mk(int clock, long long first_ns, long long interval_ns, int flags)
{
	struct itimerspec its = {
		.it_value = { first_ns / SEC, first_ns % SEC },
		.it_interval = { interval_ns / SEC, interval_ns % SEC },
	};
	int fd = timerfd_create(clock, TFD_CLOEXEC | flags);

	if (fd < 0)
		die("timerfd_create %d", clock);
	if (timerfd_settime(fd, 0, &its, NULL))
		die("timerfd_settime");
	return fd;
}

static long long ns(struct timespec t)
{
	return t.tv_sec * SEC + t.tv_nsec;
}

static struct itimerspec get(int fd)
{
	struct itimerspec its;

	if (timerfd_gettime(fd, &its))
		die("timerfd_gettime");
	return its;
}

/* Pending expirations without blocking (0 if none). */
static uint64_t ticks_nb(int fd)
{
	uint64_t v = 0;
	ssize_t r;

	do
		r = read(fd, &v, sizeof(v));
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno != EAGAIN)
		die("read timerfd");
	return r < 0 ? 0 : v;
}

int main(int argc, char **argv)
{
	int tick, far, boot, once, off, n;
	struct itimerspec its;
	uint64_t v;

	wl_init(argc, argv, "timerfd");
	tick = mk(CLOCK_MONOTONIC, 10000000, 10000000, 0);
	far = mk(CLOCK_REALTIME, 3600 * SEC, 0, TFD_NONBLOCK);
	boot = mk(CLOCK_BOOTTIME, 7200 * SEC, 3600 * SEC, TFD_NONBLOCK);
	once = mk(CLOCK_MONOTONIC, 1, 0, TFD_NONBLOCK);
	off = mk(CLOCK_MONOTONIC, 0, 0, TFD_NONBLOCK);
	/* Make sure `once` has expired before anything can be dumped. */
	sleep_ms(2);

	for (n = 1; n <= wl.steps; n++) {
		int tick_ok, far_armed, boot_armed, off_idle;

		/* Blocks until at least one expiry: the value is timing, the fact is not. */
		xread(tick, &v, sizeof(v), "tick timerfd");
		tick_ok = v >= 1;
		far_armed = ns(get(far).it_value) > 0 && ticks_nb(far) == 0;
		boot_armed = ns(get(boot).it_value) > 0;
		off_idle = ns(get(off).it_value) == 0;
		tr_line("step %d tick=%s far=%s boot=%s off=%s", n, tick_ok ? "fired" : "none",
			far_armed ? "armed" : "bad", boot_armed ? "armed" : "bad", off_idle ? "idle" : "bad");
		step_sleep();
	}

	its = get(tick);
	check(ns(its.it_interval) == 10000000, "tick interval %lld ns", ns(its.it_interval));
	its = get(far);
	check(ns(its.it_value) > 0 && ns(its.it_value) <= 3600 * SEC && ns(its.it_interval) == 0,
	      "far one-shot remaining %lld ns", ns(its.it_value));
	its = get(boot);
	check(ns(its.it_value) > 3600 * SEC && ns(its.it_value) <= 7200 * SEC &&
		      ns(its.it_interval) == 3600 * SEC,
	      "boottime timer value %lld interval %lld", ns(its.it_value), ns(its.it_interval));
	check(ticks_nb(once) == 1, "expired one-shot lost its pending expiration");
	check(ticks_nb(once) == 0, "expired one-shot fired twice");
	check(ns(get(once).it_value) == 0, "expired one-shot re-armed");
	check(ns(get(off).it_value) == 0 && ticks_nb(off) == 0, "disarmed timer changed");
	check(fcntl(far, F_GETFL) & O_NONBLOCK, "TFD_NONBLOCK lost");
	wl_finish();
}
