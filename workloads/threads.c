/*
 * threads: main thread plus four workers, each with its own TLS state, heap
 * buffer (per-thread malloc arenas), name, signal mask and a different way
 * of blocking between steps, so a dump catches threads in several states:
 *
 *   worker 0  sem_wait (futex)
 *   worker 1  read() on a pipe
 *   worker 2  pthread_cond_wait
 *   worker 3  sigwaitinfo() for a thread-directed SIGUSR1
 *
 * Steps are strictly driven by the main thread (wake every worker, wait for
 * all of them), so the results and the transcript are deterministic.
 */
#include "common.h"

#include <dirent.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/prctl.h>

#define NWORKERS 4
#define BUF_SIZE (16 * 1024)

static __thread uint64_t tls_state;

static volatile uint32_t cur_step; /* published before each wake-up */
static sem_t go_sem, done_sem;
static int go_pipe[2];
static pthread_mutex_t go_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go_cond = PTHREAD_COND_INITIALIZER;
static uint32_t go_gen;
static pthread_t tids[NWORKERS];
static uint64_t results[NWORKERS];

static void expected_mask(int i, sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGUSR1);
	sigaddset(set, SIGRTMIN + i);
}

static void worker_state(int i, int steps, uint64_t *state, unsigned char *buf)
{
	int n;

	*state = mix64(0x7000 + i);
	fill_pattern(buf, BUF_SIZE, 0x7100 + i);
	for (n = 1; n <= steps; n++) {
		*state = mix64(*state ^ ((uint64_t)n << 8 | i));
		fill_pattern(buf + (n * 256) % BUF_SIZE, 256, *state);
	}
}

static uint32_t wait_go(int i)
{
	static __thread uint32_t seen_gen;
	sigset_t usr1;
	uint32_t n;

	switch (i) {
	case 0:
		while (sem_wait(&go_sem) && errno == EINTR)
			;
		break;
	case 1:
		xread(go_pipe[0], &n, sizeof(n), "go pipe");
		break;
	case 2:
		pthread_mutex_lock(&go_lock);
		while (go_gen == seen_gen)
			pthread_cond_wait(&go_cond, &go_lock);
		seen_gen = go_gen;
		pthread_mutex_unlock(&go_lock);
		break;
	case 3:
		sigemptyset(&usr1);
		sigaddset(&usr1, SIGUSR1);
		while (sigwaitinfo(&usr1, NULL) < 0)
			if (errno != EINTR)
				die("sigwaitinfo");
		break;
	}
	return cur_step;
}

static void *worker(void *arg)
{
	int i = (int)(intptr_t)arg;
	unsigned char *buf = malloc(BUF_SIZE), *want = malloc(BUF_SIZE);
	char name[16], got[16];
	sigset_t mask, cur;
	uint64_t want_state;
	uint32_t n;
	int last = 0;

	if (!buf || !want)
		bail("malloc");
	snprintf(name, sizeof(name), "crtw%d", i);
	prctl(PR_SET_NAME, name);
	expected_mask(i, &mask);
	pthread_sigmask(SIG_SETMASK, &mask, NULL);
	tls_state = mix64(0x7000 + i);
	fill_pattern(buf, BUF_SIZE, 0x7100 + i);
	sem_post(&done_sem);

	while ((n = wait_go(i)) != 0) {
		tls_state = mix64(tls_state ^ ((uint64_t)n << 8 | i));
		fill_pattern(buf + (n * 256) % BUF_SIZE, 256, tls_state);
		results[i] = fnv1a_u64(fnv1a(buf, BUF_SIZE), tls_state);
		last = n;
		sem_post(&done_sem);
	}

	/* Stop: each thread checks its own private state. */
	worker_state(i, last, &want_state, want);
	prctl(PR_GET_NAME, got);
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	results[i] = (tls_state == want_state) | !memcmp(buf, want, BUF_SIZE) << 1 |
		     !strcmp(got, name) << 2 | (sigismember(&cur, SIGUSR1) == 1) << 3 |
		     (sigismember(&cur, SIGRTMIN + i) == 1) << 4 |
		     (sigismember(&cur, SIGRTMIN + (i + 1) % NWORKERS) == 0) << 5;
	return (void *)(intptr_t)(last + 1000);
}

static void wake_all(uint32_t n)
{
	int i;

	cur_step = n;
	sem_post(&go_sem);
	xwrite(go_pipe[1], &n, sizeof(n), "go pipe");
	pthread_mutex_lock(&go_lock);
	go_gen++;
	pthread_cond_signal(&go_cond);
	pthread_mutex_unlock(&go_lock);
	if (pthread_kill(tids[3], SIGUSR1))
		bail("pthread_kill");
	for (i = 0; i < NWORKERS; i++)
		while (n && sem_wait(&done_sem) && errno == EINTR)
			;
}

static int count_tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		die("opendir /proc/self/task");
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	pthread_attr_t attr;
	sigset_t usr1;
	int i, n;

	wl_init(argc, argv, "threads");
	/* SIGUSR1 is only ever consumed by worker 3's sigwaitinfo. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	if (sem_init(&go_sem, 0, 0) || sem_init(&done_sem, 0, 0) || pipe2(go_pipe, O_CLOEXEC))
		die("setup");
	pthread_attr_init(&attr);
	for (i = 0; i < NWORKERS; i++) {
		/* One small custom stack, the rest default-sized. */
		pthread_attr_setstacksize(&attr, i == 2 ? 128 * 1024 : 2 * 1024 * 1024);
		if (pthread_create(&tids[i], &attr, worker, (void *)(intptr_t)i))
			bail("pthread_create");
	}
	for (i = 0; i < NWORKERS; i++)
		while (sem_wait(&done_sem) && errno == EINTR)
			;

	for (n = 1; n <= wl.steps; n++) {
		uint64_t h = FNV_INIT;

		wake_all(n);
		for (i = 0; i < NWORKERS; i++)
			h = fnv1a_u64(h, results[i]);
		tr_line("step %d tasks=%d digest=%016llx", n, count_tasks(), (unsigned long long)h);
		step_sleep();
	}

	wake_all(0);
	for (i = 0; i < NWORKERS; i++) {
		void *ret;

		if (pthread_join(tids[i], &ret))
			bail("pthread_join");
		check((intptr_t)ret == wl.steps + 1000, "worker %d ran %ld steps", i, (long)(intptr_t)ret - 1000);
		check(results[i] == 0x3f, "worker %d self-check bits %#llx (tls,buf,name,mask...)", i,
		      (unsigned long long)results[i]);
	}
	/* A joined thread's task can linger in /proc/self/task for a moment after
	 * the kernel clears its tid (what pthread_join waits on): give it a second. */
	for (i = 0; i < 100 && count_tasks() != 1; i++)
		usleep(10000);
	check(count_tasks() == 1, "threads left after join");
	wl_finish();
}
