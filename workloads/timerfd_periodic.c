/*
 * timerfd_periodic: periodic timerfds on three clocks that keep expiring
 * between steps, so at a dump they have expired and are not yet read.
 * Every step waits (bounded) until each of them fired again.
 *
 * Known to fail with CRIU <= 4.2: such a timerfd reports it_value 0 in
 * fdinfo and is restored disarmed (checkpoint-restore/criu#3162). The
 * bounded wait turns that into a `verify FAIL ... stopped firing` line
 * instead of a hang.
 */
#include "common.h"

#include <poll.h>
#include <sys/timerfd.h>

#define MS 1000000LL

static const struct {
	const char *name;
	clockid_t clock;
	long long interval_ms;
} timers[] = {
	{ "mono", CLOCK_MONOTONIC, 10 },
	{ "boot", CLOCK_BOOTTIME, 15 },
	{ "real", CLOCK_REALTIME, 20 },
};
#define NT ((int)ARRAY_SIZE(timers))

/* Block (at most 2 s) until fd expired at least once, then consume it. */
static int fired(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };
	uint64_t v = 0;
	int r;

	do
		r = poll(&p, 1, 2000);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		die("poll");
	if (r == 0)
		return 0;
	if (read(fd, &v, sizeof(v)) != sizeof(v))
		die("read timerfd");
	return v >= 1; /* how many is timing, not state */
}

int main(int argc, char **argv)
{
	int fd[NT], n, i;

	wl_init(argc, argv, "timerfd_periodic");
	for (i = 0; i < NT; i++) {
		long long ns = timers[i].interval_ms * MS;
		struct itimerspec its = { { 0, ns }, { 0, ns } };

		fd[i] = timerfd_create(timers[i].clock, TFD_CLOEXEC | TFD_NONBLOCK);
		if (fd[i] < 0 || timerfd_settime(fd[i], 0, &its, NULL))
			die("timerfd %s", timers[i].name);
	}

	for (n = 1; n <= wl.steps; n++) {
		for (i = 0; i < NT; i++)
			if (!fired(fd[i]))
				bail("step %d: periodic %s timerfd stopped firing", n, timers[i].name);
		tr_line("step %d mono=fired boot=fired real=fired", n);
		step_sleep();
	}

	for (i = 0; i < NT; i++) {
		struct itimerspec its;

		check(!timerfd_gettime(fd[i], &its) && its.it_interval.tv_sec == 0 &&
			      its.it_interval.tv_nsec == timers[i].interval_ms * MS,
		      "%s timerfd interval changed", timers[i].name);
		check(fired(fd[i]), "%s timerfd stopped firing", timers[i].name);
	}
	wl_finish();
}
