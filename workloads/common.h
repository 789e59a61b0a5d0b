/*
 * Shared helpers for crtest workloads.
 *
 * Every workload is invoked as `NAME DIR STEPS`, writes its transcript to
 * DIR/transcript (one write(2) per line, O_APPEND) and must produce the same
 * bytes whether or not it was checkpointed/restored (or just stopped) in the
 * middle. Nothing printed may depend on time, PIDs, addresses or kernel-chosen
 * numbers; only on logical progress.
 *
 * Header-only on purpose: each workload is one C file built with a single cc
 * command. Everything is `static inline` so unused helpers don't trip -Werror.
 */
#ifndef CRTEST_COMMON_H
#define CRTEST_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WL_LINE_MAX 2048
#define WL_FAIL_MAX 600

struct wl_state {
	const char *name;
	const char *dir;
	int steps;
	long step_ms;
	int tr_fd;
	int is_child;          /* set in forked helpers: they never write `done` */
	char fail[WL_FAIL_MAX]; /* accumulated verification failures */
};

static struct wl_state wl __attribute__((unused)) = { .tr_fd = -1 };

/* ---------- transcript ---------- */

static inline void tr_vline(const char *fmt, va_list ap)
{
	char buf[WL_LINE_MAX];
	int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	ssize_t w;

	if (n < 0)
		n = 0;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	/* One write per line: lines from different writers never interleave. */
	do
		w = write(wl.tr_fd, buf, n);
	while (w < 0 && errno == EINTR);
	if (w != n)
		_exit(3);
}

static inline void __attribute__((format(printf, 1, 2))) tr_line(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tr_vline(fmt, ap);
	va_end(ap);
}

static inline void __attribute__((noreturn)) wl_exit_fail(const char *msg)
{
	tr_line("verify FAIL %s%s", wl.is_child ? "child: " : "", msg);
	if (wl.is_child)
		_exit(1); /* the parent notices and finishes the transcript */
	tr_line("done");
	exit(1);
}

/* Fatal error with errno text, e.g. die("open %s", path). */
static inline void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	char msg[WL_LINE_MAX / 2];
	int err = errno;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n >= 0 && n < (int)sizeof(msg))
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(err));
	wl_exit_fail(msg);
}

/* Fatal logical error (no errno), e.g. bail("bad record %u", seq). */
static inline void __attribute__((noreturn, format(printf, 1, 2))) bail(const char *fmt, ...)
{
	char msg[WL_LINE_MAX / 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	wl_exit_fail(msg);
}

/* Record a verification failure; verification continues. */
static inline void __attribute__((format(printf, 2, 3))) check(int ok, const char *fmt, ...)
{
	size_t len = strlen(wl.fail);
	va_list ap;

	if (ok || len >= sizeof(wl.fail) - 8)
		return;
	if (len)
		len += snprintf(wl.fail + len, sizeof(wl.fail) - len, "; ");
	va_start(ap, fmt);
	vsnprintf(wl.fail + len, sizeof(wl.fail) - len, fmt, ap);
	va_end(ap);
}

/* Write the verdict and `done`, then exit. */
static inline void __attribute__((noreturn)) wl_finish(void)
{
	if (wl.fail[0]) {
		tr_line("verify FAIL %s", wl.fail);
		tr_line("done");
		exit(1);
	}
	tr_line("verify ok");
	tr_line("done");
	exit(0);
}

/* Parse `NAME DIR STEPS`; optionally open the transcript and write `start`. */
static inline void wl_parse(int argc, char **argv, const char *name)
{
	const char *ms = getenv("CRTEST_STEP_MS");
	char *end;
	long steps;

	if (argc != 3) {
		fprintf(stderr, "usage: %s DIR STEPS\n", name);
		exit(2);
	}
	steps = strtol(argv[2], &end, 10);
	if (*end || steps < 1 || steps > 1000000) {
		fprintf(stderr, "%s: bad STEPS '%s'\n", name, argv[2]);
		exit(2);
	}
	wl.name = name;
	wl.dir = argv[1];
	wl.steps = (int)steps;
	wl.step_ms = 100;
	if (ms && *ms) {
		long v = strtol(ms, &end, 10);

		if (!*end && v >= 0)
			wl.step_ms = v;
	}
}

static inline const char *dpath(const char *rel);

static inline void wl_open_transcript(void)
{
	wl.tr_fd = open(dpath("transcript"), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (wl.tr_fd < 0) {
		fprintf(stderr, "%s: cannot open transcript in %s: %s\n", wl.name, wl.dir, strerror(errno));
		exit(2);
	}
}

static inline void wl_init(int argc, char **argv, const char *name)
{
	wl_parse(argc, argv, name);
	wl_open_transcript();
	/* A dead peer must give EPIPE and a FAIL line, not a silent death. */
	signal(SIGPIPE, SIG_IGN);
	tr_line("start %s steps=%d", wl.name, wl.steps);
}

/* ---------- paths ---------- */

/* DIR/rel in one of a few rotating static buffers (enough for one call). */
static inline const char *dpath(const char *rel)
{
	static char bufs[4][PATH_MAX];
	static int next;
	char *b = bufs[next++ & 3];

	if (snprintf(b, PATH_MAX, "%s/%s", wl.dir, rel) >= PATH_MAX)
		bail("path too long: %s", rel);
	return b;
}

/* ---------- time ---------- */

/* Sleep ms milliseconds, restarting after signals (EINTR). */
static inline void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static inline void step_sleep(void)
{
	sleep_ms(wl.step_ms);
}

/* ---------- hashing / patterns ---------- */

#define FNV_INIT 0xcbf29ce484222325ULL

static inline uint64_t fnv1a_more(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;

	while (n--) {
		h ^= *c++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static inline uint64_t fnv1a(const void *p, size_t n)
{
	return fnv1a_more(FNV_INIT, p, n);
}

static inline uint64_t fnv1a_u64(uint64_t h, uint64_t v)
{
	return fnv1a_more(h, &v, sizeof(v));
}

/* splitmix64 finalizer: a cheap deterministic pseudo-random function. */
static inline uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Fill buf with the pattern identified by seed (byte-exact, reproducible). */
static inline void fill_pattern(void *buf, size_t n, uint64_t seed)
{
	unsigned char *p = buf;
	size_t i;

	for (i = 0; i < n; i += 8) {
		uint64_t v = mix64(seed ^ (i * 0x100000001b3ULL));
		size_t k = n - i < 8 ? n - i : 8;

		memcpy(p + i, &v, k);
	}
}

/* ---------- I/O ---------- */

/* Write all n bytes (retrying short writes and EINTR); 0 or -1. */
static inline int write_full(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= w;
	}
	return 0;
}

/* Read up to n bytes, stopping early only at EOF; bytes read or -1. */
static inline ssize_t read_full(int fd, void *buf, size_t n)
{
	char *p = buf;
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, p + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += r;
	}
	return got;
}

static inline void xwrite(int fd, const void *buf, size_t n, const char *what)
{
	if (write_full(fd, buf, n))
		die("write %s", what);
}

static inline void xread(int fd, void *buf, size_t n, const char *what)
{
	ssize_t r = read_full(fd, buf, n);

	if (r < 0)
		die("read %s", what);
	if ((size_t)r != n)
		bail("read %s: short read %zd of %zu", what, r, n);
}

/* Create DIR/rel with exactly the given content. */
static inline void write_file(const char *rel, const void *buf, size_t n)
{
	int fd = open(dpath(rel), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		die("create %s", rel);
	xwrite(fd, buf, n, rel);
	close(fd);
}

/* ---------- processes ---------- */

/* fork(); the child is marked so that its failures don't end the transcript. */
static inline pid_t xfork(void)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork");
	if (pid == 0)
		wl.is_child = 1;
	return pid;
}

static inline int xwaitpid(pid_t pid, int flags)
{
	int status;
	pid_t r;

	do
		r = waitpid(pid, &status, flags);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		die("waitpid");
	return status;
}

/* Reap pid and require a clean exit with the given code. */
static inline void reap_expect(pid_t pid, int code, const char *who)
{
	int st = xwaitpid(pid, 0);

	check(WIFEXITED(st) && WEXITSTATUS(st) == code, "%s exit status %#x, expected exit %d", who, st,
	      code);
}

/* ---------- records: framed, checksummed messages for stream channels ---------- */

#define REC_MAX 1024

struct rec_hdr {
	uint32_t magic;
	uint32_t seq;
	uint32_t len; /* payload bytes following the header */
	uint32_t pad;
	uint64_t sum; /* fnv1a of payload */
};

#define REC_MAGIC 0x43525452u /* "CRTR" */

/* Payload length of record seq on channel salt: varied but reproducible. */
static inline uint32_t rec_len(uint32_t seq, uint32_t salt)
{
	return 16 + (uint32_t)(mix64(((uint64_t)salt << 32) | seq) % (REC_MAX - sizeof(struct rec_hdr) - 16));
}

/* Build record seq of channel salt into buf; returns total size. */
static inline size_t rec_build(void *buf, uint32_t seq, uint32_t salt)
{
	struct rec_hdr *h = buf;
	unsigned char *pl = (unsigned char *)(h + 1);

	h->magic = REC_MAGIC;
	h->seq = seq;
	h->len = rec_len(seq, salt);
	h->pad = salt;
	fill_pattern(pl, h->len, ((uint64_t)salt << 40) ^ seq);
	h->sum = fnv1a(pl, h->len);
	return sizeof(*h) + h->len;
}

/* Validate a whole record in buf (n bytes); returns NULL or a reason. */
static inline const char *rec_check(const void *buf, size_t n, uint32_t seq, uint32_t salt)
{
	unsigned char want[REC_MAX];
	size_t wn = rec_build(want, seq, salt);

	if (n < sizeof(struct rec_hdr) || ((const struct rec_hdr *)buf)->magic != REC_MAGIC)
		return "bad header";
	if (((const struct rec_hdr *)buf)->seq != seq)
		return "out of order";
	if (n != wn)
		return "bad length";
	if (memcmp(buf, want, wn))
		return "corrupt payload";
	return NULL;
}

/* Send record seq on a stream fd. */
static inline void rec_send(int fd, uint32_t seq, uint32_t salt, const char *what)
{
	unsigned char buf[REC_MAX];

	xwrite(fd, buf, rec_build(buf, seq, salt), what);
}

/* Expected payload checksum of record seq on channel salt. */
static inline uint64_t rec_sum(uint32_t seq, uint32_t salt)
{
	unsigned char buf[REC_MAX];

	rec_build(buf, seq, salt);
	return ((struct rec_hdr *)buf)->sum;
}

/* Read one whole record from a stream fd into buf (REC_MAX bytes);
 * returns its size, or 0 on a clean EOF before the header. */
static inline size_t rec_read(int fd, void *buf, const char *what)
{
	struct rec_hdr *h = buf;
	ssize_t got = read_full(fd, h, sizeof(*h));

	if (got < 0)
		die("read %s", what);
	if (got == 0)
		return 0;
	if ((size_t)got != sizeof(*h) || h->magic != REC_MAGIC || h->len > REC_MAX - sizeof(*h))
		bail("%s: bad record header", what);
	xread(fd, h + 1, h->len, what);
	return sizeof(*h) + h->len;
}

/* Receive record seq from a stream fd, bail on mismatch; returns payload sum. */
static inline uint64_t rec_recv(int fd, uint32_t seq, uint32_t salt, const char *what)
{
	unsigned char buf[REC_MAX];
	size_t n = rec_read(fd, buf, what);
	const char *err;

	if (n == 0)
		bail("%s: EOF before record %u", what, seq);
	err = rec_check(buf, n, seq, salt);
	if (err)
		bail("%s: record %u: %s (got seq %u)", what, seq, err, ((struct rec_hdr *)buf)->seq);
	return ((struct rec_hdr *)buf)->sum;
}

/* Message channels (datagram, seqpacket): exactly one record per message. */
static inline void rec_sendto(int fd, uint32_t seq, uint32_t salt, const void *to, socklen_t tolen,
			      const char *what)
{
	unsigned char buf[REC_MAX];
	size_t n = rec_build(buf, seq, salt);
	ssize_t r;

	do
		r = sendto(fd, buf, n, 0, (const struct sockaddr *)to, tolen);
	while (r < 0 && errno == EINTR);
	if (r != (ssize_t)n)
		die("send %s", what);
}

static inline uint64_t rec_recvmsg(int fd, uint32_t seq, uint32_t salt, const char *what)
{
	unsigned char buf[REC_MAX + 64];
	const char *err;
	ssize_t r;

	do
		r = recv(fd, buf, sizeof(buf), 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		die("recv %s", what);
	err = rec_check(buf, r, seq, salt);
	if (err)
		bail("%s: message %u: %s", what, seq, err);
	return ((struct rec_hdr *)buf)->sum;
}

/* ---------- sockets ---------- */

/* AF_UNIX address of DIR/rel; returns its length. */
static inline socklen_t unix_addr(struct sockaddr_un *a, const char *rel)
{
	const char *p = dpath(rel);

	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (strlen(p) >= sizeof(a->sun_path))
		bail("socket path too long: %s", p);
	strcpy(a->sun_path, p);
	return offsetof(struct sockaddr_un, sun_path) + strlen(p) + 1;
}

static inline int xsocket(int domain, int type)
{
	int fd = socket(domain, type | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket");
	return fd;
}

/* A bound unix socket at DIR/rel (listening if backlog > 0). */
static inline int unix_bound(int type, const char *rel, int backlog)
{
	struct sockaddr_un a;
	socklen_t l = unix_addr(&a, rel);
	int fd = xsocket(AF_UNIX, type);

	if (bind(fd, (struct sockaddr *)&a, l))
		die("bind %s", rel);
	if (backlog && listen(fd, backlog))
		die("listen %s", rel);
	return fd;
}

static inline int unix_connect(int type, const char *rel)
{
	struct sockaddr_un a;
	socklen_t l = unix_addr(&a, rel);
	int fd = xsocket(AF_UNIX, type);

	if (connect(fd, (struct sockaddr *)&a, l))
		die("connect %s", rel);
	return fd;
}

/* Does fd's own (peer=0) or peer's (peer=1) address equal DIR/rel? */
static inline int unix_name_is(int fd, int peer, const char *rel)
{
	struct sockaddr_un a, want;
	socklen_t l = sizeof(a), wl_ = unix_addr(&want, rel);

	memset(&a, 0, sizeof(a));
	if ((peer ? getpeername : getsockname)(fd, (struct sockaddr *)&a, &l))
		return 0;
	return l == wl_ && !memcmp(&a, &want, l);
}

static inline int sockopt_int(int fd, int level, int opt)
{
	int v = -1;
	socklen_t l = sizeof(v);

	if (getsockopt(fd, level, opt, &v, &l))
		return -1;
	return v;
}

static inline int xaccept(int lfd)
{
	int fd;

	do
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		die("accept");
	return fd;
}

/* ---------- misc ---------- */

/* Read a small text file (e.g. /proc/...) into buf, NUL-terminated; length or -1. */
static inline ssize_t read_text(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read_full(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return n;
}

/* Find "key" at line start in /proc/self/fdinfo/FD and return the rest of that line. */
static inline int fdinfo_field(int fd, const char *key, char *out, size_t outsz)
{
	char path[64], buf[8192], *p;
	size_t kl = strlen(key);

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (read_text(path, buf, sizeof(buf)) < 0)
		return -1;
	for (p = buf; *p;) {
		char *e = strchr(p, '\n');

		if (!strncmp(p, key, kl)) {
			size_t l = e ? (size_t)(e - p) - kl : strlen(p + kl);

			if (l >= outsz)
				l = outsz - 1;
			memcpy(out, p + kl, l);
			out[l] = 0;
			return 0;
		}
		if (!e)
			break;
		p = e + 1;
	}
	return -1;
}

/* Entries of /proc/locks for fd's file of the given kind (FLOCK, POSIX,
 * OFDLCK) and, unless rw is NULL, access (READ, WRITE). */
static inline int proc_locks(int fd, const char *kind, const char *rw)
{
	static char buf[65536];
	struct stat st;
	char *line;
	int count = 0;

	if (fstat(fd, &st) || read_text("/proc/locks", buf, sizeof(buf)) < 0)
		die("fstat or /proc/locks");
	for (line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		char k[16], a[16];
		unsigned maj, min;
		unsigned long ino;

		if (sscanf(line, "%*d: %15s %*s %15s %*d %x:%x:%lu", k, a, &maj, &min, &ino) == 5 && !strcmp(k, kind) &&
		    (!rw || !strcmp(a, rw)) && ino == st.st_ino && maj == major(st.st_dev) && min == minor(st.st_dev))
			count++;
	}
	return count;
}

/* ---------- a network namespace of its own ---------- */

/*
 * Network workloads run like a container: in a network namespace of their
 * own, which CRIU dumps with the tree. Its TCP lock is then the namespace's
 * (CRIU's network_lock_internal, criu/net.c), which CRIU re-creates itself in
 * the restored namespace (restore_root_task, criu/cr-restore.c, under
 * `--empty-ns net`), whatever guest restores it. See workloads.yaml `tcp`.
 */
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>

/* Brings up lo in the current network namespace: a new namespace has lo
 * down and no 127.0.0.1 until it is up. Returns 0, or -1 with errno set. */
static inline int lo_up(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = -1;

	if (fd < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (!ioctl(fd, SIOCGIFFLAGS, &ifr)) {
		ifr.ifr_flags |= IFF_UP;
		rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
	return rc;
}

/* Moves the workload into a new network namespace with lo up (needs root). */
static inline void wl_own_netns(void)
{
	if (unshare(CLONE_NEWNET) || lo_up())
		die("network namespace of its own (unshare(CLONE_NEWNET) needs root)");
}

/*
 * The workload's program doubles as CRIU's action script (`--action-script
 * PROGRAM` in restore_opts): under `--empty-ns net` CRIU restores an empty
 * network namespace and leaves its set-up to whoever runs it, as runc leaves
 * it to the container's hooks. At `setup-namespaces` (the restored root task
 * is in its new namespace, no socket exists yet) this brings up its lo, the
 * only interface the workload had. Returns at once when not run by CRIU.
 */
static inline void wl_netns_action(void)
{
	const char *action = getenv("CRTOOLS_SCRIPT_ACTION");
	const char *pid = getenv("CRTOOLS_INIT_PID");
	char path[64];
	int fd;

	if (!action)
		return;
	if (strcmp(action, "setup-namespaces"))
		exit(0);
	snprintf(path, sizeof(path), "/proc/%s/ns/net", pid ? pid : "?");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) || lo_up()) {
		fprintf(stderr, "setup-namespaces: lo up in %s: %s\n", path, strerror(errno));
		exit(1);
	}
	exit(0);
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif /* CRTEST_COMMON_H */
