/*
 * sysv_ipc: SysV shared memory, semaphores and message queues inside a
 * private IPC namespace.
 *
 * The program unshares CLONE_NEWIPC first (root only) so CRIU dumps the
 * whole IPC namespace with it (objects in the host namespace would not be
 * saved) and so concurrent runs cannot collide on keys.
 *
 *  shm A   64 KiB, attached; one page rewritten per step
 *  shm B   16 KiB, detached after filling: lives only in the namespace
 *  sem     set of 4; every step adds n % 3 + 1 to semaphore n % 4
 *  msg     queue with LEAD messages of types 1 and 2 in flight; every step
 *          receives the oldest type-2 message, then (msgtyp -1) the oldest
 *          type-1 message, and sends one of each
 */
#include "common.h"

#include <sched.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>

#define KEY_A 0x43525401
#define KEY_B 0x43525402
#define KEY_SEM 0x43525403
#define KEY_MSG 0x43525404
#define SHM_A_SIZE (64 * 1024)
#define SHM_B_SIZE (16 * 1024)
#define PAGE 4096
#define NSEMS 4
#define LEAD 4

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

struct msg {
	long type;
	uint32_t seq;
	unsigned char body[60];
};

static long msg_type(uint32_t seq)
{
	return seq % 2 ? 1 : 2;
}

static void msg_send(int q, uint32_t seq)
{
	struct msg m = { msg_type(seq), seq, { 0 } };

	fill_pattern(m.body, sizeof(m.body), 0x3300 + seq);
	while (msgsnd(q, &m, sizeof(m) - sizeof(long), IPC_NOWAIT))
		if (errno != EINTR)
			die("msgsnd");
}

/* msgrcv() with msgtyp `type`; returns the message's seq. */
static uint32_t msg_recv(int q, long type)
{
	unsigned char want[sizeof(((struct msg *)0)->body)];
	struct msg m;

	while (msgrcv(q, &m, sizeof(m) - sizeof(long), type, IPC_NOWAIT) < 0)
		if (errno != EINTR)
			die("msgrcv type %ld", type);
	fill_pattern(want, sizeof(want), 0x3300 + m.seq);
	if (m.type != msg_type(m.seq) || memcmp(m.body, want, sizeof(want)))
		bail("message %u corrupt", m.seq);
	return m.seq;
}

static void shm_a_step(unsigned char *a, int n)
{
	fill_pattern(a + (n % (SHM_A_SIZE / PAGE)) * PAGE, PAGE, 0x1100 + n);
}

static int queue_len(int q)
{
	struct msqid_ds ds;

	if (msgctl(q, IPC_STAT, &ds))
		die("msgctl");
	return ds.msg_qnum;
}

int main(int argc, char **argv)
{
	static unsigned char want[SHM_A_SIZE];
	unsigned short vals[NSEMS], expect[NSEMS] = { 0 };
	int shm_a, shm_b, sem, q, n, i;
	uint32_t next_send = 1, seq_sum = 0;
	unsigned char *a, *b;
	struct shmid_ds ds;

	wl_init(argc, argv, "sysv_ipc");
	if (unshare(CLONE_NEWIPC))
		die("unshare(CLONE_NEWIPC)");

	shm_a = shmget(KEY_A, SHM_A_SIZE, IPC_CREAT | IPC_EXCL | 0600);
	shm_b = shmget(KEY_B, SHM_B_SIZE, IPC_CREAT | IPC_EXCL | 0640);
	sem = semget(KEY_SEM, NSEMS, IPC_CREAT | IPC_EXCL | 0600);
	q = msgget(KEY_MSG, IPC_CREAT | IPC_EXCL | 0600);
	if (shm_a < 0 || shm_b < 0 || sem < 0 || q < 0)
		die("create ipc objects");
	a = shmat(shm_a, NULL, 0);
	b = shmat(shm_b, NULL, 0);
	if (a == (void *)-1 || b == (void *)-1)
		die("shmat");
	fill_pattern(a, SHM_A_SIZE, 0x1000);
	fill_pattern(b, SHM_B_SIZE, 0x2000);
	shmdt(b);
	for (; next_send <= LEAD; next_send++)
		msg_send(q, next_send);

	for (n = 1; n <= wl.steps; n++) {
		struct sembuf op = { n % NSEMS, n % 3 + 1, 0 };
		uint32_t s1, s2;

		shm_a_step(a, n);
		while (semop(sem, &op, 1))
			if (errno != EINTR)
				die("semop");
		s1 = msg_recv(q, 2);
		s2 = msg_recv(q, -1);
		msg_send(q, next_send++);
		msg_send(q, next_send++);
		seq_sum += s1 + s2;
		if (semctl(sem, 0, GETALL, (union semun){ .array = vals }))
			die("semctl GETALL");
		tr_line("step %d shm=%016llx sem=%u,%u,%u,%u msg=%u,%u qnum=%d", n,
			(unsigned long long)fnv1a(a, SHM_A_SIZE), vals[0], vals[1], vals[2], vals[3], s1, s2,
			queue_len(q));
		step_sleep();
	}

	/* Every object must still be found by key, with the same id and content. */
	check(shmget(KEY_A, 0, 0) == shm_a && shmget(KEY_B, 0, 0) == shm_b && semget(KEY_SEM, 0, 0) == sem &&
		      msgget(KEY_MSG, 0) == q,
	      "an IPC object changed id or vanished");
	fill_pattern(want, SHM_A_SIZE, 0x1000);
	for (n = 1; n <= wl.steps; n++)
		shm_a_step(want, n);
	check(!memcmp(a, want, SHM_A_SIZE), "attached segment differs");
	check(!shmctl(shm_a, IPC_STAT, &ds) && ds.shm_nattch == 1 && (ds.shm_perm.mode & 0777) == 0600,
	      "attached segment: nattch/mode changed");
	check(!shmctl(shm_b, IPC_STAT, &ds) && ds.shm_nattch == 0 && (ds.shm_perm.mode & 0777) == 0640,
	      "detached segment: nattch/mode changed");
	b = shmat(shm_b, NULL, SHM_RDONLY);
	fill_pattern(want, SHM_B_SIZE, 0x2000);
	check(b != (void *)-1 && !memcmp(b, want, SHM_B_SIZE), "detached segment content differs");

	for (n = 1; n <= wl.steps; n++)
		expect[n % NSEMS] += n % 3 + 1;
	semctl(sem, 0, GETALL, (union semun){ .array = vals });
	for (i = 0; i < NSEMS; i++)
		check(vals[i] == expect[i], "semaphore %d is %u, expected %u", i, vals[i], expect[i]);

	/* Drain: all remaining messages intact and none lost or duplicated. */
	check(queue_len(q) == LEAD, "%d messages queued, expected %d", queue_len(q), LEAD);
	while (queue_len(q) > 0)
		seq_sum += msg_recv(q, 0);
	check(seq_sum == (next_send - 1) * next_send / 2, "message sequence numbers lost or duplicated");
	wl_finish();
}
