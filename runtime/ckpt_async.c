/* runtime/ckpt_async.c - a checkpoint written while training goes on. The save of step N
 * (N steps done) runs on a thread of its own with the parallel engine; each chunk of its
 * files waits until every unit whose state it holds has step N - 1's update applied
 * (unit_done_step), and the executor holds step N's update of a unit until every chunk
 * holding that unit is written (save_pending, wait_unit_saved in exec.c). So the checkpoint
 * is the state after exactly N steps, bit for bit what a save with training stopped writes,
 * and the step waits only where the disk is slower than the training. The chunks are taken
 * in the order the schedule updates their units, so the first units updated are written
 * first. step-N.tmp is renamed to step-N only when everything is fsync'd. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ckpt.h"

struct hz_ckpt_async {
    hz_ctx *c;
    hz_ckpt_job job;
    int keep, threads, rc;
    long delay_ms;               /* HZ_TEST_SAVE_DELAY_MS */
    int64_t steps, bytes;
    int64_t *rank;               /* per unit: where its update comes in the schedule */
    pthread_t tid;
    atomic_int done;
    double t0, t1;
    char err[HZ_HF_ERR_BYTES];
};

static int64_t chunk_rank(void *arg, int file, int64_t off, int64_t n)
{
    const hz_ckpt_async *a = arg;
    int first, last;
    if (!hz_ckpt_writer_units(a->job.w, file, off, n, &first, &last)) return -1; /* headers */
    int64_t r = INT64_MAX;
    for (int u = first; u <= last; u++) r = a->rank[u] < r ? a->rank[u] : r;
    return r;
}

/* Test hook: HZ_TEST_SAVE_DELAY_MS=N makes every chunk of a save wait N ms more before it
 * is read, as a slow disk would, so that tests/test_ckpt_async.sh sees the next step's
 * updates run while the save is under way. 0 when unset. */
static long test_delay_ms(void)
{
    const char *v = getenv("HZ_TEST_SAVE_DELAY_MS");
    return v ? strtol(v, NULL, 10) : 0;
}

/* A chunk is read once its units hold step N - 1's update. */
static void chunk_before(void *arg, int file, int64_t off, int64_t n)
{
    hz_ckpt_async *a = arg;
    hz_ctx *c = a->c;
    int first, last;
    if (!hz_ckpt_writer_units(a->job.w, file, off, n, &first, &last)) return;
    pthread_mutex_lock(&c->mu);
    for (int u = first; u <= last; u++)
        while (c->unit_done_step[u] < a->steps - 1) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    if (a->delay_ms > 0) {
        struct timespec ts = {a->delay_ms / 1000, (a->delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Written: its units may take step N's update once no other chunk holds them. */
static void chunk_after(void *arg, int file, int64_t off, int64_t n)
{
    hz_ckpt_async *a = arg;
    hz_ctx *c = a->c;
    int first, last;
    if (!hz_ckpt_writer_units(a->job.w, file, off, n, &first, &last)) return;
    pthread_mutex_lock(&c->mu);
    for (int u = first; u <= last; u++) c->save_pending[u]--;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void *save_main(void *arg)
{
    hz_ckpt_async *a = arg;
    hz_ctx *c = a->c;
    hz_pio_sched sched = {chunk_rank, chunk_before, chunk_after, a};
    a->rc = hz_ckpt_writer_run(a->job.w, a->threads, &sched, a->err);
    /* every chunk is written (or the run failed): no update waits for this save any more */
    pthread_mutex_lock(&c->mu);
    c->save_step = -1;
    memset(c->save_pending, 0, sizeof(int) * (size_t)c->plan->unit_n);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (a->rc == 0) a->rc = hz_ckpt_commit(&a->job, a->keep, a->err);
    hz_ckpt_end(&a->job, a->rc != 0);
    a->t1 = hz_now_s();
    atomic_store(&a->done, 1);
    return NULL;
}

int hz_ckpt_async_start(hz_ctx *c, const char *out_dir, const hz_resume *r, int keep, char *err)
{
    const hz_plan *p = c->plan;
    hz_ckpt_async *a = calloc(1, sizeof *a);
    if (!a || !(a->rank = malloc(sizeof(int64_t) * (size_t)p->unit_n))) {
        free(a);
        snprintf(err, HZ_HF_ERR_BYTES, "out of memory for a checkpoint");
        return -1;
    }
    a->c = c;
    a->keep = keep;
    a->threads = HZ_CKPT_IO_THREADS;
    a->delay_ms = test_delay_ms();
    a->steps = r->step;
    a->t0 = hz_now_s();
    atomic_init(&a->done, 0);
    for (int u = 0; u < p->unit_n; u++) a->rank[u] = p->op_n + u; /* no update: last */
    for (int i = p->op_n - 1; i >= 0; i--)
        if (p->ops[i].kind == HZ_OPT) a->rank[p->ops[i].unit] = i;
    if (hz_ckpt_begin(&a->job, &c->store, p, out_dir, r, err) != 0) {
        hz_ckpt_end(&a->job, 1);
        free(a->rank);
        free(a);
        return -1;
    }
    a->bytes = hz_ckpt_writer_bytes(a->job.w);
    /* the gate, before the next step can queue an update: every unit is held by the
     * chunks that hold its state */
    pthread_mutex_lock(&c->mu);
    memset(c->save_pending, 0, sizeof(int) * (size_t)p->unit_n);
    for (int f = 0; f < hz_ckpt_writer_files(a->job.w); f++) {
        int64_t bytes = hz_ckpt_writer_file_bytes(a->job.w, f);
        for (int64_t off = 0; off < bytes; off += HZ_PIO_CHUNK) {
            int first, last;
            int64_t n = bytes - off < HZ_PIO_CHUNK ? bytes - off : HZ_PIO_CHUNK;
            if (hz_ckpt_writer_units(a->job.w, f, off, n, &first, &last))
                for (int u = first; u <= last; u++) c->save_pending[u]++;
        }
    }
    c->save_step = r->step;
    pthread_mutex_unlock(&c->mu);
    if (pthread_create(&a->tid, NULL, save_main, a) != 0) {
        save_main(a); /* no thread: save now, with training stopped */
        a->tid = pthread_self();
    }
    c->saving = a;
    return 0;
}

int hz_ckpt_async_done(const hz_ctx *c) { return c->saving && atomic_load(&c->saving->done); }

int hz_ckpt_async_wait(hz_ctx *c, int64_t *step, double *seconds, int64_t *bytes, char *err)
{
    hz_ckpt_async *a = c->saving;
    if (!a) return 1;
    if (!pthread_equal(a->tid, pthread_self())) pthread_join(a->tid, NULL);
    int rc = a->rc;
    *step = a->steps;
    *seconds = a->t1 - a->t0;
    *bytes = a->bytes;
    if (rc) snprintf(err, HZ_HF_ERR_BYTES, "%s", a->err);
    c->saving = NULL;
    free(a->rank);
    free(a);
    return rc;
}
