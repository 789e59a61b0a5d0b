/*
 * bigmem: 256 MiB of anonymous memory filled once with a pattern; each step
 * rewrites a few pages with a new version. Every page's content is a pure
 * function of (page index, version), so verify can check all of it without
 * a second 256 MiB copy.
 */
#include "common.h"

#include <sys/mman.h>

#define PAGE 4096
#define MEM_MB 256
#define NPAGES ((size_t)MEM_MB * 1024 * 1024 / PAGE)
#define TOUCH_PER_STEP 32

static void fill_page(uint64_t *w, size_t page, uint32_t version)
{
	uint64_t seed = ((uint64_t)version << 40) ^ ((uint64_t)page << 12);
	size_t i;

	/* Cheaper than mix64 per word: 256 MiB must fill in well under a second. */
	uint64_t x = mix64(seed);
	for (i = 0; i < PAGE / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = x + i;
	}
}

static int page_ok(const uint64_t *w, size_t page, uint32_t version)
{
	uint64_t want[PAGE / 8];

	fill_page(want, page, version);
	return !memcmp(w, want, PAGE);
}

int main(int argc, char **argv)
{
	unsigned char *mem;
	uint32_t *version, *want; /* current version of every page */
	size_t p, bad = 0;
	int n, k;

	wl_init(argc, argv, "bigmem");
	mem = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	version = mmap(NULL, NPAGES * sizeof(*version), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (mem == MAP_FAILED || version == MAP_FAILED)
		die("mmap %d MiB", MEM_MB);
	for (p = 0; p < NPAGES; p++)
		fill_page((uint64_t *)(mem + p * PAGE), p, 0);

	for (n = 1; n <= wl.steps; n++) {
		uint64_t h = FNV_INIT;

		for (k = 0; k < TOUCH_PER_STEP; k++) {
			p = mix64((uint64_t)n << 16 | k) % NPAGES;
			version[p] = n;
			fill_page((uint64_t *)(mem + p * PAGE), p, n);
			h = fnv1a_more(h, mem + p * PAGE, PAGE);
		}
		/* Sample untouched-looking pages too, so stale data shows early. */
		for (k = 0; k < 64; k++) {
			p = mix64(~((uint64_t)n << 16 | k)) % NPAGES;
			h = fnv1a_more(h, mem + p * PAGE, 64);
		}
		tr_line("step %d digest=%016llx", n, (unsigned long long)h);
		step_sleep();
	}

	/* The version table is state as well: replay it from scratch. */
	want = calloc(NPAGES, sizeof(*want));
	if (!want)
		die("calloc");
	for (n = 1; n <= wl.steps; n++)
		for (k = 0; k < TOUCH_PER_STEP; k++)
			want[mix64((uint64_t)n << 16 | k) % NPAGES] = n;
	check(!memcmp(want, version, NPAGES * sizeof(*want)), "page version table differs");

	for (p = 0; p < NPAGES; p++) {
		if (!page_ok((uint64_t *)(mem + p * PAGE), p, version[p]) && bad++ == 0)
			check(0, "page %zu (version %u) differs", p, version[p]);
	}
	check(bad == 0, "%zu pages differ", bad);
	wl_finish();
}
