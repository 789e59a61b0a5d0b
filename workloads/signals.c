/*
 * signals: signal handlers, an alternate signal stack, a blocked mask and
 * signals pending across step boundaries.
 *
 *  SIGUSR1      SA_SIGINFO|SA_RESTART|SA_ONSTACK, sa_mask {SIGUSR2}; raised
 *               and handled (on the alternate stack) every step
 *  SIGUSR2      plain handler, blocked; sent every step, so it stays pending
 *               (merged) until every 4th step briefly unblocks it
 *  SIGRTMIN+1   SA_SIGINFO, blocked; one queued value per step, delivered in
 *               order on every 4th step
 *  SIGWINCH     handler, blocked, raised once at start: pending all run long
 *  SIGTERM      ignored
 */
#include "common.h"

#define ALT_SIZE (64 * 1024)

static volatile sig_atomic_t cnt_usr1, cnt_usr2, cnt_winch, usr1_on_alt = 1, usr1_bad_code;
static volatile int rt_vals[4096];
static volatile sig_atomic_t rt_cnt;
static char *alt;
static int rt1;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	char here;

	(void)sig;
	(void)uc;
	cnt_usr1++;
	usr1_on_alt &= &here >= alt && &here < alt + ALT_SIZE;
	usr1_bad_code |= si->si_code != SI_TKILL;
}

static void on_usr2(int sig)
{
	(void)sig;
	cnt_usr2++;
}

static void on_winch(int sig)
{
	(void)sig;
	cnt_winch++;
}

static void on_rt(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (rt_cnt < (int)ARRAY_SIZE(rt_vals))
		rt_vals[rt_cnt] = si->si_value.sival_int;
	rt_cnt++;
}

struct handler {
	int sig;
	void *fn;
	int flags;
	int mask_sig; /* 0: empty sa_mask */
};

static struct handler handlers[5];

static void install(const struct handler *h)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	if (h->flags & SA_SIGINFO)
		sa.sa_sigaction = h->fn;
	else
		sa.sa_handler = h->fn;
	sa.sa_flags = h->flags;
	sigemptyset(&sa.sa_mask);
	if (h->mask_sig)
		sigaddset(&sa.sa_mask, h->mask_sig);
	if (sigaction(h->sig, &sa, NULL))
		die("sigaction %d", h->sig);
}

static int installed_ok(const struct handler *h)
{
	const int flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK | SA_NODEFER | SA_RESETHAND;
	struct sigaction sa;
	void *fn;
	int i;

	if (sigaction(h->sig, NULL, &sa))
		return 0;
	fn = (sa.sa_flags & SA_SIGINFO) ? (void *)sa.sa_sigaction : (void *)sa.sa_handler;
	if (fn != h->fn || (sa.sa_flags & flags) != h->flags)
		return 0;
	for (i = 1; i < SIGRTMAX; i++)
		if (sigismember(&sa.sa_mask, i) != (i == h->mask_sig))
			return 0;
	return 1;
}

static void blocked_set(sigset_t *s)
{
	sigemptyset(s);
	sigaddset(s, SIGUSR2);
	sigaddset(s, rt1);
	sigaddset(s, SIGWINCH);
}

static void pending_names(char *buf, size_t size)
{
	sigset_t p;
	int off;

	sigpending(&p);
	off = snprintf(buf, size, "%s%s%s", sigismember(&p, SIGUSR2) ? "usr2," : "",
		       sigismember(&p, rt1) ? "rt," : "", sigismember(&p, SIGWINCH) ? "winch," : "");
	if (off > 0)
		buf[off - 1] = 0;
	else
		snprintf(buf, size, "-");
}

/* Briefly unblock SIGUSR2 and SIGRTMIN+1: pending ones are handled now. */
static void deliver(void)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	sigaddset(&s, rt1);
	sigprocmask(SIG_UNBLOCK, &s, NULL);
	sigprocmask(SIG_BLOCK, &s, NULL);
}

int main(int argc, char **argv)
{
	stack_t ss = { 0 }, cur_ss;
	sigset_t blocked, cur;
	char pend[64];
	int n, i, rt_order_ok = 1;
	size_t k;

	wl_init(argc, argv, "signals");
	rt1 = SIGRTMIN + 1;
	alt = malloc(ALT_SIZE);
	if (!alt)
		die("malloc");
	ss.ss_sp = alt;
	ss.ss_size = ALT_SIZE;
	if (sigaltstack(&ss, NULL))
		die("sigaltstack");

	handlers[0] = (struct handler){ SIGUSR1, on_usr1, SA_SIGINFO | SA_RESTART | SA_ONSTACK, SIGUSR2 };
	handlers[1] = (struct handler){ SIGUSR2, on_usr2, SA_RESTART, 0 };
	handlers[2] = (struct handler){ rt1, on_rt, SA_SIGINFO, 0 };
	handlers[3] = (struct handler){ SIGWINCH, on_winch, 0, 0 };
	handlers[4] = (struct handler){ SIGTERM, SIG_IGN, 0, 0 };
	for (k = 0; k < ARRAY_SIZE(handlers); k++)
		install(&handlers[k]);
	blocked_set(&blocked);
	if (sigprocmask(SIG_BLOCK, &blocked, NULL) || kill(getpid(), SIGWINCH))
		die("sigprocmask/kill");

	for (n = 1; n <= wl.steps; n++) {
		if (raise(SIGUSR1) || kill(getpid(), SIGUSR2) ||
		    sigqueue(getpid(), rt1, (union sigval){ .sival_int = n }) || kill(getpid(), SIGTERM))
			die("send signals");
		if (n % 4 == 0)
			deliver();
		pending_names(pend, sizeof(pend));
		tr_line("step %d usr1=%d usr2=%d rt=%d pending=%s altstack=%s", n, (int)cnt_usr1, (int)cnt_usr2,
			(int)rt_cnt, pend, usr1_on_alt ? "yes" : "no");
		step_sleep();
	}

	for (k = 0; k < ARRAY_SIZE(handlers); k++)
		check(installed_ok(&handlers[k]), "disposition of signal %d changed", handlers[k].sig);
	sigprocmask(SIG_BLOCK, NULL, &cur);
	for (i = 1; i < SIGRTMAX; i++)
		if (sigismember(&cur, i) != sigismember(&blocked, i))
			check(0, "blocked mask differs at signal %d", i);
	check(!sigaltstack(NULL, &cur_ss) && cur_ss.ss_sp == alt && cur_ss.ss_size == ALT_SIZE &&
		      cur_ss.ss_flags == 0,
	      "alternate signal stack changed");
	check(usr1_on_alt && !usr1_bad_code, "SIGUSR1 ran off the alternate stack or with a wrong si_code");

	/* Everything still pending must arrive now, RT values in order. */
	deliver();
	check(cnt_usr2 == wl.steps / 4 + (wl.steps % 4 != 0), "SIGUSR2 handled %d times",
	      (int)cnt_usr2);
	check(rt_cnt == wl.steps, "%d of %d realtime signals delivered", (int)rt_cnt, wl.steps);
	for (i = 0; i < rt_cnt && i < (int)ARRAY_SIZE(rt_vals); i++)
		rt_order_ok &= rt_vals[i] == i + 1;
	check(rt_order_ok, "realtime signal values out of order");
	check(cnt_winch == 0, "blocked SIGWINCH was handled");
	sigemptyset(&cur);
	sigaddset(&cur, SIGWINCH);
	sigprocmask(SIG_UNBLOCK, &cur, NULL);
	check(cnt_winch == 1, "SIGWINCH pending since start was lost");
	check(cnt_usr1 == wl.steps, "SIGUSR1 handled %d times", (int)cnt_usr1);
	wl_finish();
}
