/*
 * forktree: a process tree four levels deep with its own process group, its
 * own session and two zombies.
 *
 *   root
 *   +- A
 *   |  +- A1   (setsid: new session)
 *   |  |  +- A1a  (member of A1's session)
 *   |  +- A2
 *   +- B       (setpgid: new process group)
 *   |  +- B1   (member of B's group)
 *   |  +- BZ   (exits 5 at once; B keeps it a zombie until the end)
 *   +- Z       (exits 7 at once; root keeps it a zombie until the end)
 *
 * Every step the root sends the step number down the tree over pipes; each
 * live node evolves its own state, checks its parent/pgid/sid and its
 * zombies are unchanged, and sends a digest over itself and its subtree up.
 */
#include "common.h"

enum kind { NORMAL, NEW_PGRP, NEW_SESSION, ZOMBIE };

struct node {
	const char *name;
	int parent;
	enum kind kind;
	int exit_code; /* zombies only */
};

static const struct node tree[] = {
	{ "root", -1, NORMAL, 0 }, { "A", 0, NORMAL, 0 },      { "B", 0, NEW_PGRP, 0 },
	{ "Z", 0, ZOMBIE, 7 },     { "A1", 1, NEW_SESSION, 0 }, { "A2", 1, NORMAL, 0 },
	{ "B1", 2, NORMAL, 0 },    { "BZ", 2, ZOMBIE, 5 },      { "A1a", 4, NORMAL, 0 },
};
#define NNODES ((int)ARRAY_SIZE(tree))

struct reply {
	uint64_t digest;
	uint32_t ok;
	uint32_t pad;
};

/* Per-process view of its direct children. */
static struct {
	int idx;
	pid_t pid;
	int down, up; /* our ends: write steps down, read replies up */
} kids[NNODES];
static int nkids;

/* What a node recorded about itself at start; must never change. */
static struct {
	pid_t ppid, pgrp, sid;
	uint64_t state;
} self;

static void become(int idx, int up, int down);

static void spawn(int idx)
{
	int d[2], u[2], i;
	pid_t pid;

	if (pipe(d) || pipe(u))
		die("pipe");
	pid = xfork();
	if (pid == 0) {
		/* Links to the parent's other children are not ours. */
		for (i = 0; i < nkids; i++) {
			close(kids[i].down);
			close(kids[i].up);
		}
		nkids = 0;
		close(d[1]);
		close(u[0]);
		become(idx, u[1], d[0]);
	}
	close(d[0]);
	close(u[1]);
	kids[nkids].idx = idx;
	kids[nkids].pid = pid;
	kids[nkids].down = d[1];
	kids[nkids].up = u[0];
	nkids++;
}

/* Is the child a zombie that exited with its expected code? (not reaped) */
static int zombie_ok(int k)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, kids[k].pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return 0;
	return si.si_pid == kids[k].pid && si.si_code == CLD_EXITED &&
	       si.si_status == tree[kids[k].idx].exit_code;
}

static void start_children(int idx)
{
	int i, k;

	for (i = 0; i < NNODES; i++)
		if (tree[i].parent == idx)
			spawn(i);
	/* Zombies must be zombies before step 1 looks at them. */
	for (k = 0; k < nkids; k++) {
		siginfo_t si;

		if (tree[kids[k].idx].kind != ZOMBIE)
			continue;
		while (waitid(P_PID, kids[k].pid, &si, WEXITED | WNOWAIT) < 0)
			if (errno != EINTR)
				die("waitid");
	}
}

/* The root is exempt: its parent, group and session belong to whoever
 * started (or restored) it. */
static int ids_ok(int idx)
{
	return idx == 0 || (getppid() == self.ppid && getpgrp() == self.pgrp && getsid(0) == self.sid);
}

/* One step (n > 0) or the final round (n == 0) for the subtree below us. */
static struct reply subtree_step(int idx, uint32_t n)
{
	struct reply r = { 0 }, kr;
	int k;

	if (n)
		self.state = mix64(self.state ^ ((uint64_t)idx << 32 | n));
	r.digest = fnv1a_u64(FNV_INIT, self.state);
	r.ok = ids_ok(idx);
	for (k = 0; k < nkids; k++) {
		if (tree[kids[k].idx].kind == ZOMBIE) {
			r.ok &= zombie_ok(k);
			continue;
		}
		xwrite(kids[k].down, &n, sizeof(n), "step pipe");
		xread(kids[k].up, &kr, sizeof(kr), "reply pipe");
		r.digest = fnv1a_u64(r.digest, kr.digest);
		r.ok &= kr.ok;
	}
	return r;
}

/* After the final round: children exit; reap them all, zombies included. */
static int reap_children(void)
{
	int k, ok = 1;

	for (k = 0; k < nkids; k++) {
		int st = xwaitpid(kids[k].pid, 0);
		int want = tree[kids[k].idx].exit_code;

		ok &= WIFEXITED(st) && WEXITSTATUS(st) == want;
	}
	return ok;
}

static void become(int idx, int up, int down)
{
	struct reply r;
	uint32_t n;

	if (tree[idx].kind == ZOMBIE)
		_exit(tree[idx].exit_code);
	if (tree[idx].kind == NEW_PGRP && setpgid(0, 0))
		die("setpgid");
	if (tree[idx].kind == NEW_SESSION && setsid() < 0)
		die("setsid");
	self.ppid = getppid();
	self.pgrp = getpgrp();
	self.sid = getsid(0);
	self.state = mix64(idx);
	start_children(idx);

	for (;;) {
		xread(down, &n, sizeof(n), "step pipe");
		r = subtree_step(idx, n);
		if (n == 0)
			break;
		xwrite(up, &r, sizeof(r), "reply pipe");
	}
	r.ok &= reap_children();
	r.ok &= tree[idx].kind != NEW_PGRP || getpgrp() == getpid();
	r.ok &= tree[idx].kind != NEW_SESSION || getsid(0) == getpid();
	xwrite(up, &r, sizeof(r), "final reply");
	_exit(0);
}

int main(int argc, char **argv)
{
	struct reply r;
	int n;

	wl_init(argc, argv, "forktree");
	self.state = mix64(0);
	start_children(0);

	for (n = 1; n <= wl.steps; n++) {
		r = subtree_step(0, n);
		if (!r.ok)
			bail("step %d: a node's parent, group, session or zombie changed", n);
		tr_line("step %d tree=%016llx", n, (unsigned long long)r.digest);
		step_sleep();
	}

	r = subtree_step(0, 0);
	check(r.ok, "final round: a node's ids or children differ");
	check(reap_children(), "a child (or zombie) exited with an unexpected status");
	wl_finish();
}
