/*
 * pty: a pseudo-terminal pair (not our controlling terminal) with custom
 * termios and window size, carrying records in both directions with data
 * left queued in the terminal buffers at every step boundary.
 *
 * The slave is in raw mode so no byte is translated or echoed; VMIN/VTIME
 * and a few flags are set to distinctive values that must survive. The pts
 * index is chosen by the kernel and never printed.
 */
#include "common.h"

#include <sys/ioctl.h>
#include <termios.h>

#define LEAD 2
#define REC_BYTES 48

/* Small fixed-size records: tty buffers are small and raw mode is exact. */
static void rec48(unsigned char *buf, uint32_t seq, uint32_t salt)
{
	memcpy(buf, &seq, 4);
	fill_pattern(buf + 4, REC_BYTES - 4, (uint64_t)salt << 32 | seq);
}

static void send48(int fd, uint32_t seq, uint32_t salt, const char *what)
{
	unsigned char b[REC_BYTES];

	rec48(b, seq, salt);
	xwrite(fd, b, REC_BYTES, what);
}

static uint64_t recv48(int fd, uint32_t seq, uint32_t salt, const char *what)
{
	unsigned char b[REC_BYTES], want[REC_BYTES];

	xread(fd, b, REC_BYTES, what);
	rec48(want, seq, salt);
	if (memcmp(b, want, REC_BYTES))
		bail("%s: record %u corrupt", what, seq);
	return fnv1a(b, REC_BYTES);
}

static void want_termios(struct termios *t)
{
	memset(t, 0, sizeof(*t));
	cfmakeraw(t);
	t->c_cflag |= CLOCAL | CREAD;
	t->c_cc[VMIN] = 1;
	t->c_cc[VTIME] = 7;
	t->c_cc[VINTR] = 0x0b;
	cfsetispeed(t, B38400);
	cfsetospeed(t, B38400);
}

static int termios_ok(int fd)
{
	struct termios t, w;

	want_termios(&w);
	if (tcgetattr(fd, &t))
		return 0;
	return t.c_iflag == w.c_iflag && t.c_oflag == w.c_oflag && (t.c_cflag & ~CBAUD) == (w.c_cflag & ~CBAUD) &&
	       t.c_lflag == w.c_lflag && cfgetospeed(&t) == B38400 && t.c_cc[VMIN] == 1 && t.c_cc[VTIME] == 7 &&
	       t.c_cc[VINTR] == 0x0b;
}

int main(int argc, char **argv)
{
	struct winsize ws = { .ws_row = 33, .ws_col = 101 }, got_ws;
	struct termios t;
	int master, slave, n, k, lock = 1;
	char *name;

	wl_init(argc, argv, "pty");
	master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0 || grantpt(master) || unlockpt(master) || !(name = ptsname(master)))
		die("posix_openpt");
	slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		die("open pts");
	want_termios(&t);
	if (tcsetattr(slave, TCSANOW, &t) || ioctl(master, TIOCSWINSZ, &ws))
		die("tcsetattr/TIOCSWINSZ");

	for (k = 1; k <= LEAD; k++) {
		send48(master, k, 1, "master->slave");
		send48(slave, k, 2, "slave->master");
	}
	for (n = 1; n <= wl.steps; n++) {
		uint64_t h = recv48(slave, n, 1, "master->slave");

		h = fnv1a_u64(h, recv48(master, n, 2, "slave->master"));
		send48(master, n + LEAD, 1, "master->slave");
		send48(slave, n + LEAD, 2, "slave->master");
		tr_line("step %d data=%016llx", n, (unsigned long long)h);
		step_sleep();
	}

	for (k = 1; k <= LEAD; k++) {
		recv48(slave, wl.steps + k, 1, "master->slave");
		recv48(master, wl.steps + k, 2, "slave->master");
	}
	check(termios_ok(slave), "slave termios changed");
	check(!ioctl(slave, TIOCGWINSZ, &got_ws) && got_ws.ws_row == 33 && got_ws.ws_col == 101,
	      "window size changed");
	check(!ioctl(master, TIOCGPTLCK, &lock) && lock == 0, "pty is locked again");
	check(isatty(slave) && !strcmp(ttyname(slave), ptsname(master)), "slave is not the master's peer");
	check(tcgetsid(slave) < 0, "the pty became a controlling terminal");
	wl_finish();
}
