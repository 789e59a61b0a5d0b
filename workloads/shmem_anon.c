/*
 * shmem_anon: parent and child share a MAP_SHARED|MAP_ANONYMOUS region and
 * also inherit a MAP_PRIVATE region whose pages diverge by copy-on-write.
 *
 * Per step the parent writes one page of its half of the shared region and
 * one private page, then hands a token to the child, which checks that the
 * parent's write is visible, writes a page of its own half and one of its
 * private pages, and reports hashes back. A process-shared mutex in the
 * shared region guards a counter both increment.
 */
#include "common.h"

#include <pthread.h>
#include <sys/mman.h>

#define PAGE 4096
#define SHARED_PAGES 256 /* page 0: control block; 1..127 parent; 128..255 child */
#define PRIV_PAGES 64

struct ctl {
	pthread_mutex_t lock;
	uint64_t counter;
};

struct reply {
	uint32_t seq;
	uint32_t saw_parent; /* parent's write of this step was visible */
	uint64_t shared_hash;
	uint64_t priv_hash;
};

static unsigned char *shared, *priv;

static size_t parent_page(int n) { return 1 + n % 127; }
static size_t child_page(int n) { return 128 + n % 128; }

static void parent_writes(unsigned char *sh, unsigned char *pv, int n)
{
	fill_pattern(sh + parent_page(n) * PAGE, PAGE, 0xA000 + n);
	if (pv)
		fill_pattern(pv + (n % PRIV_PAGES) * PAGE, PAGE, 0xB000 + n);
}

static void child_writes(unsigned char *sh, unsigned char *pv, int n)
{
	fill_pattern(sh + child_page(n) * PAGE, PAGE, 0xC000 + n);
	if (pv)
		fill_pattern(pv + ((n * 7) % PRIV_PAGES) * PAGE + 512, 1024, 0xD000 + n);
}

static uint64_t shared_hash(const unsigned char *sh)
{
	return fnv1a(sh + PAGE, (SHARED_PAGES - 1) * PAGE);
}

static void bump_counter(void)
{
	struct ctl *c = (struct ctl *)shared;

	if (pthread_mutex_lock(&c->lock))
		bail("mutex lock");
	c->counter++;
	pthread_mutex_unlock(&c->lock);
}

/* Expected view of one process after `steps` steps (0 = parent, 1 = child). */
static void rebuild(unsigned char *sh, unsigned char *pv, int steps, int who)
{
	int n;

	memset(sh, 0, SHARED_PAGES * PAGE);
	fill_pattern(pv, PRIV_PAGES * PAGE, 0xE0);
	for (n = 1; n <= steps; n++) {
		parent_writes(sh, who == 0 ? pv : NULL, n);
		child_writes(sh, who == 1 ? pv : NULL, n);
	}
}

static void child(int tok, int rep)
{
	static unsigned char want_sh[SHARED_PAGES * PAGE], want_pv[PRIV_PAGES * PAGE], page[PAGE];
	struct reply r;
	uint32_t t;

	for (;;) {
		xread(tok, &t, sizeof(t), "token");
		if (t == 0)
			break;
		fill_pattern(page, PAGE, 0xA000 + t);
		r.seq = t;
		r.saw_parent = !memcmp(shared + parent_page(t) * PAGE, page, PAGE);
		child_writes(shared, priv, t);
		bump_counter();
		r.shared_hash = shared_hash(shared);
		r.priv_hash = fnv1a(priv, PRIV_PAGES * PAGE);
		xwrite(rep, &r, sizeof(r), "reply");
	}
	/* Final self-check of the child's private (COW) view. */
	rebuild(want_sh, want_pv, wl.steps, 1);
	r.seq = 0;
	r.saw_parent = !memcmp(priv, want_pv, sizeof(want_pv));
	r.shared_hash = shared_hash(shared);
	r.priv_hash = 0;
	xwrite(rep, &r, sizeof(r), "final reply");
	_exit(0);
}

int main(int argc, char **argv)
{
	static unsigned char want_sh[SHARED_PAGES * PAGE], want_pv[PRIV_PAGES * PAGE];
	pthread_mutexattr_t ma;
	int tok[2], rep[2], n;
	struct reply r;
	uint32_t t;
	pid_t pid;

	wl_init(argc, argv, "shmem_anon");
	shared = mmap(NULL, SHARED_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	priv = mmap(NULL, PRIV_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED || priv == MAP_FAILED)
		die("mmap");
	fill_pattern(priv, PRIV_PAGES * PAGE, 0xE0);
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	if (pthread_mutex_init(&((struct ctl *)shared)->lock, &ma))
		bail("pthread_mutex_init");
	if (pipe2(tok, O_CLOEXEC) || pipe2(rep, O_CLOEXEC))
		die("pipe");

	pid = xfork();
	if (pid == 0) {
		close(tok[1]);
		close(rep[0]);
		child(tok[0], rep[1]);
	}
	close(tok[0]);
	close(rep[1]);

	for (n = 1; n <= wl.steps; n++) {
		unsigned char page[PAGE];

		parent_writes(shared, priv, n);
		bump_counter();
		t = n;
		xwrite(tok[1], &t, sizeof(t), "token");
		xread(rep[0], &r, sizeof(r), "reply");
		fill_pattern(page, PAGE, 0xC000 + n);
		if (r.seq != (uint32_t)n || !r.saw_parent)
			bail("step %d: child did not see the parent's shared write", n);
		if (memcmp(shared + child_page(n) * PAGE, page, PAGE))
			bail("step %d: parent does not see the child's shared write", n);
		if (r.shared_hash != shared_hash(shared))
			bail("step %d: parent and child see different shared memory", n);
		tr_line("step %d shared=%016llx child_priv=%016llx parent_priv=%016llx counter=%llu", n,
			(unsigned long long)r.shared_hash, (unsigned long long)r.priv_hash,
			(unsigned long long)fnv1a(priv, PRIV_PAGES * PAGE),
			(unsigned long long)((struct ctl *)shared)->counter);
		step_sleep();
	}

	t = 0;
	xwrite(tok[1], &t, sizeof(t), "token");
	xread(rep[0], &r, sizeof(r), "final reply");
	reap_expect(pid, 0, "child");
	check(r.saw_parent, "child's private (COW) memory differs from expected");
	rebuild(want_sh, want_pv, wl.steps, 0);
	check(!memcmp(shared + PAGE, want_sh + PAGE, (SHARED_PAGES - 1) * PAGE), "shared memory differs");
	check(r.shared_hash == shared_hash(want_sh), "child's final view of shared memory differs");
	check(!memcmp(priv, want_pv, sizeof(want_pv)), "parent's private (COW) memory differs");
	check(((struct ctl *)shared)->counter == 2 * (uint64_t)wl.steps, "shared counter %llu",
	      (unsigned long long)((struct ctl *)shared)->counter);
	wl_finish();
}
