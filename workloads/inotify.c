/*
 * inotify: one inotify instance with three watches:
 *
 *  watched/       IN_CREATE|IN_DELETE|IN_MOVED_FROM|IN_MOVED_TO|IN_CLOSE_WRITE
 *  watched/file   IN_MODIFY
 *  other/         IN_ATTRIB
 *
 * Every step creates, renames and deletes a file, modifies watched/file and
 * (every 5th step) chmods other/, then reads the events and prints them.
 *
 * CRIU restores the watches but not events queued at dump time, so nothing
 * is left unread between steps. If the dump lands in the middle of a step
 * the events come up short; the step then cleans up, drains the queue and
 * replays its operations. The printed events are the same either way.
 */
#include "common.h"

#include <sys/inotify.h>

#define DIR_MASK (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE)
#define FILE_MASK IN_MODIFY
#define OTHER_MASK IN_ATTRIB
#define FILE_SIZE 4096
#define MAX_EV 16

struct ev {
	int wd;
	uint32_t mask, cookie;
	char name[32];
};

static int ino, wd_dir, wd_file, wd_other;

static void names(int n, char *s, char *r)
{
	snprintf(s, 16, "s%d", n);
	snprintf(r, 16, "r%d", n);
}

static const char *sub(const char *dir, const char *name)
{
	static char buf[64];

	snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	return dpath(buf);
}

/* The operations of step n, in order. */
static void do_ops(int n, int file_fd)
{
	char s[16], r[16], data[16];
	int fd;

	names(n, s, r);
	fd = open(sub("watched", s), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		die("create %s", s);
	xwrite(fd, "12345678", 8, s);
	close(fd);
	if (rename(sub("watched", s), sub("watched", r)))
		die("rename");
	if (unlink(sub("watched", r)))
		die("unlink");
	fill_pattern(data, sizeof(data), 0x1E00 + n);
	if (pwrite(file_fd, data, sizeof(data), (n % (FILE_SIZE / 16)) * 16) != sizeof(data))
		die("pwrite");
	if (n % 5 == 0 && chmod(dpath("other"), n % 10 ? 0750 : 0755))
		die("chmod");
}

static struct ev mk_ev(int wd, uint32_t mask, const char *name)
{
	struct ev e = { wd, mask, 0, "" };

	snprintf(e.name, sizeof(e.name), "%s", name);
	return e;
}

/* Expected events of step n (cookies are checked separately). */
static int expected(int n, struct ev *e)
{
	char s[16], r[16];
	int k = 0;

	names(n, s, r);
	e[k++] = mk_ev(wd_dir, IN_CREATE, s);
	e[k++] = mk_ev(wd_dir, IN_CLOSE_WRITE, s);
	e[k++] = mk_ev(wd_dir, IN_MOVED_FROM, s);
	e[k++] = mk_ev(wd_dir, IN_MOVED_TO, r);
	e[k++] = mk_ev(wd_dir, IN_DELETE, r);
	e[k++] = mk_ev(wd_file, IN_MODIFY, "");
	if (n % 5 == 0)
		e[k++] = mk_ev(wd_other, IN_ATTRIB | IN_ISDIR, ""); /* the watched inode is a directory */
	return k;
}

/* Everything queued right now (events are queued synchronously by the ops). */
static int read_events(struct ev *out, int max)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	int k = 0;

	for (;;) {
		ssize_t r = read(ino, buf, sizeof(buf));
		char *p;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return k;
		if (r <= 0)
			die("read inotify");
		for (p = buf; p < buf + r;) {
			struct inotify_event *ie = (struct inotify_event *)p;

			if (k < max) {
				out[k] = (struct ev){ ie->wd, ie->mask, ie->cookie, "" };
				if (ie->len)
					snprintf(out[k].name, sizeof(out[k].name), "%s", ie->name);
			}
			k++;
			p += sizeof(*ie) + ie->len;
		}
	}
}

static int events_match(const struct ev *got, int ngot, const struct ev *want, int nwant)
{
	int i;

	if (ngot != nwant)
		return 0;
	for (i = 0; i < nwant; i++)
		if (got[i].wd != want[i].wd || got[i].mask != want[i].mask || strcmp(got[i].name, want[i].name))
			return 0;
	/* The two halves of the rename share one non-zero cookie. */
	return got[2].cookie && got[2].cookie == got[3].cookie;
}

static const char *mask_name(uint32_t m)
{
	switch (m & ~IN_ISDIR) {
	case IN_CREATE: return "create";
	case IN_CLOSE_WRITE: return "close_write";
	case IN_MOVED_FROM: return "moved_from";
	case IN_MOVED_TO: return "moved_to";
	case IN_DELETE: return "delete";
	case IN_MODIFY: return "modify";
	case IN_ATTRIB: return "attrib";
	}
	return "?";
}

/* Run step n until its events arrive complete; returns them printed. */
static void step(int n, int file_fd, char *out, size_t size)
{
	struct ev got[MAX_EV], want[MAX_EV];
	int nwant = expected(n, want), ngot, i, off = 0;
	char s[16], r[16];

	do_ops(n, file_fd);
	ngot = read_events(got, MAX_EV);
	if (!events_match(got, ngot, want, nwant)) {
		/* Interrupted by a dump: undo, forget partial events, replay. */
		names(n, s, r);
		unlink(sub("watched", s));
		unlink(sub("watched", r));
		read_events(got, MAX_EV);
		do_ops(n, file_fd);
		ngot = read_events(got, MAX_EV);
		if (!events_match(got, ngot, want, nwant))
			bail("step %d: %d inotify events do not match the %d expected", n, ngot, nwant);
	}
	for (i = 0; i < ngot; i++)
		off += snprintf(out + off, size - off, "%s%s%s%s", i ? "," : "", mask_name(got[i].mask),
				got[i].name[0] ? ":" : "", got[i].name);
}

/* Does fdinfo list exactly our three watches, on the right inodes? */
static int fdinfo_ok(void)
{
	char path[64], buf[8192], *line;
	int seen = 0;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", ino);
	if (read_text(path, buf, sizeof(buf)) < 0)
		return 0;
	for (line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		unsigned wd, mask;
		unsigned long inode;
		struct stat st;
		const char *p;
		uint32_t m;

		if (sscanf(line, "inotify wd:%x ino:%lx sdev:%*x mask:%x", &wd, &inode, &mask) != 3)
			continue;
		if ((int)wd == wd_dir)
			p = dpath("watched"), m = DIR_MASK;
		else if ((int)wd == wd_file)
			p = dpath("watched/file"), m = FILE_MASK;
		else if ((int)wd == wd_other)
			p = dpath("other"), m = OTHER_MASK;
		else
			return 0;
		if (stat(p, &st) || st.st_ino != inode || mask != m)
			return 0;
		seen++;
	}
	return seen == 3;
}

int main(int argc, char **argv)
{
	static char line[1024];
	unsigned char content[FILE_SIZE], data[16];
	struct ev got[MAX_EV];
	int file_fd, n;

	wl_init(argc, argv, "inotify");
	if (mkdir(dpath("watched"), 0755) || mkdir(dpath("other"), 0755))
		die("mkdir");
	memset(content, 0, sizeof(content));
	write_file("watched/file", content, FILE_SIZE);
	file_fd = open(dpath("watched/file"), O_WRONLY | O_CLOEXEC);
	ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (file_fd < 0 || ino < 0)
		die("open/inotify_init1");
	wd_dir = inotify_add_watch(ino, dpath("watched"), DIR_MASK);
	wd_file = inotify_add_watch(ino, dpath("watched/file"), FILE_MASK);
	wd_other = inotify_add_watch(ino, dpath("other"), OTHER_MASK);
	if (wd_dir < 0 || wd_file < 0 || wd_other < 0)
		die("inotify_add_watch");

	for (n = 1; n <= wl.steps; n++) {
		step(n, file_fd, line, sizeof(line));
		tr_line("step %d events=%s", n, line);
		step_sleep();
	}

	check(fdinfo_ok(), "inotify watches (wd, inode, mask) differ");
	for (n = 1; n <= wl.steps; n++)
		fill_pattern(content + (n % (FILE_SIZE / 16)) * 16, 16, 0x1E00 + n);
	{
		unsigned char now[FILE_SIZE];
		int fd = open(dpath("watched/file"), O_RDONLY | O_CLOEXEC);

		check(fd >= 0 && read_full(fd, now, FILE_SIZE) == FILE_SIZE && !memcmp(now, content, FILE_SIZE),
		      "watched file content differs");
		close(fd);
	}
	/* The watches still fire. */
	write_file("watched/final", data, 0);
	n = read_events(got, MAX_EV);
	check(n == 2 && got[0].wd == wd_dir && got[0].mask == IN_CREATE && !strcmp(got[0].name, "final") &&
		      got[1].mask == IN_CLOSE_WRITE,
	      "no events after the last step (%d)", n);
	wl_finish();
}
