/*
 * udp: two UDP sockets on 127.0.0.1 exchanging sequenced datagrams.
 * `a` is connected to `b`; `b` is unconnected and answers to the sender's
 * address.
 *
 * CRIU drops UDP receive queues on dump (it warns "Read queue is dropped"),
 * so nothing is left queued between steps and every exchange retransmits
 * on a timeout like a real UDP protocol would; duplicates are ignored. The
 * transcript only depends on the sequence numbers, never on retries. What
 * must survive: bindings (ports), the connected peer and socket options.
 *
 * Like tcp it runs in a network namespace of its own (see wl_own_netns in
 * common.h), so its ports cannot clash with anything on the restoring guest.
 */
#include "common.h"

#include <netinet/in.h>
#include <poll.h>

#define SALT_DATA 1
#define SALT_ACK 2
#define RETRY_MS 200
#define MAX_TRIES 100

static const socklen_t alen = sizeof(struct sockaddr_in);

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
	return a.sin_port == b.sin_port && a.sin_addr.s_addr == b.sin_addr.s_addr;
}

static int udp_socket(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = xsocket(AF_INET, SOCK_DGRAM);

	if (bind(fd, (struct sockaddr *)&a, alen))
		die("bind 127.0.0.1");
	return fd;
}

/* Wait up to RETRY_MS for datagram `want` on fd, skipping stale duplicates.
 * Returns 1 with the payload sum and sender, or 0 on timeout. */
static int recv_seq(int fd, uint32_t want, uint32_t salt, uint64_t *sum, struct sockaddr_in *from)
{
	unsigned char buf[REC_MAX + 64];
	struct pollfd p = { fd, POLLIN, 0 };

	for (;;) {
		socklen_t fl = sizeof(*from);
		const char *err;
		ssize_t r;
		int pr = poll(&p, 1, RETRY_MS);

		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			die("poll");
		if (pr == 0)
			return 0;
		r = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)from, &fl);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			die("recvfrom");
		if (r >= (ssize_t)sizeof(struct rec_hdr) && ((struct rec_hdr *)buf)->seq < want)
			continue; /* a retransmitted copy of an earlier datagram */
		err = rec_check(buf, r, want, salt);
		if (err)
			bail("datagram %u: %s", want, err);
		*sum = ((struct rec_hdr *)buf)->sum;
		return 1;
	}
}

/* One reliable request/ack exchange; returns the data datagram's sum. */
static uint64_t exchange(int a, int b, uint32_t seq, struct sockaddr_in a_addr)
{
	struct sockaddr_in from;
	uint64_t sum, ack;
	int tries;

	for (tries = 0; tries < MAX_TRIES; tries++) {
		rec_sendto(a, seq, SALT_DATA, NULL, 0, "a->b");
		if (!recv_seq(b, seq, SALT_DATA, &sum, &from))
			continue;
		if (!same_addr(from, a_addr))
			bail("datagram %u came from an unexpected address", seq);
		rec_sendto(b, seq, SALT_ACK, &from, sizeof(from), "b->a");
		if (recv_seq(a, seq, SALT_ACK, &ack, &from))
			return sum;
	}
	bail("datagram %u: no answer after %d tries", seq, MAX_TRIES);
}

int main(int argc, char **argv)
{
	struct sockaddr_in a_addr, b_addr, from;
	uint64_t sum;
	int a, b, n;

	wl_netns_action();
	wl_init(argc, argv, "udp");
	wl_own_netns();
	a = udp_socket();
	b = udp_socket();
	a_addr = name_of(a, 0);
	b_addr = name_of(b, 0);
	if (connect(a, (struct sockaddr *)&b_addr, alen))
		die("connect");
	if (setsockopt(a, SOL_SOCKET, SO_PRIORITY, &(int){ 5 }, sizeof(int)) ||
	    setsockopt(b, SOL_SOCKET, SO_BROADCAST, &(int){ 1 }, sizeof(int)))
		die("setsockopt");

	for (n = 1; n <= wl.steps; n++) {
		sum = exchange(a, b, n, a_addr);
		tr_line("step %d seq=%d len=%u sum=%016llx", n, n, rec_len(n, SALT_DATA), (unsigned long long)sum);
		step_sleep();
	}

	check(same_addr(name_of(a, 0), a_addr) && same_addr(name_of(b, 0), b_addr), "bound addresses changed");
	check(same_addr(name_of(a, 1), b_addr), "a is no longer connected to b");
	check(sockopt_int(a, SOL_SOCKET, SO_PRIORITY) == 5, "SO_PRIORITY lost");
	check(sockopt_int(b, SOL_SOCKET, SO_BROADCAST) == 1, "SO_BROADCAST lost");
	/* A connected socket only accepts its peer: a stranger reaches b, not a. */
	{
		int c = udp_socket();

		rec_sendto(c, 1, 7, &a_addr, alen, "stranger->a");
		rec_sendto(c, 1, 8, &b_addr, alen, "stranger->b");
		check(recv_seq(b, 1, 8, &sum, &from), "unconnected b did not receive a stranger's datagram");
		check(!recv_seq(a, 1, 7, &sum, &from), "connected a accepted a stranger's datagram");
		close(c);
	}
	wl_finish();
}
