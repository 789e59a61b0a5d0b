/*
 * memfd: three memfds used in different ways.
 *
 *  data    fd + MAP_SHARED mapping, written both through the mapping and
 *          with write() at the fd offset; sealed F_SEAL_SHRINK at start and
 *          F_SEAL_GROW from step 5 on
 *  mapped  MAP_SHARED mapping whose fd was closed: lives through the VMA
 *  priv    fd + MAP_PRIVATE mapping: COW pages diverge, the file does not
 */
#include "common.h"

#include <sys/mman.h>

#define PAGE 4096
#define DATA_SIZE (16 * PAGE)
#define MAPPED_SIZE (8 * PAGE)
#define PRIV_SIZE (4 * PAGE)
#define CHUNK 32
#define GROW_SEAL_STEP 5

static int xmemfd(const char *name, unsigned flags, size_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC | flags);

	if (fd < 0)
		die("memfd_create %s", name);
	if (ftruncate(fd, size))
		die("ftruncate %s", name);
	return fd;
}

static unsigned char *xmap(int fd, size_t size, int flags)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, 0);

	if (p == MAP_FAILED)
		die("mmap memfd");
	return p;
}

/* Offset where step n's write() lands: the fd offset wraps before the end. */
static off_t chunk_off(int n)
{
	return (off_t)((n - 1) % (DATA_SIZE / CHUNK)) * CHUNK;
}

/* Step n's change through the mapping (live, or a rebuilt copy). */
static void data_map_step(unsigned char *data, int n)
{
	fill_pattern(data + (n % (DATA_SIZE / PAGE)) * PAGE + 256, 1024, 0x6100 + n);
}

/* Step n's chunk, written with write() at the fd offset. */
static void data_chunk(unsigned char *chunk, int n)
{
	fill_pattern(chunk, CHUNK, 0x6200 + n);
}

static void mapped_step(unsigned char *m, int n)
{
	fill_pattern(m + (n % (MAPPED_SIZE / PAGE)) * PAGE, PAGE, 0x6300 + n);
}

static void priv_step(unsigned char *m, int n)
{
	fill_pattern(m + (n % (PRIV_SIZE / PAGE)) * PAGE + 64, 64, 0x6400 + n);
}

static int link_is(int fd, const char *want)
{
	char path[64], buf[256];
	ssize_t r;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = readlink(path, buf, sizeof(buf) - 1);
	if (r < 0)
		return 0;
	buf[r] = 0;
	return !strcmp(buf, want);
}

/* Is addr mapped from a file whose /proc/self/maps name is `want`? */
static int maps_name_is(const void *addr, const char *want)
{
	static char buf[65536];
	char *line;

	if (read_text("/proc/self/maps", buf, sizeof(buf)) < 0)
		die("read /proc/self/maps");
	for (line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		unsigned long lo, hi;
		int off = 0;

		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &off) >= 2 && off &&
		    lo <= (unsigned long)addr && (unsigned long)addr < hi)
			return !strcmp(line + off, want);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static unsigned char want[DATA_SIZE], got[DATA_SIZE];
	int data_fd, mapped_fd, priv_fd, n;
	unsigned char *data, *mapped, *priv;
	unsigned char chunk[CHUNK];

	wl_init(argc, argv, "memfd");
	data_fd = xmemfd("crtest-data", MFD_ALLOW_SEALING, DATA_SIZE);
	mapped_fd = xmemfd("crtest-mapped", 0, MAPPED_SIZE);
	priv_fd = xmemfd("crtest-priv", 0, PRIV_SIZE);
	data = xmap(data_fd, DATA_SIZE, MAP_SHARED);
	mapped = xmap(mapped_fd, MAPPED_SIZE, MAP_SHARED);
	close(mapped_fd);
	fill_pattern(want, PRIV_SIZE, 0x6000);
	xwrite(priv_fd, want, PRIV_SIZE, "priv memfd");
	priv = xmap(priv_fd, PRIV_SIZE, MAP_PRIVATE);
	if (fcntl(data_fd, F_ADD_SEALS, F_SEAL_SHRINK))
		die("F_ADD_SEALS");

	for (n = 1; n <= wl.steps; n++) {
		if (chunk_off(n) == 0 && lseek(data_fd, 0, SEEK_SET))
			die("lseek");
		data_map_step(data, n);
		data_chunk(chunk, n);
		xwrite(data_fd, chunk, CHUNK, "data memfd");
		if (n == GROW_SEAL_STEP && fcntl(data_fd, F_ADD_SEALS, F_SEAL_GROW))
			die("F_ADD_SEALS");
		mapped_step(mapped, n);
		priv_step(priv, n);
		tr_line("step %d data=%016llx off=%lld seals=%#x mapped=%016llx priv=%016llx", n,
			(unsigned long long)fnv1a(data, DATA_SIZE), (long long)lseek(data_fd, 0, SEEK_CUR),
			fcntl(data_fd, F_GET_SEALS), (unsigned long long)fnv1a(mapped, MAPPED_SIZE),
			(unsigned long long)fnv1a(priv, PRIV_SIZE));
		step_sleep();
	}

	memset(want, 0, DATA_SIZE);
	for (n = 1; n <= wl.steps; n++) {
		data_map_step(want, n);
		data_chunk(want + chunk_off(n), n);
	}
	check(!memcmp(data, want, DATA_SIZE), "data mapping differs");
	check(pread(data_fd, got, DATA_SIZE, 0) == DATA_SIZE && !memcmp(got, want, DATA_SIZE),
	      "data memfd content differs");
	check(lseek(data_fd, 0, SEEK_CUR) == chunk_off(wl.steps) + CHUNK, "data fd offset %lld",
	      (long long)lseek(data_fd, 0, SEEK_CUR));
	check(fcntl(data_fd, F_GET_SEALS) == (F_SEAL_SHRINK | (wl.steps >= GROW_SEAL_STEP ? F_SEAL_GROW : 0)),
	      "seals %#x", fcntl(data_fd, F_GET_SEALS));
	check(ftruncate(data_fd, DATA_SIZE / 2) < 0 && errno == EPERM, "F_SEAL_SHRINK not enforced");
	check(link_is(data_fd, "/memfd:crtest-data (deleted)"), "data memfd name changed");
	check(link_is(priv_fd, "/memfd:crtest-priv (deleted)"), "priv memfd name changed");
	check(maps_name_is(mapped, "/memfd:crtest-mapped (deleted)"), "fd-less memfd mapping lost its name");

	memset(want, 0, MAPPED_SIZE);
	for (n = 1; n <= wl.steps; n++)
		mapped_step(want, n);
	check(!memcmp(mapped, want, MAPPED_SIZE), "fd-less mapping differs");

	fill_pattern(want, PRIV_SIZE, 0x6000);
	check(pread(priv_fd, got, PRIV_SIZE, 0) == PRIV_SIZE && !memcmp(got, want, PRIV_SIZE),
	      "private mapping leaked into the memfd");
	for (n = 1; n <= wl.steps; n++)
		priv_step(want, n);
	check(!memcmp(priv, want, PRIV_SIZE), "private mapping differs");
	wl_finish();
}
