/*
 * namespaces: a process tree in its own pid, uts, ipc and mount namespaces.
 *
 * CRIU can only dump a pid namespace from its init (pid 1), and only dumps
 * uts/ipc namespaces that belong to the dump root, so the started program
 * is a thin launcher that is NOT part of the checkpoint:
 *
 *   launcher (started by the harness; writes DIR/dump_root.pid, then waits
 *   |         and exits with the init's exit status)
 *   +- init   pid 1 in new pid+uts+ipc+mnt namespaces: the DUMP ROOT.
 *      |      Its mount namespace is pivoted into DIR, so it contains just
 *      |      three mounts: / (a bind of DIR), /proc (new procfs) and /ro.dst
 *      |      (a read-only bind of /ro.src). It re-executes a copy of this
 *      |      binary at /ns_init so that nothing it uses lies outside DIR.
 *      +- child  pid 2, answers the init every step.
 *
 * The init writes the transcript (DIR/transcript, seen as /transcript).
 * Restore needs `--root DIR` (criu bind-mounts it as the namespace root).
 * The root file system must not be the initramfs (pivot_root fails there).
 */
#include "common.h"

#include <dirent.h>
#include <sched.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

#define HOST "crtest-ns"
#define DOMAIN "crtest.example"
#define SHM_KEY 0x4e530001
#define MSG_KEY 0x4e530002
#define SHM_SIZE (16 * 1024)
#define PAGE 4096
#define RO_TEXT "read-only bind mount content\n"

extern char **environ;

struct token {
	uint32_t step; /* 0: stop */
	uint32_t pad;
	uint64_t init_ns; /* the init's current namespace ids */
};

struct reply {
	int32_t pid, ppid;
	uint32_t same_ns;
	uint32_t host_ok;
	uint64_t shm_hash;
};

/* ---------------- launcher (outside the namespaces, not dumped) ---------------- */

static void __attribute__((noreturn)) launch_fail(const char *what)
{
	int e = errno;

	tr_line("start namespaces steps=%d", wl.steps);
	errno = e;
	die("%s", what);
}

static void copy_self(const char *to)
{
	char buf[65536];
	int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	ssize_t r;

	if (in < 0 || out < 0)
		launch_fail("copy /proc/self/exe");
	while ((r = read(in, buf, sizeof(buf))) > 0)
		if (write_full(out, buf, r))
			launch_fail("write ns_init");
	if (r < 0)
		launch_fail("read /proc/self/exe");
	close(in);
	close(out);
}

/* Runs as pid 1 of the new pid namespace, before exec. */
static void __attribute__((noreturn)) enter(int go)
{
	char steps[16], byte;
	char *args[] = { "ns_init", "--ns-init", steps, NULL };
	int fd;

	if (read(go, &byte, 1) != 1)
		launch_fail("wait for launcher");
	snprintf(steps, sizeof(steps), "%d", wl.steps);
	/* A session of its own: criu wants the dump root to lead its session. */
	if (setsid() < 0 || unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC))
		launch_fail("setsid/unshare");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) || mount(wl.dir, wl.dir, NULL, MS_BIND, NULL) ||
	    chdir(wl.dir))
		launch_fail("prepare new root");
	if (mkdir("old", 0700) || syscall(SYS_pivot_root, ".", "old") || chdir("/") ||
	    umount2("/old", MNT_DETACH) || rmdir("/old"))
		launch_fail("pivot_root into DIR (is / the initramfs?)");
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) ||
	    mount("/ro.src", "/ro.dst", NULL, MS_BIND, NULL) ||
	    mount(NULL, "/ro.dst", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL))
		launch_fail("mount proc / ro bind");
	/* Nothing may point outside the namespace: stdio too, and stray fds. */
	fd = open("/ns.stdio", O_RDWR | O_CREAT | O_APPEND, 0644);
	if (fd < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		launch_fail("stdio");
	syscall(SYS_close_range, 3, ~0U, 0);
	execve("/ns_init", args, environ);
	_exit(127); /* the transcript fd is gone (close_range): nothing to report to */
}

static int launcher(void)
{
	int go[2], st;
	char pidbuf[32];
	pid_t pid;

	wl_open_transcript();
	copy_self(dpath("ns_init"));
	if (mkdir(dpath("proc"), 0555) || mkdir(dpath("ro.src"), 0755) || mkdir(dpath("ro.dst"), 0755))
		launch_fail("mkdir");
	write_file("ro.src/file", RO_TEXT, strlen(RO_TEXT));
	if (pipe2(go, O_CLOEXEC))
		launch_fail("pipe");
	if (unshare(CLONE_NEWPID))
		launch_fail("unshare(CLONE_NEWPID) (needs root)");
	pid = fork();
	if (pid < 0)
		launch_fail("fork");
	if (pid == 0) {
		close(go[1]);
		enter(go[0]);
	}
	close(go[0]);
	/* Written before the init may start, so it exists before any step line. */
	snprintf(pidbuf, sizeof(pidbuf), "%d\n", pid);
	write_file("dump_root.pid.tmp", pidbuf, strlen(pidbuf));
	if (rename(dpath("dump_root.pid.tmp"), dpath("dump_root.pid")))
		launch_fail("rename dump_root.pid");
	xwrite(go[1], "g", 1, "go pipe");
	close(go[1]);
	st = xwaitpid(pid, 0);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		launch_fail("exec /ns_init in the new namespaces");
	/* After a checkpoint the init is killed here and lives on elsewhere. */
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---------------- inside the namespaces ---------------- */

static unsigned long ns_ino(const char *which)
{
	char p[64];
	struct stat st;

	snprintf(p, sizeof(p), "/proc/self/ns/%s", which);
	return stat(p, &st) ? 0 : st.st_ino;
}

/* Fixed inode numbers of the initial namespaces (PROC_*_INIT_INO). */
#define INIT_PID_INO 0xEFFFFFFCUL
#define INIT_UTS_INO 0xEFFFFFFEUL
#define INIT_IPC_INO 0xEFFFFFFFUL

/* Namespace inode numbers change on restore; they are only compared
 * between processes restored together, or with the initial ones. */
static int in_new_namespaces(void)
{
	return ns_ino("pid") != INIT_PID_INO && ns_ino("uts") != INIT_UTS_INO && ns_ino("ipc") != INIT_IPC_INO;
}

static uint64_t ns_ids(void)
{
	static const char *const kinds[] = { "pid", "uts", "ipc", "mnt" };
	uint64_t h = FNV_INIT;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(kinds); i++)
		h = fnv1a_u64(h, ns_ino(kinds[i]));
	return h;
}

static int host_ok(void)
{
	struct utsname u;

	return !uname(&u) && !strcmp(u.nodename, HOST) && !strcmp(u.domainname, DOMAIN);
}

/* Processes visible in our /proc: the pid namespace's population. */
static int count_procs(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!d)
		die("opendir /proc");
	while ((e = readdir(d)))
		n += e->d_name[0] >= '1' && e->d_name[0] <= '9';
	closedir(d);
	return n;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted mount points of our namespace, e.g. "/,/proc,/ro.dst(ro)". The
 * order of mountinfo lines is the order of (re)creation: not compared. */
static void mounts(char *out, size_t size)
{
	static char buf[16384], mps[32][300];
	char *line, *sorted[32];
	size_t off = 0;
	int n = 0, i;

	if (read_text("/proc/self/mountinfo", buf, sizeof(buf)) < 0)
		die("read mountinfo");
	for (line = strtok(buf, "\n"); line && n < 32; line = strtok(NULL, "\n")) {
		char mp[256], opts[256];

		if (sscanf(line, "%*d %*d %*s %*s %255s %255s", mp, opts) != 2)
			continue;
		snprintf(mps[n], sizeof(mps[n]), "%s%s", mp, !strncmp(opts, "ro,", 3) || !strcmp(opts, "ro") ? "(ro)" : "");
		sorted[n] = mps[n];
		n++;
	}
	qsort(sorted, n, sizeof(sorted[0]), cmp_str);
	out[0] = 0;
	for (i = 0; i < n && off < size; i++)
		off += snprintf(out + off, size - off, "%s%s", i ? "," : "", sorted[i]);
}

static void shm_step(unsigned char *shm, int n)
{
	fill_pattern(shm + (n % (SHM_SIZE / PAGE)) * PAGE, PAGE, 0x5E00 + n);
}

static void __attribute__((noreturn)) ns_child(int tok, int rep, const unsigned char *shm)
{
	struct token t;
	struct reply r;

	for (;;) {
		xread(tok, &t, sizeof(t), "token");
		if (t.step == 0)
			_exit(0);
		r.pid = getpid();
		r.ppid = getppid();
		r.same_ns = ns_ids() == t.init_ns;
		r.host_ok = host_ok();
		r.shm_hash = fnv1a(shm, SHM_SIZE);
		xwrite(rep, &r, sizeof(r), "reply");
	}
}

static int ns_init(void)
{
	static unsigned char want[SHM_SIZE];
	char mnt[512], ro[64];
	unsigned char *shm;
	int tok[2], rep[2], shmid, msq, n, fd;
	struct { long type; char text[16]; } msg = { 7, "kept-in-queue" };
	struct token t = { 0 };
	struct reply r;
	pid_t pid;

	wl_open_transcript();
	tr_line("start %s steps=%d", wl.name, wl.steps);
	if (getpid() != 1)
		bail("init is pid %d, not 1", getpid());
	if (sethostname(HOST, strlen(HOST)) || setdomainname(DOMAIN, strlen(DOMAIN)))
		die("sethostname");
	shmid = shmget(SHM_KEY, SHM_SIZE, IPC_CREAT | IPC_EXCL | 0600);
	msq = msgget(MSG_KEY, IPC_CREAT | IPC_EXCL | 0600);
	if (shmid < 0 || msq < 0 || (shm = shmat(shmid, NULL, 0)) == (void *)-1)
		die("sysv objects in the new ipc namespace");
	fill_pattern(shm, SHM_SIZE, 0x5E00);
	if (msgsnd(msq, &msg, sizeof(msg.text), 0))
		die("msgsnd");
	if (pipe2(tok, O_CLOEXEC) || pipe2(rep, O_CLOEXEC))
		die("pipe");
	pid = xfork();
	if (pid == 0)
		ns_child(tok[0], rep[1], shm);
	close(tok[0]);
	close(rep[1]);

	for (n = 1; n <= wl.steps; n++) {
		shm_step(shm, n);
		t.step = n;
		t.init_ns = ns_ids();
		xwrite(tok[1], &t, sizeof(t), "token");
		xread(rep[0], &r, sizeof(r), "reply");
		if (r.shm_hash != fnv1a(shm, SHM_SIZE))
			bail("step %d: child sees different SysV shm", n);
		mounts(mnt, sizeof(mnt));
		tr_line("step %d pid=%d child=%d ppid=%d procs=%d host=%s newns=%s samens=%s mounts=%s shm=%016llx",
			n, getpid(), r.pid, r.ppid, count_procs(), host_ok() && r.host_ok ? HOST : "changed",
			in_new_namespaces() ? "yes" : "no", r.same_ns ? "yes" : "no", mnt,
			(unsigned long long)r.shm_hash);
		step_sleep();
	}

	t.step = 0;
	xwrite(tok[1], &t, sizeof(t), "token");
	reap_expect(pid, 0, "child");
	check(getpid() == 1, "init is no longer pid 1");
	check(host_ok(), "hostname/domainname changed");
	check(in_new_namespaces(), "init is back in an initial namespace");
	mounts(mnt, sizeof(mnt));
	check(!strcmp(mnt, "/,/proc,/ro.dst(ro)"), "mounts are %s", mnt);
	fd = open("/ro.dst/file", O_RDONLY | O_CLOEXEC);
	check(fd >= 0 && read_full(fd, ro, sizeof(ro)) == (ssize_t)strlen(RO_TEXT) && !memcmp(ro, RO_TEXT, strlen(RO_TEXT)),
	      "read-only bind shows wrong content");
	close(fd);
	check(open("/ro.dst/new", O_WRONLY | O_CREAT | O_CLOEXEC, 0644) < 0 && errno == EROFS,
	      "read-only bind became writable");
	fill_pattern(want, SHM_SIZE, 0x5E00);
	for (n = 1; n <= wl.steps; n++)
		shm_step(want, n);
	check(shmget(SHM_KEY, 0, 0) == shmid && !memcmp(shm, want, SHM_SIZE), "SysV shm differs");
	memset(&msg, 0, sizeof(msg));
	check(msgget(MSG_KEY, 0) == msq && msgrcv(msq, &msg, sizeof(msg.text), 0, IPC_NOWAIT) > 0 && msg.type == 7 &&
		      !strcmp(msg.text, "kept-in-queue"),
	      "SysV message lost");
	check(count_procs() == 1, "processes left in the pid namespace");
	wl_finish();
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--ns-init")) {
		/* Re-executed inside the namespaces: DIR is now the root. */
		char *args[] = { argv[0], "", argv[2], NULL };

		wl_parse(3, args, "namespaces");
		return ns_init();
	}
	wl_parse(argc, argv, "namespaces");
	return launcher();
}
