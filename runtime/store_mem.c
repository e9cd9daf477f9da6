/* runtime/store_mem.c - the host store's memory and the way to the elements that live
 * elsewhere. Each array is mapped whole; only the streamed units' pages are backed (first
 * touched in parallel, huge pages asked for, pinned by the backend; the moments in the
 * plan's optimizer-state precision), the resident units' pages are mapped without access,
 * and hz_store_get / put / pass reach those elements through the backend's copy function
 * (their home). The planner counts the same runs (runtime/hz_layout.h hz_store_runs). */
#define _DEFAULT_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hz_layout.h"
#include "rt.h"

/* Bytes per HZ_OPTSTATE_BLOCK elements of array A (0: this store's mode has none). */
static int64_t block_bytes(const hz_store *s, int a)
{
    return hz_arr_block_bytes(s->state_mode, s->grad_bf16 ? 2 : 4, a);
}

static char *array_base(const hz_store *s, int a)
{
    void *const base[HZ_ARR_N] = {s->w, s->lo, s->m, s->v, s->g, s->ms, s->vs};
    return base[a];
}

/* ---- mapping and backing ---- */

typedef struct touch_job {
    char *base;
    size_t bytes;
} touch_job;

static void *touch_pages(void *arg)
{
    touch_job *j = arg;
    for (size_t off = 0; off < j->bytes; off += HZ_STORE_PAGE) j->base[off] = 0;
    return NULL;
}

/* Fault in [base, base + bytes) on up to 32 threads: the kernel zeroes each page on the
 * thread that touches it first. */
static void first_touch(char *base, size_t bytes)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n = cpus < 1 ? 1 : cpus > 32 ? 32 : (int)cpus;
    if (bytes < ((size_t)64 << 20)) n = 1;
    pthread_t tid[32];
    touch_job job[32];
    int started[32] = {0};
    size_t chunk = (bytes / (size_t)n + HZ_STORE_PAGE - 1) / HZ_STORE_PAGE * HZ_STORE_PAGE;
    for (int i = 0; i < n; i++) {
        size_t at = chunk * (size_t)i;
        job[i] = (touch_job){base + at, at < bytes ? (bytes - at < chunk ? bytes - at : chunk) : 0};
        started[i] = pthread_create(&tid[i], NULL, touch_pages, &job[i]) == 0;
        if (!started[i]) touch_pages(&job[i]);
    }
    for (int i = 0; i < n; i++)
        if (started[i]) pthread_join(tid[i], NULL);
}

typedef struct map_job {
    const hz_store *s;
    int a;
    hz_host_pin_fn pin;
    void *base;
    int rc, pinned_runs;
} map_job;

/* One array: map it, make the gaps between its runs inaccessible, back and pin the runs. */
static void *map_array(void *arg)
{
    map_job *j = arg;
    const hz_store *s = j->s;
    size_t bytes = j->s->map_bytes[j->a];
    j->rc = -1;
    if (bytes == 0) { /* an array this mode does not have */
        j->base = NULL;
        j->rc = 0;
        return NULL;
    }
    char *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        fprintf(stderr, "train: cannot map %zu bytes (%.2f GiB) of host memory for the store\n",
                bytes, bytes / 1073741824.0);
        j->base = NULL;
        return NULL;
    }
    j->base = base;
    int n = hz_store_runs(s->plan, block_bytes(s, j->a), j->a == HZ_ARR_G, NULL, NULL, 0, NULL);
    int64_t *first = malloc(sizeof(int64_t) * (size_t)(2 * n + 1)), *end = first + n;
    if (!first) return NULL;
    hz_store_runs(s->plan, block_bytes(s, j->a), j->a == HZ_ARR_G, first, end, n, NULL);
    int64_t gap = 0; /* the gaps hold resident (in g, also held) units' elements */
    for (int r = 0; r <= n; r++) {
        int64_t gap_end = r < n ? first[r] : (int64_t)bytes;
        if (gap_end > gap) mprotect(base + gap, (size_t)(gap_end - gap), PROT_NONE);
        if (r < n) gap = end[r] < (int64_t)bytes ? end[r] : (int64_t)bytes;
    }
    j->rc = 0;
    for (int r = 0; r < n && j->rc == 0; r++) {
        int64_t e = end[r] < (int64_t)bytes ? end[r] : (int64_t)bytes;
        size_t run = (size_t)(e - first[r]);
#ifdef MADV_HUGEPAGE
        madvise(base + first[r], run, MADV_HUGEPAGE); /* fewer pages to fault and pin: a hint */
#endif
        first_touch(base + first[r], run);
        if (j->pin && j->pin(base + first[r], run) != 0)
            j->rc = -1;
        else if (j->pin)
            j->pinned_runs = r + 1;
    }
    free(first);
    return NULL;
}

/* The arrays at once, one thread each: backing and pinning tens of GiB is the start-up's
 * longest wait. */
int hz_store_alloc(hz_store *s, const hz_plan *p, hz_host_pin_fn pin, hz_host_unpin_fn unpin)
{
    memset(s, 0, sizeof(*s));
    s->n = p->host_store_n;
    s->grad_bf16 = p->host_grad_bf16;
    s->state_mode = p->optimizer_state;
    s->plan = p;
    s->pinned = pin != NULL;
    s->unpin = unpin;
    for (int a = 0; a < HZ_ARR_N; a++)
        s->map_bytes[a] = (size_t)((hz_arr_offset(block_bytes(s, a), s->n) + HZ_STORE_PAGE - 1) /
                                   HZ_STORE_PAGE * HZ_STORE_PAGE);
    map_job job[HZ_ARR_N];
    pthread_t tid[HZ_ARR_N];
    int started[HZ_ARR_N];
    for (int a = 0; a < HZ_ARR_N; a++) {
        job[a] = (map_job){s, a, pin, NULL, -1, 0};
        started[a] = pthread_create(&tid[a], NULL, map_array, &job[a]) == 0;
        if (!started[a]) map_array(&job[a]);
    }
    int rc = 0;
    for (int a = 0; a < HZ_ARR_N; a++) {
        if (started[a]) pthread_join(tid[a], NULL);
        rc |= job[a].rc;
        s->pinned_runs[a] = job[a].pinned_runs;
    }
    s->w = job[HZ_ARR_W].base;
    s->lo = job[HZ_ARR_LO].base;
    s->m = job[HZ_ARR_M].base;
    s->v = job[HZ_ARR_V].base;
    s->g = job[HZ_ARR_G].base;
    s->ms = job[HZ_ARR_MS].base;
    s->vs = job[HZ_ARR_VS].base;
    s->bounce_n = hz_store_bounce_n(p);
    if (s->bounce_n > 0 && !(s->bounce = malloc((size_t)hz_store_bounce_bytes(p, NULL)))) rc = -1;
    s->bytes = hz_store_backed_bytes(p, s->grad_bf16 ? 2 : 4);
    return rc ? -1 : 0;
}

void hz_store_free(hz_store *s)
{
    for (int a = 0; a < HZ_ARR_N; a++) {
        char *base = array_base(s, a);
        if (!base) continue;
        if (s->pinned && s->unpin && s->pinned_runs[a] > 0) {
            int n = hz_store_runs(s->plan, block_bytes(s, a), a == HZ_ARR_G, NULL, NULL, 0, NULL);
            int64_t *first = malloc(sizeof(int64_t) * (size_t)(n + 1));
            if (first) {
                hz_store_runs(s->plan, block_bytes(s, a), a == HZ_ARR_G, first, NULL, n, NULL);
                for (int r = 0; r < s->pinned_runs[a] && r < n; r++) s->unpin(base + first[r]);
            }
            free(first);
        }
        munmap(base, s->map_bytes[a]);
    }
    free(s->bounce);
    memset(s, 0, sizeof(*s));
}

/* mincore's answer a chunk at a time into a buffer on the stack: the measurement adds nothing
 * to the heap, so the trainer's peak RSS, read after it, does not hold a page map of the
 * store (one byte a page: 1.2 MB for a 5 GB mapping) */
#define MEASURE_PAGES 16384

int64_t hz_store_measured_bytes(const hz_store *s)
{
    int64_t bytes = s->bounce ? hz_store_bounce_bytes(s->plan, NULL) : 0;
    unsigned char vec[MEASURE_PAGES];
    for (int a = 0; a < HZ_ARR_N; a++) {
        char *base = array_base(s, a);
        size_t pages = s->map_bytes[a] / HZ_STORE_PAGE;
        for (size_t p0 = 0; base && p0 < pages; p0 += MEASURE_PAGES) {
            size_t n = pages - p0 < MEASURE_PAGES ? pages - p0 : MEASURE_PAGES;
            if (mincore(base + p0 * HZ_STORE_PAGE, n * HZ_STORE_PAGE, vec) != 0) break;
            for (size_t i = 0; i < n; i++) bytes += (vec[i] & 1) * HZ_STORE_PAGE;
        }
    }
    return bytes;
}

/* ---- elements wherever they live ---- */

/* The unit holding element I (units tile the store in order). */
static const hz_unit *unit_of(const hz_plan *p, int64_t i)
{
    int lo = 0, hi = p->unit_n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (p->units[mid].host_n <= i) lo = mid;
        else hi = mid - 1;
    }
    return &p->units[lo];
}

/* The end of the run of units of one kind (resident or not) that element I starts in,
 * at most LIMIT; *RESIDENT says which kind. */
static int64_t run_end(const hz_store *s, int64_t i, int64_t limit, int *resident)
{
    const hz_plan *p = s->plan;
    const hz_unit *u = unit_of(p, i);
    *resident = u->resident;
    int64_t e = u->host_n + u->padded_n;
    for (int k = (int)(u - p->units) + 1; k < p->unit_n && e < limit; k++) {
        if (p->units[k].resident != *resident) break;
        e = p->units[k].host_n + p->units[k].padded_n;
    }
    return e < limit ? e : limit;
}

static void move(const hz_store *s, int a, int64_t first, int64_t n, void *buf, int to_store)
{
    int64_t bb = block_bytes(s, a), end = first + n, at0 = hz_arr_offset(bb, first);
    char *b = buf;
    for (int64_t i = first; i < end;) {
        int resident = 0;
        int64_t e = s->plan->resident_n > 0 ? run_end(s, i, end, &resident) : end;
        int64_t off = hz_arr_offset(bb, i);
        char *at = b + (off - at0);
        size_t bytes = (size_t)(hz_arr_offset(bb, e) - off);
        if (resident)
            s->home(s->home_ctx, a, i, e - i, at, to_store);
        else if (to_store)
            memcpy(array_base(s, a) + off, at, bytes);
        else
            memcpy(at, array_base(s, a) + off, bytes);
        i = e;
    }
}

void hz_store_get(const hz_store *s, int a, int64_t first, int64_t n, void *dst)
{
    move(s, a, first, n, dst, 0);
}

void hz_store_put(const hz_store *s, int a, int64_t first, int64_t n, const void *src)
{
    move(s, a, first, n, (void *)src, 1);
}

int hz_store_backed(const hz_store *s, int64_t first, int64_t n)
{
    if (s->plan->resident_n == 0 || n <= 0) return 1;
    int resident;
    return run_end(s, first, first + n, &resident) == first + n && !resident;
}

int hz_store_pass(const hz_store *s, unsigned arrays, int write, hz_window_fn fn, void *arg)
{
    int64_t bounce_at[HZ_ARR_N]; /* each state array's place in the bounce buffer */
    hz_store_bounce_bytes(s->plan, bounce_at);
    arrays &= HZ_ARR_STATE;
    for (int a = 0; a < HZ_ARR_N; a++)
        if (block_bytes(s, a) == 0) arrays &= ~HZ_ARR_BIT(a);
    for (int64_t i = 0; i < s->n;) {
        int resident = 0;
        int64_t e = s->plan->resident_n > 0 ? run_end(s, i, s->n, &resident) : s->n;
        if (resident && e - i > s->bounce_n) e = i + s->bounce_n;
        void *ptr[HZ_ARR_N] = {0};
        for (int a = 0; a < HZ_ARR_N; a++) {
            if (!(arrays & HZ_ARR_BIT(a))) continue;
            if (!resident) {
                ptr[a] = array_base(s, a) + hz_arr_offset(block_bytes(s, a), i);
                continue;
            }
            /* the bounce holds the state arrays of bounce_n elements, one after another */
            ptr[a] = s->bounce + bounce_at[a];
            s->home(s->home_ctx, a, i, e - i, ptr[a], 0); /* a write keeps what fn leaves */
        }
        int rc = fn(arg, i, e - i, ptr);
        if (rc) return rc;
        if (resident && write)
            for (int a = 0; a < HZ_ARR_N; a++)
                if (arrays & HZ_ARR_BIT(a)) s->home(s->home_ctx, a, i, e - i, ptr[a], 1);
        i = e;
    }
    return 0;
}
