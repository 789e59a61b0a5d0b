/*
 * signalfd: blocked signals consumed through two signalfds, with signals
 * left pending across every step boundary.
 *
 *  sfd   {SIGUSR1, SIGRTMIN+3}: two queued RT signals per step carrying
 *        values (shared queue, sigqueue), SIGUSR1 on odd steps (kill);
 *        everything is read one step late.
 *  sfd2  {SIGUSR2}, non-blocking: a thread-directed SIGUSR2 (tgkill, private
 *        queue) every third step, read one step late.
 */
#include "common.h"

#include <sys/signalfd.h>
#include <sys/syscall.h>

static int rt3;

static void raise_rt(int val)
{
	if (sigqueue(getpid(), rt3, (union sigval){ .sival_int = val }))
		die("sigqueue");
}

/* Read one siginfo from fd, require signal `sig` (and value `val` if >= 0)
 * and append its name to the comma-separated list in out. */
static void expect(int fd, int sig, int val, char *out, size_t size)
{
	struct signalfd_siginfo si;
	size_t len = strlen(out);

	xread(fd, &si, sizeof(si), "signalfd");
	if ((int)si.ssi_signo != sig || (val >= 0 && si.ssi_int != val))
		bail("signalfd gave signal %u value %d, expected %d value %d", si.ssi_signo, si.ssi_int, sig, val);
	if (si.ssi_pid != (uint32_t)getpid() || si.ssi_uid != getuid())
		bail("signal %d: wrong sender", sig);
	if (sig == rt3)
		snprintf(out + len, size - len, "%srt:%d", len ? "," : "", si.ssi_int);
	else
		snprintf(out + len, size - len, "%s%s", len ? "," : "", sig == SIGUSR1 ? "usr1" : "usr2");
}

static void pending_names(char *buf, size_t size)
{
	sigset_t p;
	int off;

	if (sigpending(&p))
		die("sigpending");
	off = snprintf(buf, size, "%s%s%s", sigismember(&p, SIGUSR1) ? "usr1," : "",
		       sigismember(&p, SIGUSR2) ? "usr2," : "", sigismember(&p, rt3) ? "rt," : "");
	if (off > 0)
		buf[off - 1] = 0;
	else
		snprintf(buf, size, "-");
}

/* fdinfo "sigmask:" of a signalfd as a 64-bit mask (bit sig-1). */
static unsigned long long fd_sigmask(int fd)
{
	char v[64];

	if (fdinfo_field(fd, "sigmask:", v, sizeof(v)))
		bail("no sigmask in signalfd fdinfo");
	return strtoull(v, NULL, 16);
}

static unsigned long long bit(int sig)
{
	return 1ULL << (sig - 1);
}

int main(int argc, char **argv)
{
	sigset_t all, m1, m2, cur;
	char got[256], pend[64];
	int sfd, sfd2, n;

	wl_init(argc, argv, "signalfd");
	rt3 = SIGRTMIN + 3;
	sigemptyset(&m1);
	sigaddset(&m1, SIGUSR1);
	sigaddset(&m1, rt3);
	sigemptyset(&m2);
	sigaddset(&m2, SIGUSR2);
	sigemptyset(&all);
	sigaddset(&all, SIGUSR1);
	sigaddset(&all, SIGUSR2);
	sigaddset(&all, rt3);
	if (sigprocmask(SIG_BLOCK, &all, NULL))
		die("sigprocmask");
	sfd = signalfd(-1, &m1, SFD_CLOEXEC);
	sfd2 = signalfd(-1, &m2, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0 || sfd2 < 0)
		die("signalfd");

	for (n = 1; n <= wl.steps; n++) {
		got[0] = 0;
		/* Consume what the previous step left (lowest signal number first). */
		if (n % 2 == 0)
			expect(sfd, SIGUSR1, -1, got, sizeof(got));
		if (n > 1) {
			expect(sfd, rt3, (n - 1) * 10 + 1, got, sizeof(got));
			expect(sfd, rt3, (n - 1) * 10 + 2, got, sizeof(got));
		}
		if (n % 3 == 1 && n > 1)
			expect(sfd2, SIGUSR2, -1, got, sizeof(got));

		raise_rt(n * 10 + 1);
		raise_rt(n * 10 + 2);
		if (n % 2 == 1 && kill(getpid(), SIGUSR1))
			die("kill");
		if (n % 3 == 0 && syscall(SYS_tgkill, getpid(), gettid(), SIGUSR2))
			die("tgkill");
		pending_names(pend, sizeof(pend));
		tr_line("step %d got=%s pending=%s", n, got[0] ? got : "-", pend);
		step_sleep();
	}

	check(fd_sigmask(sfd) == (bit(SIGUSR1) | bit(rt3)), "sfd mask %llx", fd_sigmask(sfd));
	check(fd_sigmask(sfd2) == bit(SIGUSR2), "sfd2 mask %llx", fd_sigmask(sfd2));
	check(fcntl(sfd2, F_GETFL) & O_NONBLOCK, "SFD_NONBLOCK lost");
	sigprocmask(SIG_BLOCK, NULL, &cur);
	check(sigismember(&cur, SIGUSR1) && sigismember(&cur, SIGUSR2) && sigismember(&cur, rt3),
	      "blocked mask lost");
	{
		struct signalfd_siginfo si;

		got[0] = 0;
		if (wl.steps % 2 == 1)
			expect(sfd, SIGUSR1, -1, got, sizeof(got));
		expect(sfd, rt3, wl.steps * 10 + 1, got, sizeof(got));
		expect(sfd, rt3, wl.steps * 10 + 2, got, sizeof(got));
		if (wl.steps % 3 == 0)
			expect(sfd2, SIGUSR2, -1, got, sizeof(got));
		check(read(sfd2, &si, sizeof(si)) < 0 && errno == EAGAIN, "extra SIGUSR2 pending");
		pending_names(pend, sizeof(pend));
		check(!strcmp(pend, "-"), "signals still pending: %s", pend);
	}
	wl_finish();
}
