/*
 * pipe: parent -> child record stream with data always in flight.
 *
 * Three pipes: `rec` carries checksummed records (the parent stays LEAD
 * records ahead, so the pipe buffer is never empty at a dump), `tok` tells
 * the child which record to consume next, `rep` carries the child's reports
 * back (one report is left unread across every step boundary). The record
 * pipe is resized with F_SETPIPE_SZ, which must survive too.
 */
#include "common.h"

#define LEAD 6
#define SALT 0x9191
#define PIPE_SZ (128 * 1024)

struct report {
	uint32_t seq; /* 0 in the final report */
	uint32_t len; /* record payload length, or records drained at the end */
	uint64_t sum; /* record payload checksum */
	uint64_t digest; /* running digest over all checksums so far */
	uint32_t pipe_sz_ok;
	uint32_t pad;
};

static void child(int rec, int tok, int rep)
{
	struct report r = { 0 };
	uint64_t digest = FNV_INIT;
	uint32_t t, last = 0;

	for (;;) {
		xread(tok, &t, sizeof(t), "token");
		if (t == 0)
			break;
		if (t != last + 1)
			bail("token %u after %u", t, last);
		r.seq = t;
		r.len = rec_len(t, SALT);
		r.sum = rec_recv(rec, t, SALT, "record pipe");
		r.digest = digest = fnv1a_u64(digest, r.sum);
		xwrite(rep, &r, sizeof(r), "report");
		last = t;
	}

	/* Stop: drain what the parent wrote ahead, until it closes the pipe. */
	memset(&r, 0, sizeof(r));
	for (;;) {
		unsigned char buf[REC_MAX];
		size_t n = rec_read(rec, buf, "record pipe");
		const char *err;

		if (n == 0)
			break;
		err = rec_check(buf, n, last + 1, SALT);
		if (err)
			bail("drained record %u: %s", last + 1, err);
		digest = fnv1a_u64(digest, ((struct rec_hdr *)buf)->sum);
		last++;
		r.len++;
	}
	r.digest = digest;
	r.sum = last;
	r.pipe_sz_ok = fcntl(rec, F_GETPIPE_SZ) == PIPE_SZ;
	xwrite(rep, &r, sizeof(r), "final report");
	_exit(0);
}

static void xpipe(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC))
		die("pipe");
}

int main(int argc, char **argv)
{
	int rec[2], tok[2], rep[2];
	uint64_t digest = FNV_INIT;
	struct report r;
	uint32_t t;
	pid_t pid;
	int n;

	wl_init(argc, argv, "pipe");
	xpipe(rec);
	xpipe(tok);
	xpipe(rep);
	if (fcntl(rec[1], F_SETPIPE_SZ, PIPE_SZ) != PIPE_SZ)
		die("F_SETPIPE_SZ");

	pid = xfork();
	if (pid == 0) {
		close(rec[1]);
		close(tok[1]);
		close(rep[0]);
		child(rec[0], tok[0], rep[1]);
	}
	close(rec[0]);
	close(tok[0]);
	close(rep[1]);
	/* The token pipe never fills up; non-blocking mode is state to verify. */
	if (fcntl(tok[1], F_SETFL, O_NONBLOCK))
		die("F_SETFL");

	for (t = 1; t <= LEAD; t++)
		rec_send(rec[1], t, SALT, "record pipe");
	t = 1;
	xwrite(tok[1], &t, sizeof(t), "token");

	for (n = 1; n <= wl.steps; n++) {
		xread(rep[0], &r, sizeof(r), "report");
		digest = fnv1a_u64(digest, rec_sum(n, SALT));
		if (r.seq != (uint32_t)n || r.len != rec_len(n, SALT) || r.sum != rec_sum(n, SALT) ||
		    r.digest != digest)
			bail("bad report for step %d (seq %u len %u)", n, r.seq, r.len);
		rec_send(rec[1], n + LEAD, SALT, "record pipe");
		t = n + 1;
		xwrite(tok[1], &t, sizeof(t), "token");
		tr_line("step %d seq=%u len=%u sum=%016llx", n, r.seq, r.len, (unsigned long long)r.sum);
		step_sleep();
	}

	/* The child consumed record steps+1 for the last token; collect it too. */
	xread(rep[0], &r, sizeof(r), "report");
	digest = fnv1a_u64(digest, rec_sum(wl.steps + 1, SALT));
	check(r.seq == (uint32_t)wl.steps + 1 && r.digest == digest, "bad report for record %u", r.seq);
	t = 0;
	xwrite(tok[1], &t, sizeof(t), "token");
	close(rec[1]);
	xread(rep[0], &r, sizeof(r), "final report");

	for (t = wl.steps + 2; t <= (uint32_t)wl.steps + LEAD; t++)
		digest = fnv1a_u64(digest, rec_sum(t, SALT));
	check(r.len == LEAD - 1, "child drained %u records, expected %d", r.len, LEAD - 1);
	check(r.sum == (uint64_t)wl.steps + LEAD, "last record %llu", (unsigned long long)r.sum);
	check(r.digest == digest, "stream digest differs");
	check(r.pipe_sz_ok, "pipe size lost (child side)");
	check((fcntl(tok[1], F_GETFL) & O_NONBLOCK) != 0, "O_NONBLOCK lost on token pipe");
	check((fcntl(rep[0], F_GETFD) & FD_CLOEXEC) != 0, "FD_CLOEXEC lost on report pipe");
	reap_expect(pid, 0, "child");
	wl_finish();
}
