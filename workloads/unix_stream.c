/*
 * unix_stream: AF_UNIX stream sockets with unread data queued in both
 * directions at every step boundary.
 *
 *  - a listening socket bound to DIR/stream.sock (with SO_PASSCRED), one
 *    connected client and the accepted server end;
 *  - a socketpair;
 *  - a second socketpair whose writer sent one long message and shut down
 *    its sending side; the reader consumes it slowly and must see EOF last.
 *
 * Records run LEAD ahead on each of the four directions.
 */
#include "common.h"

#define LEAD 3
#define HALF_LEN 3000
#define HALF_CHUNK 50
#define HALF_SEED 0x4A1F

enum { CS, SC, P01, P10, NCHAN };

struct chan {
	int wfd, rfd;
	const char *name;
};

int main(int argc, char **argv)
{
	unsigned char half[HALF_LEN], got[HALF_LEN];
	struct chan ch[NCHAN];
	int lst, cli, srv, sp[2], hp[2], n, c, k, half_off = 0;
	ssize_t r;

	wl_init(argc, argv, "unix_stream");
	lst = unix_bound(SOCK_STREAM, "stream.sock", 4);
	cli = unix_connect(SOCK_STREAM, "stream.sock");
	srv = xaccept(lst);
	/* On the listener only: queued data sent to a SO_PASSCRED socket carries
	 * SCM_CREDENTIALS, which criu refuses to dump ("Control messages in
	 * queue, not supported"). */
	if (setsockopt(lst, SOL_SOCKET, SO_PASSCRED, &(int){ 1 }, sizeof(int)))
		die("SO_PASSCRED");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, hp))
		die("socketpair");
	fill_pattern(half, HALF_LEN, HALF_SEED);
	xwrite(hp[1], half, HALF_LEN, "half-closed pair");
	if (shutdown(hp[1], SHUT_WR))
		die("shutdown");

	ch[CS] = (struct chan){ cli, srv, "client->server" };
	ch[SC] = (struct chan){ srv, cli, "server->client" };
	ch[P01] = (struct chan){ sp[0], sp[1], "pair 0->1" };
	ch[P10] = (struct chan){ sp[1], sp[0], "pair 1->0" };
	for (c = 0; c < NCHAN; c++)
		for (k = 1; k <= LEAD; k++)
			rec_send(ch[c].wfd, k, c + 1, ch[c].name);

	for (n = 1; n <= wl.steps; n++) {
		uint64_t h = FNV_INIT;

		for (c = 0; c < NCHAN; c++) {
			h = fnv1a_u64(h, rec_recv(ch[c].rfd, n, c + 1, ch[c].name));
			rec_send(ch[c].wfd, n + LEAD, c + 1, ch[c].name);
		}
		if (half_off + HALF_CHUNK <= HALF_LEN) {
			xread(hp[0], got + half_off, HALF_CHUNK, "half-closed pair");
			half_off += HALF_CHUNK;
		}
		tr_line("step %d records=%016llx half=%d", n, (unsigned long long)h, half_off);
		step_sleep();
	}

	/* The LEAD records still queued must be intact, then EOF. */
	for (c = 0; c < NCHAN; c++) {
		unsigned char buf[REC_MAX];

		if (shutdown(ch[c].wfd, SHUT_WR) && errno != ENOTCONN)
			die("shutdown");
		for (k = 1; k <= LEAD; k++)
			rec_recv(ch[c].rfd, wl.steps + k, c + 1, ch[c].name);
		check(rec_read(ch[c].rfd, buf, ch[c].name) == 0, "%s: data after the last record", ch[c].name);
	}
	r = read_full(hp[0], got + half_off, HALF_LEN - half_off);
	check(r == HALF_LEN - half_off && !memcmp(got, half, HALF_LEN), "half-closed stream data differs");
	check(read(hp[0], got, 1) == 0, "half-closed stream: no EOF");

	check(unix_name_is(lst, 0, "stream.sock"), "listener lost its address");
	/* Not checked: getpeername() of the client. CRIU recreates connected
	 * pairs without the accepted end's name (checkpoint-restore/criu#56). */
	check(sockopt_int(lst, SOL_SOCKET, SO_PASSCRED) == 1, "SO_PASSCRED lost");
	check(sockopt_int(lst, SOL_SOCKET, SO_ACCEPTCONN) == 1, "listener no longer listening");
	/* The restored listener must still accept new connections. */
	{
		int c2 = unix_connect(SOCK_STREAM, "stream.sock"), s2 = xaccept(lst);

		rec_send(c2, 1, 9, "new connection");
		rec_recv(s2, 1, 9, "new connection");
		close(c2);
		close(s2);
	}
	wl_finish();
}
