/*
 * flock: BSD flock() locks in several states (needs criu --file-locks).
 *
 *  a  LOCK_EX on one open file description (OFD)
 *  b  LOCK_SH on two separate OFDs
 *  c  LOCK_EX taken by a child on an OFD it shares with the parent (fork):
 *     the lock belongs to the OFD and outlives the child
 *  d  converted between LOCK_SH and LOCK_EX on alternate even steps
 *
 * Locks are observed from the outside: a fresh OFD tries non-blocking
 * locks (flock conflicts between OFDs even within one process).
 */
#include "common.h"

#include <sys/file.h>

static int xopen(const char *rel)
{
	int fd = open(dpath(rel), O_RDWR | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		die("open %s", rel);
	return fd;
}

static void xflock(int fd, int op, const char *what)
{
	while (flock(fd, op))
		if (errno != EINTR)
			die("flock %s", what);
}

/* Probe a file's lock state from a new OFD: "ex", "sh" or "none". */
static const char *probe(const char *rel)
{
	int fd = xopen(rel);
	const char *state;

	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		state = "none";
	else if (errno != EWOULDBLOCK)
		die("probe flock %s", rel);
	else if (flock(fd, LOCK_SH | LOCK_NB) == 0)
		state = "sh";
	else
		state = "ex";
	close(fd); /* drops the probe's own lock, if any */
	return state;
}

int main(int argc, char **argv)
{
	int a, b1, b2, c, d, up[2], down[2], n;
	const char *d_mode = "sh";
	char byte = 0;
	pid_t pid;

	wl_init(argc, argv, "flock");
	a = xopen("flock.a");
	b1 = xopen("flock.b");
	b2 = xopen("flock.b");
	c = xopen("flock.c");
	d = xopen("flock.d");
	xflock(a, LOCK_EX, "a");
	xflock(b1, LOCK_SH, "b1");
	xflock(b2, LOCK_SH, "b2");
	xflock(d, LOCK_SH, "d");
	if (pipe2(up, O_CLOEXEC) || pipe2(down, O_CLOEXEC))
		die("pipe");
	pid = xfork();
	if (pid == 0) {
		xflock(c, LOCK_EX, "c");
		xwrite(up[1], &byte, 1, "pipe");
		xread(down[0], &byte, 1, "pipe");
		_exit(0);
	}
	xread(up[0], &byte, 1, "pipe"); /* the child holds c now */

	for (n = 1; n <= wl.steps; n++) {
		if (n % 4 == 0 || n % 4 == 2) {
			d_mode = n % 4 == 0 ? "ex" : "sh";
			xflock(d, n % 4 == 0 ? LOCK_EX : LOCK_SH, "d");
		}
		tr_line("step %d a=%s b=%s c=%s d=%s", n, probe("flock.a"), probe("flock.b"), probe("flock.c"),
			probe("flock.d"));
		step_sleep();
	}

	xwrite(down[1], &byte, 1, "pipe");
	reap_expect(pid, 0, "child");
	check(!strcmp(probe("flock.a"), "ex") && !strcmp(probe("flock.b"), "sh") && !strcmp(probe("flock.d"), d_mode),
	      "lock states differ at the end");
	check(!strcmp(probe("flock.c"), "ex"), "the child's lock on the shared OFD did not outlive it");
	check(proc_locks(a, "FLOCK", "WRITE") == 1 && proc_locks(b1, "FLOCK", "READ") == 2 &&
		      proc_locks(c, "FLOCK", "WRITE") == 1 &&
		      proc_locks(d, "FLOCK", !strcmp(d_mode, "ex") ? "WRITE" : "READ") == 1,
	      "/proc/locks lists other flock entries than expected");
	/* Our own OFDs still own their locks: unlocking a frees the file. */
	xflock(a, LOCK_UN, "a");
	check(!strcmp(probe("flock.a"), "none"), "unlocking a did not release it");
	wl_finish();
}
