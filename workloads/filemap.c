/*
 * filemap: regular files in DIR held open at evolving offsets, plus a
 * MAP_SHARED and a MAP_PRIVATE file mapping.
 *
 *  log      O_RDWR fd appending 64-byte records with write(); a second
 *           O_RDONLY fd on the same file reads them back (its own offset).
 *  append   O_APPEND fd, one fixed-size line per step.
 *  shared   64 KiB, MAP_SHARED: pages updated through the mapping and with
 *           pwrite(); the file and the mapping must agree.
 *  private  64 KiB, MAP_PRIVATE: half the pages are COW-modified, the rest
 *           must still show the (unchanged) file.
 */
#include "common.h"

#include <sys/mman.h>

#define PAGE 4096
#define MAP_PAGES 16
#define MAP_SIZE (MAP_PAGES * PAGE)
#define REC 64
#define APP_LINE 13 /* "entry 000001\n" */

struct files {
	int log, rd, app, shm_fd;
	unsigned char *shared, *private;
};

static int xopen(const char *rel, int flags)
{
	int fd = open(dpath(rel), flags | O_CLOEXEC, 0644);

	if (fd < 0)
		die("open %s", rel);
	return fd;
}

static void *map_file(int fd, int flags)
{
	void *p = mmap(NULL, MAP_SIZE, PROT_READ | PROT_WRITE, flags, fd, 0);

	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

/* Changes of step n to the shared file and the private mapping; applied to
 * the live mappings and, at verify time, to plain buffers. */
static void shared_step(unsigned char *shared, int n)
{
	fill_pattern(shared + (n % MAP_PAGES) * PAGE, PAGE, 0x5A00 + n);
}

static void shared_pwrite_step(unsigned char *buf, int n)
{
	fill_pattern(buf, REC, 0x7700 + n);
}

static size_t shared_pwrite_off(int n)
{
	return ((n + 8) % MAP_PAGES) * PAGE + (n % 8) * REC;
}

static void private_step(unsigned char *priv, int n)
{
	fill_pattern(priv + (n % (MAP_PAGES / 2)) * PAGE + 100, 200, 0x9900 + n);
}

static void setup(struct files *f)
{
	unsigned char buf[MAP_SIZE];

	fill_pattern(buf, REC, 0x1000);
	write_file("log", buf, REC);
	fill_pattern(buf, MAP_SIZE, 0x2000);
	write_file("shared", buf, MAP_SIZE);
	fill_pattern(buf, MAP_SIZE, 0x3000);
	write_file("private", buf, MAP_SIZE);

	f->log = xopen("log", O_RDWR);
	if (lseek(f->log, REC, SEEK_SET) != REC)
		die("lseek");
	f->rd = xopen("log", O_RDONLY);
	if (lseek(f->rd, REC, SEEK_SET) != REC)
		die("lseek");
	f->app = xopen("append", O_WRONLY | O_CREAT | O_APPEND);
	f->shm_fd = xopen("shared", O_RDWR);
	f->shared = map_file(f->shm_fd, MAP_SHARED);

	/* The private mapping keeps no fd: it lives on through the VMA only. */
	int pfd = xopen("private", O_RDWR);
	f->private = map_file(pfd, MAP_PRIVATE);
	close(pfd);
}

static void do_step(struct files *f, int n)
{
	unsigned char rec[REC], back[2 * REC], want[REC];
	char line[32];
	int k;

	fill_pattern(rec, REC, 0x1000 + n);
	xwrite(f->log, rec, REC, "log");

	/* The reader catches up every second step, two records at a time. */
	if (n % 2 == 0) {
		xread(f->rd, back, 2 * REC, "log reader");
		for (k = 0; k < 2; k++) {
			fill_pattern(want, REC, 0x1000 + n - 1 + k);
			if (memcmp(back + k * REC, want, REC))
				bail("log record %d read back wrong", n - 1 + k);
		}
	}

	snprintf(line, sizeof(line), "entry %06d\n", n % 1000000);
	xwrite(f->app, line, APP_LINE, "append");

	shared_step(f->shared, n);
	shared_pwrite_step(rec, n);
	if (pwrite(f->shm_fd, rec, REC, shared_pwrite_off(n)) != REC)
		die("pwrite shared");
	private_step(f->private, n);
}

static void verify(struct files *f)
{
	static unsigned char want[MAP_SIZE], got[MAP_SIZE];
	unsigned char rec[REC];
	off_t end = REC + (off_t)wl.steps * REC;
	int n;

	check(lseek(f->log, 0, SEEK_CUR) == end, "log offset %lld", (long long)lseek(f->log, 0, SEEK_CUR));
	check(lseek(f->rd, 0, SEEK_CUR) == REC + (off_t)(wl.steps / 2) * 2 * REC, "reader offset %lld",
	      (long long)lseek(f->rd, 0, SEEK_CUR));
	check(lseek(f->app, 0, SEEK_CUR) == (off_t)wl.steps * APP_LINE, "append offset %lld",
	      (long long)lseek(f->app, 0, SEEK_CUR));
	check(fcntl(f->app, F_GETFL) & O_APPEND, "O_APPEND lost");
	check((fcntl(f->rd, F_GETFL) & O_ACCMODE) == O_RDONLY, "reader access mode changed");

	for (n = 0; n <= wl.steps; n++) {
		fill_pattern(rec, REC, 0x1000 + n);
		if (pread(f->rd, got, REC, (off_t)n * REC) != REC || memcmp(got, rec, REC)) {
			check(0, "log record %d differs", n);
			break;
		}
	}

	fill_pattern(want, MAP_SIZE, 0x2000);
	for (n = 1; n <= wl.steps; n++) {
		shared_step(want, n);
		shared_pwrite_step(want + shared_pwrite_off(n), n);
	}
	check(!memcmp(f->shared, want, MAP_SIZE), "shared mapping differs from expected");
	check(pread(f->shm_fd, got, MAP_SIZE, 0) == MAP_SIZE && !memcmp(got, want, MAP_SIZE),
	      "shared file differs from expected");

	fill_pattern(want, MAP_SIZE, 0x3000);
	{
		int fd = xopen("private", O_RDONLY);

		check(pread(fd, got, MAP_SIZE, 0) == MAP_SIZE && !memcmp(got, want, MAP_SIZE),
		      "private file was modified");
		close(fd);
	}
	for (n = 1; n <= wl.steps; n++)
		private_step(want, n);
	check(!memcmp(f->private, want, MAP_SIZE), "private mapping differs from expected");
}

int main(int argc, char **argv)
{
	struct files f;
	int n;

	wl_init(argc, argv, "filemap");
	setup(&f);
	for (n = 1; n <= wl.steps; n++) {
		do_step(&f, n);
		tr_line("step %d off=%lld rdoff=%lld appoff=%lld shared=%016llx private=%016llx", n,
			(long long)lseek(f.log, 0, SEEK_CUR), (long long)lseek(f.rd, 0, SEEK_CUR),
			(long long)lseek(f.app, 0, SEEK_CUR), (unsigned long long)fnv1a(f.shared, MAP_SIZE),
			(unsigned long long)fnv1a(f.private, MAP_SIZE));
		step_sleep();
	}
	verify(&f);
	wl_finish();
}
