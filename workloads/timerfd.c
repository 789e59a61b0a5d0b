/*
 * timerfd: timerfds in the states CRIU has to carry over.
 *
 *  step    CLOCK_MONOTONIC, re-armed as a 1 ms one-shot every step; the step
 *          waits for it (a timerfd that still works after a restore)
 *  soon    CLOCK_MONOTONIC one-shot due 3 s after start: normally still
 *          pending at the dump and must fire exactly once afterwards
 *  far     CLOCK_REALTIME one-shot due in one hour: must stay armed
 *  boot    CLOCK_BOOTTIME, 1 h interval, first expiry in 2 h
 *  once    CLOCK_MONOTONIC one-shot that expired right at start and is never
 *          read: exactly one pending expiration (ticks) must survive
 *  off     created and left disarmed
 *
 * Periodic timers that expire between steps are in timerfd_periodic.
 * Remaining times are only checked against bounds, never printed.
 */
#include "common.h"

#include <poll.h>
#include <sys/timerfd.h>

#define MS 1000000LL
#define SEC 1000000000LL

static void arm(int fd, long long first_ns, long long interval_ns)
{
	struct itimerspec its = {
		.it_value = { first_ns / SEC, first_ns % SEC },
		.it_interval = { interval_ns / SEC, interval_ns % SEC },
	};

	if (timerfd_settime(fd, 0, &its, NULL))
		die("timerfd_settime");
}

static int mk(int clock, long long first_ns, long long interval_ns)
{
	int fd = timerfd_create(clock, TFD_CLOEXEC | TFD_NONBLOCK);

	if (fd < 0)
		die("timerfd_create %d", clock);
	arm(fd, first_ns, interval_ns);
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

/* Wait up to timeout_ms for fd to have expired (without reading it).
 * A bounded wait: a timer lost by a restore must fail, not hang. */
static int wait_ready(int fd, int timeout_ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	int r;

	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		die("poll");
	return r;
}

/* Wait for an expiry, then consume it: the expiration count, or 0. */
static uint64_t wait_ticks(int fd, int timeout_ms)
{
	return wait_ready(fd, timeout_ms) ? ticks_nb(fd) : 0;
}

int main(int argc, char **argv)
{
	int step_t, soon, far, boot, once, off, n;
	struct itimerspec its;

	wl_init(argc, argv, "timerfd");
	step_t = mk(CLOCK_MONOTONIC, 0, 0);
	soon = mk(CLOCK_MONOTONIC, 3 * SEC, 0);
	far = mk(CLOCK_REALTIME, 3600 * SEC, 0);
	boot = mk(CLOCK_BOOTTIME, 7200 * SEC, 3600 * SEC);
	once = mk(CLOCK_MONOTONIC, 1, 0);
	off = mk(CLOCK_MONOTONIC, 0, 0);
	/* `once` must have expired before anything can be dumped. */
	if (!wait_ready(once, 5000))
		bail("a 1 ns one-shot timerfd did not expire");

	for (n = 1; n <= wl.steps; n++) {
		int fired, far_armed, boot_armed, off_idle;

		arm(step_t, 1 * MS, 0);
		fired = wait_ticks(step_t, 5000) == 1;
		if (!fired)
			bail("step %d: a freshly armed one-shot timerfd did not fire", n);
		far_armed = ns(get(far).it_value) > 0 && ticks_nb(far) == 0;
		boot_armed = ns(get(boot).it_value) > 0;
		off_idle = ns(get(off).it_value) == 0;
		tr_line("step %d oneshot=fired far=%s boot=%s off=%s", n, far_armed ? "armed" : "bad",
			boot_armed ? "armed" : "bad", off_idle ? "idle" : "bad");
		step_sleep();
	}

	its = get(far);
	check(ns(its.it_value) > 0 && ns(its.it_value) <= 3600 * SEC && ns(its.it_interval) == 0,
	      "far one-shot remaining %lld ns", ns(its.it_value));
	its = get(boot);
	check(ns(its.it_value) > 3600 * SEC && ns(its.it_value) <= 7200 * SEC &&
		      ns(its.it_interval) == 3600 * SEC,
	      "boottime timer value %lld interval %lld", ns(its.it_value), ns(its.it_interval));
	check(wait_ticks(soon, 5000) == 1, "the 3 s one-shot did not fire exactly once");
	check(ns(get(soon).it_value) == 0 && ticks_nb(soon) == 0, "the 3 s one-shot fired again");
	check(ticks_nb(once) == 1, "expired one-shot lost its pending expiration");
	check(ticks_nb(once) == 0 && ns(get(once).it_value) == 0, "expired one-shot fired again");
	check(ns(get(off).it_value) == 0 && ticks_nb(off) == 0, "disarmed timer changed");
	check(fcntl(far, F_GETFL) & O_NONBLOCK, "TFD_NONBLOCK lost");
	wl_finish();
}
