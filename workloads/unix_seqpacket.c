/*
 * unix_seqpacket: AF_UNIX SOCK_SEQPACKET sockets (a bound listener with an
 * accepted connection, and a socketpair) with unread messages queued in
 * both directions at every step boundary. Message boundaries, order and
 * end-of-stream after shutdown must survive.
 */
#include "common.h"

#define LEAD 3

enum { CS, SC, P01, P10, NCHAN };

struct chan {
	int wfd, rfd;
	const char *name;
};

int main(int argc, char **argv)
{
	struct chan ch[NCHAN];
	int lst, cli, srv, sp[2], n, c, k;

	wl_init(argc, argv, "unix_seqpacket");
	lst = unix_bound(SOCK_SEQPACKET, "seq.sock", 4);
	cli = unix_connect(SOCK_SEQPACKET, "seq.sock");
	srv = xaccept(lst);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp))
		die("socketpair");

	ch[CS] = (struct chan){ cli, srv, "client->server" };
	ch[SC] = (struct chan){ srv, cli, "server->client" };
	ch[P01] = (struct chan){ sp[0], sp[1], "pair 0->1" };
	ch[P10] = (struct chan){ sp[1], sp[0], "pair 1->0" };
	for (c = 0; c < NCHAN; c++)
		for (k = 1; k <= LEAD; k++)
			rec_sendto(ch[c].wfd, k, c + 1, NULL, 0, ch[c].name);

	for (n = 1; n <= wl.steps; n++) {
		uint64_t h = FNV_INIT;

		for (c = 0; c < NCHAN; c++) {
			h = fnv1a_u64(h, rec_recvmsg(ch[c].rfd, n, c + 1, ch[c].name));
			rec_sendto(ch[c].wfd, n + LEAD, c + 1, NULL, 0, ch[c].name);
		}
		tr_line("step %d msgs=%016llx", n, (unsigned long long)h);
		step_sleep();
	}

	for (c = 0; c < NCHAN; c++) {
		char b;

		if (shutdown(ch[c].wfd, SHUT_WR))
			die("shutdown");
		for (k = 1; k <= LEAD; k++)
			rec_recvmsg(ch[c].rfd, wl.steps + k, c + 1, ch[c].name);
		check(recv(ch[c].rfd, &b, 1, MSG_DONTWAIT) == 0, "%s: no end-of-stream after the last message",
		      ch[c].name);
	}
	check(unix_name_is(lst, 0, "seq.sock"), "listener lost its address");
	/* Not checked: getpeername() of the client. CRIU recreates connected
	 * pairs without the accepted end's name (checkpoint-restore/criu#56). */
	check(sockopt_int(lst, SOL_SOCKET, SO_ACCEPTCONN) == 1, "listener no longer listening");
	check(sockopt_int(cli, SOL_SOCKET, SO_TYPE) == SOCK_SEQPACKET, "socket type changed");
	{
		int c2 = unix_connect(SOCK_SEQPACKET, "seq.sock"), s2 = xaccept(lst);

		rec_sendto(c2, 1, 9, NULL, 0, "new connection");
		rec_recvmsg(s2, 1, 9, "new connection");
		close(c2);
		close(s2);
	}
	wl_finish();
}
