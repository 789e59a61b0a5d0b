/*
 * record_locks: POSIX (process-owned) and OFD (open-file-description-owned)
 * byte-range locks (needs criu --file-locks).
 *
 *  rl.posix  F_WRLCK [0,100), F_RDLCK [200,300), [500,600) flipping between
 *            read and write every step, and a 5-byte write lock that moves
 *            forward every step (the old range is unlocked)
 *  rl.ofd    F_WRLCK [0,50) and a moving 4-byte write lock on one OFD,
 *            F_RDLCK [100,150) on a second OFD
 *
 * Every step probes the ranges with F_OFD_GETLK from separate probe OFDs
 * (POSIX and OFD locks conflict with those even in the same process); verify
 * also checks the POSIX locks from a forked child with F_GETLK. The probe
 * fds stay open: closing *any* fd of a file drops the process's POSIX locks
 * on it.
 */
#include "common.h"


struct range {
	off_t start, len;
};

static int xopen(const char *rel)
{
	int fd = open(dpath(rel), O_RDWR | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		die("open %s", rel);
	return fd;
}

static void setlk(int fd, int cmd, short type, struct range r)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = r.start, .l_len = r.len };

	while (fcntl(fd, cmd, &fl))
		if (errno != EINTR)
			die("lock %lld+%lld", (long long)r.start, (long long)r.len);
}

/* Type of the lock a writer would conflict with: 'w', 'r' or '-'. */
static char probe(int fd, int cmd, struct range r, pid_t *owner)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = r.start, .l_len = r.len };

	if (fcntl(fd, cmd, &fl))
		die("getlk");
	if (owner)
		*owner = fl.l_pid;
	return fl.l_type == F_WRLCK ? 'w' : fl.l_type == F_RDLCK ? 'r' : '-';
}

static struct range posix_moving(int n) { return (struct range){ 1000 + n * 10, 5 }; }
static struct range ofd_moving(int n) { return (struct range){ 1000 + n * 8, 4 }; }

static const struct range P_W = { 0, 100 }, P_R = { 200, 100 }, P_FLIP = { 500, 100 };
static const struct range O_W = { 0, 50 }, O_R = { 100, 50 };

static int pp, po; /* probe fds, never closed */

/* Probe all ranges of step n into out: "posix=..... ofd=....". */
static void probe_all(int n, char *out, size_t size)
{
	snprintf(out, size, "posix=%c%c%c%c%c ofd=%c%c%c%c", probe(pp, F_OFD_GETLK, P_W, NULL),
		 probe(pp, F_OFD_GETLK, P_R, NULL), probe(pp, F_OFD_GETLK, P_FLIP, NULL),
		 probe(pp, F_OFD_GETLK, posix_moving(n), NULL), probe(pp, F_OFD_GETLK, posix_moving(n - 1), NULL),
		 probe(po, F_OFD_GETLK, O_W, NULL), probe(po, F_OFD_GETLK, O_R, NULL),
		 probe(po, F_OFD_GETLK, ofd_moving(n), NULL), probe(po, F_OFD_GETLK, ofd_moving(n - 1), NULL));
}

/* A child sees our POSIX locks with F_GETLK, owned by us; exit 0 if so. */
static int posix_seen_by_child(int n)
{
	pid_t pid = xfork();

	if (pid == 0) {
		int fd = xopen("rl.posix");
		pid_t o1, o2, o3;
		int ok = probe(fd, F_GETLK, P_W, &o1) == 'w' && probe(fd, F_GETLK, P_R, &o2) == 'r' &&
			 probe(fd, F_GETLK, posix_moving(n), &o3) == 'w' &&
			 probe(fd, F_GETLK, posix_moving(n - 1), NULL) == '-';

		_exit(!(ok && o1 == getppid() && o2 == getppid() && o3 == getppid()));
	}
	return WEXITSTATUS(xwaitpid(pid, 0)) == 0;
}

int main(int argc, char **argv)
{
	int pfd, o1, o2, n;
	char line[128];

	wl_init(argc, argv, "record_locks");
	pfd = xopen("rl.posix");
	o1 = xopen("rl.ofd");
	o2 = xopen("rl.ofd");
	pp = xopen("rl.posix");
	po = xopen("rl.ofd");
	setlk(pfd, F_SETLK, F_WRLCK, P_W);
	setlk(pfd, F_SETLK, F_RDLCK, P_R);
	setlk(o1, F_OFD_SETLK, F_WRLCK, O_W);
	setlk(o2, F_OFD_SETLK, F_RDLCK, O_R);

	for (n = 1; n <= wl.steps; n++) {
		setlk(pfd, F_SETLK, n % 2 ? F_WRLCK : F_RDLCK, P_FLIP);
		setlk(pfd, F_SETLK, F_WRLCK, posix_moving(n));
		setlk(pfd, F_SETLK, F_UNLCK, posix_moving(n - 1));
		setlk(o1, F_OFD_SETLK, F_WRLCK, ofd_moving(n));
		setlk(o1, F_OFD_SETLK, F_UNLCK, ofd_moving(n - 1));
		probe_all(n, line, sizeof(line));
		tr_line("step %d %s", n, line);
		step_sleep();
	}

	probe_all(wl.steps, line, sizeof(line));
	check(!strcmp(line, wl.steps % 2 ? "posix=wrww- ofd=wrw-" : "posix=wrrw- ofd=wrw-"), "lock probe %s",
	      line);
	check(posix_seen_by_child(wl.steps), "a child does not see our POSIX locks as ours");
	check(proc_locks(pfd, "POSIX", NULL) == 4, "%d POSIX locks in /proc/locks, expected 4",
	      proc_locks(pfd, "POSIX", NULL));
	check(proc_locks(o1, "OFDLCK", NULL) == 3, "%d OFD locks in /proc/locks, expected 3",
	      proc_locks(o1, "OFDLCK", NULL));
	/* OFD locks belong to their description: o2's read lock does not block o1's reader. */
	check(probe(o1, F_OFD_GETLK, O_R, NULL) == 'r', "o1 does not see o2's read lock");
	check(probe(o2, F_OFD_GETLK, O_R, NULL) == '-', "o2 conflicts with its own lock");
	wl_finish();
}
