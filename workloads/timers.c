/*
 * timers: interval timers and POSIX timers in several configurations.
 *
 *  ITIMER_REAL     20 ms interval, SIGALRM handler
 *  ITIMER_VIRTUAL  armed far away (1000 s of CPU time): must stay armed
 *  ITIMER_PROF     never armed: must stay disarmed
 *  ptimer          CLOCK_MONOTONIC, 15 ms interval, SIGEV_SIGNAL SIGRTMIN+4
 *                  with a value
 *  tidtimer        CLOCK_BOOTTIME, 25 ms interval, SIGEV_THREAD_ID to main
 *  silent          CLOCK_REALTIME, SIGEV_NONE, one-shot in one hour
 *
 * Each step waits until every periodic timer fired at least once since the
 * previous step; only that fact is printed, never counts or times.
 */
#include "common.h"

#include <sys/time.h>

#define MS 1000000LL
#define SEC 1000000000LL
#define PT_VALUE 0x1234

static volatile sig_atomic_t cnt_alrm, cnt_pt, cnt_tid, bad_info;
static int sig_pt, sig_tid;

static void on_alrm(int sig)
{
	(void)sig;
	cnt_alrm++;
}

static void on_pt(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (si->si_code != SI_TIMER || (sig == sig_pt && si->si_value.sival_int != PT_VALUE))
		bad_info = 1;
	if (sig == sig_pt)
		cnt_pt++;
	else
		cnt_tid++;
}

static void handle(int sig, void (*fn)(int, siginfo_t *, void *), void (*plain)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_flags = SA_RESTART | (fn ? SA_SIGINFO : 0);
	if (fn)
		sa.sa_sigaction = fn;
	else
		sa.sa_handler = plain;
	if (sigaction(sig, &sa, NULL))
		die("sigaction");
}

static timer_t mk_timer(clockid_t clock, int notify, int sig, long long first, long long interval)
{
	struct sigevent sev;
	struct itimerspec its = { { interval / SEC, interval % SEC }, { first / SEC, first % SEC } };
	timer_t t;

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = notify;
	sev.sigev_signo = sig;
	sev.sigev_value.sival_int = PT_VALUE;
	if (notify == SIGEV_THREAD_ID)
		sev._sigev_un._tid = gettid();
	if (timer_create(clock, &sev, &t) || timer_settime(t, 0, &its, NULL))
		die("timer_create/settime clock %d", clock);
	return t;
}

static void set_itimer(int which, long long value_us, long long interval_us)
{
	struct itimerval v = { { interval_us / 1000000, interval_us % 1000000 },
			       { value_us / 1000000, value_us % 1000000 } };

	if (setitimer(which, &v, NULL))
		die("setitimer %d", which);
}

static long long tv_us(struct timeval t) { return t.tv_sec * 1000000LL + t.tv_usec; }
static long long ts_ns(struct timespec t) { return t.tv_sec * SEC + t.tv_nsec; }

/* Block until every periodic timer has fired since the given counts. */
static void wait_fired(int alrm, int pt, int tid)
{
	sigset_t block, old;

	sigemptyset(&block);
	sigaddset(&block, SIGALRM);
	sigaddset(&block, sig_pt);
	sigaddset(&block, sig_tid);
	sigprocmask(SIG_BLOCK, &block, &old);
	while (cnt_alrm == alrm || cnt_pt == pt || cnt_tid == tid)
		sigsuspend(&old);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

int main(int argc, char **argv)
{
	struct itimerspec its;
	struct itimerval iv;
	timer_t pt, tidt, silent;
	int n;

	wl_init(argc, argv, "timers");
	sig_pt = SIGRTMIN + 4;
	sig_tid = SIGRTMIN + 5;
	handle(SIGALRM, NULL, on_alrm);
	handle(sig_pt, on_pt, NULL);
	handle(sig_tid, on_pt, NULL);

	set_itimer(ITIMER_REAL, 20000, 20000);
	set_itimer(ITIMER_VIRTUAL, 1000 * 1000000LL, 500 * 1000000LL);
	pt = mk_timer(CLOCK_MONOTONIC, SIGEV_SIGNAL, sig_pt, 15 * MS, 15 * MS);
	tidt = mk_timer(CLOCK_BOOTTIME, SIGEV_THREAD_ID, sig_tid, 25 * MS, 25 * MS);
	silent = mk_timer(CLOCK_REALTIME, SIGEV_NONE, 0, 3600 * SEC, 0);

	for (n = 1; n <= wl.steps; n++) {
		int a = cnt_alrm, p = cnt_pt, t = cnt_tid;

		step_sleep();
		wait_fired(a, p, t);
		/* Printed after the wait: the line itself proves every timer fired. */
		tr_line("step %d alrm=fired ptimer=fired tidtimer=fired", n);
	}

	check(!bad_info, "a timer signal carried a wrong si_code or value");
	getitimer(ITIMER_REAL, &iv);
	check(tv_us(iv.it_interval) == 20000 && tv_us(iv.it_value) > 0 && tv_us(iv.it_value) <= 20000,
	      "ITIMER_REAL interval %lld value %lld us", tv_us(iv.it_interval), tv_us(iv.it_value));
	getitimer(ITIMER_VIRTUAL, &iv);
	check(tv_us(iv.it_interval) == 500 * 1000000LL && tv_us(iv.it_value) > 0 &&
		      tv_us(iv.it_value) <= 1001 * 1000000LL, /* CPU timers round up to a tick */
	      "ITIMER_VIRTUAL interval %lld value %lld us", tv_us(iv.it_interval), tv_us(iv.it_value));
	getitimer(ITIMER_PROF, &iv);
	check(tv_us(iv.it_interval) == 0 && tv_us(iv.it_value) == 0, "ITIMER_PROF became armed");
	check(!timer_gettime(pt, &its) && ts_ns(its.it_interval) == 15 * MS, "ptimer interval changed");
	check(!timer_gettime(tidt, &its) && ts_ns(its.it_interval) == 25 * MS, "tidtimer interval changed");
	check(!timer_gettime(silent, &its) && ts_ns(its.it_value) > 0 && ts_ns(its.it_value) <= 3600 * SEC &&
		      ts_ns(its.it_interval) == 0,
	      "SIGEV_NONE timer remaining %lld ns", ts_ns(its.it_value));
	/* The restored timers must still tick. */
	wait_fired(cnt_alrm, cnt_pt, cnt_tid);
	wl_finish();
}
