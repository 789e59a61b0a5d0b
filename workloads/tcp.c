/*
 * tcp: TCP over 127.0.0.1 with a listening socket and established
 * connections carrying unread data (needs criu --tcp-established).
 *
 *  - conn 1: records LEAD ahead in both directions (receive queues);
 *  - conn 2: the client filled the window at start with non-blocking writes
 *    and the server reads nothing until the end, so data sits in the
 *    server's receive queue *and* in the client's send queue.
 *
 * Ports are chosen by the kernel and never printed; verify only checks that
 * addresses are consistent with each other and with what was seen at start.
 *
 * It runs in a network namespace of its own, like a container (see
 * wl_own_netns in common.h): CRIU's lock of the connections then lives in
 * that namespace and comes back with it on whichever guest restores it.
 */
#include "common.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>

#define LEAD 3
#define BULK_MAX (8 << 20)
#define BULK_SEED 0xB01C

static socklen_t alen = sizeof(struct sockaddr_in);

static struct sockaddr_in name_of(int fd, int peer)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);

	memset(&a, 0, sizeof(a));
	if ((peer ? getpeername : getsockname)(fd, (struct sockaddr *)&a, &l))
		die("get%sname", peer ? "peer" : "sock");
	return a;
}

static int same_addr(struct sockaddr_in a, struct sockaddr_in b)
{
	return a.sin_family == b.sin_family && a.sin_port == b.sin_port && a.sin_addr.s_addr == b.sin_addr.s_addr;
}

static int tcp_connect(struct sockaddr_in *to)
{
	int fd = xsocket(AF_INET, SOCK_STREAM);

	while (connect(fd, (struct sockaddr *)to, alen))
		if (errno != EINTR)
			die("connect");
	return fd;
}

static void set_int(int fd, int level, int opt, int v, const char *what)
{
	if (setsockopt(fd, level, opt, &v, sizeof(v)))
		die("setsockopt %s", what);
}

/* Fill the connection until the kernel refuses more; returns bytes queued. */
static size_t fill_window(int fd, unsigned char *bulk)
{
	size_t total = 0;

	if (fcntl(fd, F_SETFL, O_NONBLOCK))
		die("F_SETFL");
	while (total < BULK_MAX) {
		ssize_t w = write(fd, bulk + total, 4096);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			/* Let loopback settle, then try once more to really fill it. */
			struct pollfd p = { fd, POLLOUT, 0 };

			if (poll(&p, 1, 50) <= 0)
				break;
			continue;
		}
		if (w <= 0)
			die("bulk write");
		total += w;
	}
	if (fcntl(fd, F_SETFL, 0))
		die("F_SETFL");
	return total;
}

int main(int argc, char **argv)
{
	struct sockaddr_in lst_a, cli_local, srv_peer;
	unsigned char *bulk, *got;
	int lst, cli, srv, bcli, bsrv, n, k;
	size_t bulk_len;

	wl_netns_action();
	wl_init(argc, argv, "tcp");
	wl_own_netns();
	lst = xsocket(AF_INET, SOCK_STREAM);
	set_int(lst, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
	memset(&lst_a, 0, sizeof(lst_a));
	lst_a.sin_family = AF_INET;
	lst_a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lst, (struct sockaddr *)&lst_a, alen) || listen(lst, 8))
		die("bind/listen 127.0.0.1");
	lst_a = name_of(lst, 0);

	cli = tcp_connect(&lst_a);
	srv = xaccept(lst);
	set_int(cli, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
	set_int(srv, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
	set_int(srv, IPPROTO_TCP, TCP_KEEPIDLE, 777, "TCP_KEEPIDLE");
	cli_local = name_of(cli, 0);
	srv_peer = name_of(srv, 1);
	if (!same_addr(cli_local, srv_peer))
		bail("accepted connection is not ours");

	bcli = tcp_connect(&lst_a);
	bsrv = xaccept(lst);
	bulk = malloc(BULK_MAX);
	got = malloc(BULK_MAX);
	if (!bulk || !got)
		die("malloc");
	fill_pattern(bulk, BULK_MAX, BULK_SEED);
	bulk_len = fill_window(bcli, bulk);

	for (k = 1; k <= LEAD; k++) {
		rec_send(cli, k, 1, "client->server");
		rec_send(srv, k, 2, "server->client");
	}
	for (n = 1; n <= wl.steps; n++) {
		uint64_t h = FNV_INIT;

		h = fnv1a_u64(h, rec_recv(srv, n, 1, "client->server"));
		h = fnv1a_u64(h, rec_recv(cli, n, 2, "server->client"));
		rec_send(cli, n + LEAD, 1, "client->server");
		rec_send(srv, n + LEAD, 2, "server->client");
		tr_line("step %d records=%016llx", n, (unsigned long long)h);
		step_sleep();
	}

	for (k = 1; k <= LEAD; k++) {
		rec_recv(srv, wl.steps + k, 1, "client->server");
		rec_recv(cli, wl.steps + k, 2, "server->client");
	}
	if (shutdown(bcli, SHUT_WR))
		die("shutdown");
	check(read_full(bsrv, got, BULK_MAX) == (ssize_t)bulk_len && !memcmp(got, bulk, bulk_len),
	      "bulk stream (%zu bytes queued at start) differs", bulk_len);

	check(same_addr(name_of(lst, 0), lst_a), "listener address changed");
	check(same_addr(name_of(cli, 1), lst_a), "client's peer address changed");
	check(same_addr(name_of(srv, 0), lst_a), "server end's local address changed");
	check(same_addr(name_of(cli, 0), cli_local) && same_addr(name_of(srv, 1), cli_local),
	      "client address changed");
	check(sockopt_int(cli, IPPROTO_TCP, TCP_NODELAY) == 1, "TCP_NODELAY lost");
	check(sockopt_int(srv, SOL_SOCKET, SO_KEEPALIVE) == 1, "SO_KEEPALIVE lost");
	check(sockopt_int(srv, IPPROTO_TCP, TCP_KEEPIDLE) == 777, "TCP_KEEPIDLE lost");
	check(sockopt_int(lst, SOL_SOCKET, SO_REUSEADDR) == 1, "SO_REUSEADDR lost");
	check(sockopt_int(lst, SOL_SOCKET, SO_ACCEPTCONN) == 1, "listener no longer listening");
	{
		int c2 = tcp_connect(&lst_a), s2 = xaccept(lst);

		rec_send(c2, 1, 9, "new connection");
		rec_recv(s2, 1, 9, "new connection");
		close(c2);
		close(s2);
	}
	wl_finish();
}
