/*
 * process_attrs: per-process attributes that are not memory or files.
 *
 * Changed every step (values are functions of the step number):
 *   cwd (one of DIR/d0..d2), umask, RLIMIT_NOFILE/CORE/MSGQUEUE soft limits,
 *   nice (only ever raised), scheduling policy (OTHER/BATCH), comm name,
 *   child-subreaper flag.
 * Set once: THP disabled, CAP_SYS_BOOT dropped from the bounding set (needs
 * root).
 *
 * Not covered on purpose: no_new_privs (CRIU < 3.19 does not migrate it),
 * personality (CRIU <= 4.2 saves but never restores it), pdeath_signal (the
 * parent changes on restore).
 */
#include "common.h"

#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <linux/capability.h>

static const mode_t umasks[] = { 022, 027, 077, 002, 0 };

struct attrs {
	char cwd[16];
	unsigned umask;
	long nofile, core, msgq;
	int nice, batch, subreaper, thp_off;
	char comm[16];
};

static void want_attrs(int n, struct attrs *a)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->cwd, sizeof(a->cwd), "d%d", n % 3);
	a->umask = umasks[n % ARRAY_SIZE(umasks)];
	a->nofile = 256 + n;
	a->core = (long)n * 4096;
	a->msgq = (long)n * 100;
	a->nice = n / 4 > 19 ? 19 : n / 4;
	a->batch = n % 10 >= 5;
	a->subreaper = n % 2;
	a->thp_off = 1;
	snprintf(a->comm, sizeof(a->comm), "crt-attr-%d", n % 7);
}

/* Change only the soft limit: raising a hard limit needs CAP_SYS_RESOURCE. */
static void set_soft_limit(int res, long soft)
{
	struct rlimit r;

	if (getrlimit(res, &r))
		die("getrlimit %d", res);
	if (r.rlim_max != RLIM_INFINITY && (rlim_t)soft > r.rlim_max)
		bail("hard limit of resource %d is below %ld", res, soft);
	r.rlim_cur = soft;
	if (setrlimit(res, &r))
		die("setrlimit %d", res);
}

static void apply(const struct attrs *a)
{
	struct sched_param sp = { 0 };

	if (chdir(dpath(a->cwd)))
		die("chdir");
	umask(a->umask);
	set_soft_limit(RLIMIT_NOFILE, a->nofile);
	set_soft_limit(RLIMIT_CORE, a->core);
	set_soft_limit(RLIMIT_MSGQUEUE, a->msgq);
	if (setpriority(PRIO_PROCESS, 0, a->nice))
		die("setpriority");
	if (sched_setscheduler(0, a->batch ? SCHED_BATCH : SCHED_OTHER, &sp))
		die("sched_setscheduler");
	if (prctl(PR_SET_NAME, a->comm) || prctl(PR_SET_CHILD_SUBREAPER, a->subreaper))
		die("prctl");
}

static long soft_limit(int res)
{
	struct rlimit r;

	if (getrlimit(res, &r))
		die("getrlimit");
	return r.rlim_cur;
}

/* Read everything back from the kernel (the umask via /proc/self/status). */
static void read_attrs(struct attrs *a)
{
	char buf[4096], cwd[PATH_MAX], *p;
	int sub = 0;

	memset(a, 0, sizeof(*a));
	if (!getcwd(cwd, sizeof(cwd)))
		die("getcwd");
	p = strrchr(cwd, '/');
	p = p ? p + 1 : cwd;
	if (strlen(p) >= sizeof(a->cwd))
		bail("unexpected cwd %s", cwd);
	strcpy(a->cwd, p);
	if (read_text("/proc/self/status", buf, sizeof(buf)) < 0 || !(p = strstr(buf, "\nUmask:")))
		bail("no Umask in /proc/self/status");
	a->umask = strtoul(p + 7, NULL, 8);
	a->nofile = soft_limit(RLIMIT_NOFILE);
	a->core = soft_limit(RLIMIT_CORE);
	a->msgq = soft_limit(RLIMIT_MSGQUEUE);
	errno = 0;
	a->nice = getpriority(PRIO_PROCESS, 0);
	a->batch = sched_getscheduler(0) == SCHED_BATCH;
	prctl(PR_GET_CHILD_SUBREAPER, &sub);
	a->subreaper = sub;
	a->thp_off = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	prctl(PR_GET_NAME, a->comm);
}

/* Bounding set as a bit mask (capabilities the kernel knows). */
static uint64_t capbset(void)
{
	uint64_t m = 0;
	int c;

	for (c = 0; c < 64; c++)
		if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1)
			m |= 1ULL << c;
	return m;
}

static void format_attrs(const struct attrs *a, char *out, size_t size)
{
	snprintf(out, size, "cwd=%s umask=%04o nofile=%ld core=%ld msgq=%ld nice=%d sched=%s comm=%s subreaper=%d thp_off=%d",
		 a->cwd, a->umask, a->nofile, a->core, a->msgq, a->nice, a->batch ? "batch" : "other", a->comm,
		 a->subreaper, a->thp_off);
}

int main(int argc, char **argv)
{
	char got[512], want[512];
	struct attrs a;
	uint64_t bset;
	int n;

	wl_init(argc, argv, "process_attrs");
	for (n = 0; n < 3; n++) {
		char d[8];

		snprintf(d, sizeof(d), "d%d", n);
		if (mkdir(dpath(d), 0755))
			die("mkdir %s", d);
	}
	if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
		die("PR_SET_THP_DISABLE");
	if (prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT, 0, 0, 0))
		die("PR_CAPBSET_DROP (needs root)");
	bset = capbset();

	for (n = 1; n <= wl.steps; n++) {
		want_attrs(n, &a);
		apply(&a);
		format_attrs(&a, want, sizeof(want));
		read_attrs(&a);
		format_attrs(&a, got, sizeof(got));
		if (strcmp(got, want))
			bail("step %d: read back %s", n, got);
		tr_line("step %d %s", n, got);
		step_sleep();
	}

	want_attrs(wl.steps, &a);
	format_attrs(&a, want, sizeof(want));
	read_attrs(&a);
	format_attrs(&a, got, sizeof(got));
	check(!strcmp(got, want), "attributes now %s", got);
	{
		char cwd[PATH_MAX], *expect = realpath(dpath(a.cwd), NULL);

		check(getcwd(cwd, sizeof(cwd)) && expect && !strcmp(cwd, expect), "cwd is not DIR/%s", a.cwd);
		free(expect);
	}
	check(prctl(PR_CAPBSET_READ, CAP_SYS_BOOT, 0, 0, 0) == 0, "CAP_SYS_BOOT back in the bounding set");
	check(capbset() == bset, "capability bounding set changed");
	wl_finish();
}
