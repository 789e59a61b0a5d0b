/*
 * counter: anonymous private memory with a deterministic evolving pattern.
 *
 * State: 1 MiB dense RW mapping, a 64 KiB .bss array, a 16 MiB sparse
 * NORESERVE mapping with one page dirtied per step, and a 64 KiB read-only
 * mapping (checks that VMA protections survive). Each step mutates a few
 * pages and prints a digest; verify rebuilds everything from scratch.
 */
#include "common.h"

#include <sys/mman.h>

#define PAGE 4096
#define DENSE_PAGES 256 /* 1 MiB */
#define SPARSE_PAGES 4096 /* 16 MiB, mostly never touched */
#define RO_SIZE (64 * 1024)
#define BSS_WORDS 8192

static uint64_t bss_words[BSS_WORDS];

struct mem {
	unsigned char *dense;
	unsigned char *sparse;
	uint64_t *bss;
};

static void *map_anon(size_t size, int extra)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);

	if (p == MAP_FAILED)
		die("mmap %zu", size);
	return p;
}

static void mem_init(struct mem *m)
{
	fill_pattern(m->dense, DENSE_PAGES * PAGE, 0xC0FFEE);
	fill_pattern(m->bss, sizeof(bss_words), 0xB55);
}

/* Mutation of step n; also used to rebuild the expected state. */
static void apply_step(struct mem *m, uint64_t n)
{
	int k;

	for (k = 0; k < 8; k++) {
		uint64_t *w = (uint64_t *)(m->dense + (mix64(n * 8 + k) % DENSE_PAGES) * PAGE);
		size_t i;

		for (i = 0; i < PAGE / 8; i++)
			w[i] = mix64(w[i] ^ (n << 32 | k));
	}
	for (k = 0; k < 16; k++)
		m->bss[mix64(n ^ 0xB55 ^ ((uint64_t)k << 20)) % BSS_WORDS] += mix64(n + k);
	fill_pattern(m->sparse + (mix64(~n) % SPARSE_PAGES) * PAGE, PAGE, n);
}

static uint64_t mem_digest(const struct mem *m)
{
	uint64_t h = fnv1a(m->dense, DENSE_PAGES * PAGE);

	h = fnv1a_more(h, m->bss, BSS_WORDS * 8);
	/* The sparse area is covered by verify; hashing 16 MiB per step is waste. */
	return h;
}

/* Is [addr, addr+len) mapped with exactly the given permission string? */
static int maps_perm_is(const void *addr, const char *perm)
{
	static char buf[65536];
	unsigned long want = (unsigned long)addr;
	char *line;

	if (read_text("/proc/self/maps", buf, sizeof(buf)) < 0)
		die("read /proc/self/maps");
	for (line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		unsigned long lo, hi;
		char p[8];

		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, p) == 3 && lo <= want && want < hi)
			return !strcmp(p, perm);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct mem live, ref;
	unsigned char *ro, *want_ro;
	int n;

	wl_init(argc, argv, "counter");

	live.dense = map_anon(DENSE_PAGES * PAGE, 0);
	live.sparse = map_anon(SPARSE_PAGES * PAGE, MAP_NORESERVE);
	live.bss = bss_words;
	mem_init(&live);

	ro = map_anon(RO_SIZE, 0);
	fill_pattern(ro, RO_SIZE, 0x50);
	if (mprotect(ro, RO_SIZE, PROT_READ))
		die("mprotect");

	for (n = 1; n <= wl.steps; n++) {
		apply_step(&live, n);
		tr_line("step %d digest=%016llx", n, (unsigned long long)mem_digest(&live));
		step_sleep();
	}

	/* Rebuild the expected state from scratch and compare byte for byte. */
	ref.dense = map_anon(DENSE_PAGES * PAGE, 0);
	ref.sparse = map_anon(SPARSE_PAGES * PAGE, MAP_NORESERVE);
	ref.bss = map_anon(sizeof(bss_words), 0);
	mem_init(&ref);
	for (n = 1; n <= wl.steps; n++)
		apply_step(&ref, n);
	check(!memcmp(live.dense, ref.dense, DENSE_PAGES * PAGE), "dense memory differs");
	check(!memcmp(live.bss, ref.bss, sizeof(bss_words)), "bss differs");
	check(!memcmp(live.sparse, ref.sparse, SPARSE_PAGES * PAGE), "sparse memory differs");
	check(mem_digest(&live) == mem_digest(&ref), "digest differs");

	want_ro = map_anon(RO_SIZE, 0);
	fill_pattern(want_ro, RO_SIZE, 0x50);
	check(!memcmp(ro, want_ro, RO_SIZE), "read-only mapping content differs");
	check(maps_perm_is(ro, "r--p"), "read-only mapping lost its protection");
	check(maps_perm_is(live.dense, "rw-p"), "dense mapping protection changed");
	wl_finish();
}
