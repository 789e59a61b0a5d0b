/*
 * unix_dgram: AF_UNIX datagram sockets with unread datagrams queued at
 * every step boundary; message boundaries and order must survive.
 *
 *  srv   bound to DIR/dg.srv, unconnected; receives from `cli` (connected to
 *        srv) and from `anon` (unbound, uses sendto), interleaved.
 *  cli   bound to DIR/dg.cli; receives srv's sendto() replies.
 *  pair  a datagram socketpair, one direction.
 */
#include "common.h"

#define LEAD 3

enum { SALT_CLI = 1, SALT_ANON, SALT_REPLY, SALT_PAIR };

struct socks {
	int srv, cli, anon, dp[2];
	struct sockaddr_un srv_a, cli_a;
	socklen_t srv_l, cli_l;
};

static void send_round(struct socks *s, uint32_t seq)
{
	rec_sendto(s->cli, seq, SALT_CLI, NULL, 0, "cli->srv");
	rec_sendto(s->anon, seq, SALT_ANON, &s->srv_a, s->srv_l, "anon->srv");
	rec_sendto(s->srv, seq, SALT_REPLY, &s->cli_a, s->cli_l, "srv->cli");
	rec_sendto(s->dp[0], seq, SALT_PAIR, NULL, 0, "pair");
}

static uint64_t recv_round(struct socks *s, uint32_t seq)
{
	uint64_t h = FNV_INIT;

	/* srv's queue holds cli's and anon's datagrams in send order. */
	h = fnv1a_u64(h, rec_recvmsg(s->srv, seq, SALT_CLI, "srv from cli"));
	h = fnv1a_u64(h, rec_recvmsg(s->srv, seq, SALT_ANON, "srv from anon"));
	h = fnv1a_u64(h, rec_recvmsg(s->cli, seq, SALT_REPLY, "cli"));
	h = fnv1a_u64(h, rec_recvmsg(s->dp[1], seq, SALT_PAIR, "pair"));
	return h;
}

/* Is a datagram waiting on fd? (consumes nothing) */
static int queued(int fd)
{
	char b;

	return recv(fd, &b, 1, MSG_DONTWAIT | MSG_PEEK) >= 0;
}

int main(int argc, char **argv)
{
	struct socks s;
	int n, k;

	wl_init(argc, argv, "unix_dgram");
	s.srv = unix_bound(SOCK_DGRAM, "dg.srv", 0);
	s.cli = unix_bound(SOCK_DGRAM, "dg.cli", 0);
	s.srv_l = unix_addr(&s.srv_a, "dg.srv");
	s.cli_l = unix_addr(&s.cli_a, "dg.cli");
	if (connect(s.cli, (struct sockaddr *)&s.srv_a, s.srv_l))
		die("connect");
	s.anon = xsocket(AF_UNIX, SOCK_DGRAM);
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, s.dp))
		die("socketpair");

	for (k = 1; k <= LEAD; k++)
		send_round(&s, k);
	for (n = 1; n <= wl.steps; n++) {
		uint64_t h = recv_round(&s, n);

		send_round(&s, n + LEAD);
		tr_line("step %d msgs=%016llx", n, (unsigned long long)h);
		step_sleep();
	}

	for (k = 1; k <= LEAD; k++)
		recv_round(&s, wl.steps + k);
	check(!queued(s.srv) && !queued(s.cli) && !queued(s.dp[1]), "extra datagrams queued");
	check(unix_name_is(s.srv, 0, "dg.srv"), "srv lost its address");
	check(unix_name_is(s.cli, 0, "dg.cli"), "cli lost its address");
	check(unix_name_is(s.cli, 1, "dg.srv"), "cli no longer connected to srv");
	/* srv must still be reachable by name after a restore. */
	{
		int fresh = xsocket(AF_UNIX, SOCK_DGRAM);

		rec_sendto(fresh, 1, 9, &s.srv_a, s.srv_l, "fresh->srv");
		rec_recvmsg(s.srv, 1, 9, "srv from fresh");
		close(fresh);
	}
	wl_finish();
}
