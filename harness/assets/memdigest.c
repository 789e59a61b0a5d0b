/*
 * memdigest: one digest per 4 KiB page of the memory CRIU restores from its
 * page images, so crtest can tell whether a restored tree got its memory back
 * even when the program never re-reads it (harness/src/memcheck.rs compares).
 *
 * Usage: memdigest PID...   (pids as the caller sees them)
 *
 * Output, one line per mapping, the process named as snapshot.rs names it:
 *   NSPID START-END PERMS OFFSET PATH<TAB>DIGEST DIGEST ...
 * NSPID is the pid in the process's own pid namespace, PATH is relative to
 * the process's root. A DIGEST is 16 hex digits, or `-` for a page that
 * could not be read; a run of N equal ones is written `DIGEST*N`.
 * Exit 0 when every process was read, 1 otherwise (the reason on stderr).
 *
 * Run while the tree is frozen (CRIU's post-dump and pre-resume actions).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE 4096
#define CHUNK_PAGES 256 /* 1 MiB per pread */
#define PM_PRESENT (1ULL << 63)
#define PM_SWAPPED (1ULL << 62)

/*
 * FNV-1a's shape over 64-bit words with a rotation: each step
 * h = rotl((h ^ w) * K, 31) is a bijection of h for a given word and
 * injective in the word for a given h, so two pages differing in a single
 * word (any one flipped byte) always get different digests.
 */
static uint64_t page_digest(const uint64_t *w)
{
	const uint64_t K = 0x9e3779b97f4a7c15ULL;
	uint64_t h = 0xcbf29ce484222325ULL;
	int i;

	for (i = 0; i < PAGE / 8; i++) {
		h = (h ^ w[i]) * K;
		h = (h << 31) | (h >> 33);
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	return h ^ (h >> 33);
}

/* Run-length output of one mapping's page tokens. */
struct run {
	char tok[17];
	unsigned long n;
};

static void run_flush(struct run *r)
{
	if (r->n == 1)
		printf(" %s", r->tok);
	else if (r->n > 1)
		printf(" %s*%lu", r->tok, r->n);
	r->n = 0;
}

static void run_add(struct run *r, const char *tok)
{
	if (r->n && strcmp(r->tok, tok) != 0)
		run_flush(r);
	if (!r->n)
		snprintf(r->tok, sizeof(r->tok), "%s", tok);
	r->n++;
}

static void run_digest(struct run *r, uint64_t d)
{
	char tok[17];

	snprintf(tok, sizeof(tok), "%016" PRIx64, d);
	run_add(r, tok);
}

static uint64_t zero_digest;

/* The memory of one process, by its /proc files. */
struct proc {
	int mem, pagemap;
};

/*
 * Only the memory CRIU restores from its page images: private mappings
 * (anonymous, or the copied-on-write pages of files) and shared anonymous
 * memory (shown as /dev/zero, SysV segments and memfds). A shared file
 * mapping's content lives in its file, which CRIU does not keep.
 */
static int from_page_images(const char *perms, const char *path)
{
	static const char *shared_anon[] = { "/dev/zero", "/SYSV", "/memfd:" };
	size_t i;

	if (perms[3] == 'p' || !*path)
		return 1;
	for (i = 0; i < sizeof(shared_anon) / sizeof(*shared_anon); i++)
		if (!strncmp(path, shared_anon[i], strlen(shared_anon[i])))
			return 1;
	return 0;
}

/*
 * Private memory not backed by a file reads as zeros where no page exists
 * (the kernel's own mappings, [vdso] and the like, are not such memory).
 */
static int anonymous_private(const char *perms, const char *path)
{
	return perms[3] == 'p' && (!*path || !strcmp(path, "[heap]") || !strcmp(path, "[stack]") ||
				   !strncmp(path, "[anon:", 6));
}

/*
 * Which of `n` pages from `start` need reading: for anonymous private memory
 * the pagemap says which pages exist at all (thread arenas reserve 64 MiB
 * each that nobody touches); everything else is read.
 */
static void pages_to_read(struct proc *p, uint64_t start, size_t n, int anon, char *need)
{
	uint64_t pm[CHUNK_PAGES];
	size_t i;

	memset(need, 1, n);
	if (!anon || p->pagemap < 0)
		return;
	if (pread(p->pagemap, pm, n * 8, (off_t)(start / PAGE * 8)) != (ssize_t)(n * 8))
		return;
	for (i = 0; i < n; i++)
		need[i] = (pm[i] & (PM_PRESENT | PM_SWAPPED)) != 0;
}

static void digest_range(struct proc *p, uint64_t start, uint64_t end, int anon, struct run *r)
{
	static uint64_t buf[CHUNK_PAGES * PAGE / 8];
	char need[CHUNK_PAGES];

	while (start < end) {
		size_t n = (end - start) / PAGE, i;
		int whole;

		if (n > CHUNK_PAGES)
			n = CHUNK_PAGES;
		pages_to_read(p, start, n, anon, need);
		/* One pread for the chunk (none if no page exists); page by page only where that fails. */
		whole = !memchr(need, 1, n) || pread(p->mem, buf, n * PAGE, (off_t)start) == (ssize_t)(n * PAGE);
		for (i = 0; i < n; i++) {
			uint64_t *page = buf + i * (PAGE / 8);

			if (!need[i])
				run_digest(r, zero_digest);
			else if (whole || pread(p->mem, page, PAGE, (off_t)(start + i * PAGE)) == PAGE)
				run_digest(r, page_digest(page));
			else
				run_add(r, "-");
		}
		start += n * PAGE;
	}
}

/* The pid in the process's own (innermost) pid namespace. */
static long ns_pid(int pid)
{
	char path[64], line[256];
	long n = pid;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return pid;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "NSpid:", 6)) {
			char *last = strrchr(line, '\t');
			n = strtol(last ? last + 1 : line + 6, NULL, 10);
		}
	fclose(f);
	return n;
}

/* The process's root as the caller sees it, "" for the caller's own. */
static void root_of(int pid, char *root, size_t size)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/root", pid);
	n = readlink(path, root, size - 1);
	root[n > 0 ? n : 0] = 0;
	if (!strcmp(root, "/"))
		root[0] = 0;
}

/* A zombie has no memory left (its mm is gone and /proc/PID/mem cannot be
 * opened); CRIU restores it as a zombie again, so both sides skip it. */
static int is_zombie(int pid)
{
	char path[64], buf[512], *close_paren;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	close_paren = strrchr(buf, ')');
	return close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z';
}

static int digest_process(int pid)
{
	char path[64], line[4096 + 256], root[4096];
	struct proc p;
	size_t rlen;
	long nspid = ns_pid(pid);
	FILE *maps;

	if (is_zombie(pid))
		return 0;
	root_of(pid, root, sizeof(root));
	rlen = strlen(root);
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	maps = fopen(path, "r");
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	p.mem = open(path, O_RDONLY);
	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	p.pagemap = open(path, O_RDONLY);
	if (!maps || p.mem < 0) {
		fprintf(stderr, "memdigest: pid %d: cannot open its maps or mem: %s\n", pid, strerror(errno));
		return 1;
	}
	while (fgets(line, sizeof(line), maps)) {
		uint64_t start, end, off;
		char perms[5], *name;
		struct run r = { .n = 0 };
		int at = 0;

		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %*s %*s %n", &start, &end, perms, &off,
			   &at) < 4 || !at)
			continue;
		name = line + at;
		name[strcspn(name, "\n")] = 0;
		if (rlen && !strncmp(name, root, rlen) && name[rlen] == '/')
			name += rlen;
		if (!from_page_images(perms, name))
			continue;
		printf("%ld %08" PRIx64 "-%08" PRIx64 " %s %08" PRIx64 " %s\t", nspid, start, end, perms, off, name);
		digest_range(&p, start, end, anonymous_private(perms, name), &r);
		run_flush(&r);
		putchar('\n');
	}
	fclose(maps);
	close(p.mem);
	if (p.pagemap >= 0)
		close(p.pagemap);
	return 0;
}

int main(int argc, char **argv)
{
	static uint64_t zeros[PAGE / 8];
	static char out[1 << 20];
	int i, rc = 0;

	setvbuf(stdout, out, _IOFBF, sizeof(out));
	zero_digest = page_digest(zeros);
	for (i = 1; i < argc; i++)
		rc |= digest_process(atoi(argv[i]));
	if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "memdigest: writing the digests: %s\n", strerror(errno));
		rc = 1;
	}
	return rc;
}
