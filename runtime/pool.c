/* runtime/pool.c - one fixed pool of worker threads for the host optimizer and the
 * store's bulk work. A job splits [0, n) into one contiguous chunk per thread; the
 * caller works on chunk 0 and waits for the rest. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

struct hz_pool {
    int threads;
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    hz_task_fn fn;
    void *arg;
    int64_t n;
    unsigned generation;  /* bumped per job */
    int pending;          /* workers still running the current job */
    int quit;
};

typedef struct worker_arg {
    hz_pool *pool;
    int index;
} worker_arg;

static void run_chunk(hz_pool *p, int index)
{
    int64_t per = (p->n + p->threads - 1) / p->threads;
    int64_t b = per * index, e = b + per < p->n ? b + per : p->n;
    if (b < e) p->fn(p->arg, b, e);
}

static void *worker(void *varg)
{
    worker_arg *wa = varg;
    hz_pool *p = wa->pool;
    int index = wa->index;
    free(wa);
    unsigned seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->generation == seen) pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->quit) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        run_chunk(p, index);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Test hook: HZ_TEST_FAIL_THREAD=N makes the Nth worker thread this process asks for
 * fail to start (EAGAIN), as it does when the system is out of threads; tests/test_robust.sh
 * uses it. 0 when unset. */
static int fail_thread_n(void)
{
    const char *v = getenv("HZ_TEST_FAIL_THREAD");
    return v ? atoi(v) : 0;
}

/* Start worker i, or return the error number. */
static int start_worker(hz_pool *p, int i)
{
    static int started_n; /* worker starts asked for in this process, for the test hook */
    if (++started_n == fail_thread_n()) return EAGAIN;
    worker_arg *wa = malloc(sizeof(*wa));
    if (!wa) return ENOMEM;
    wa->pool = p;
    wa->index = i;
    int rc = pthread_create(&p->tid[i], NULL, worker, wa);
    if (rc != 0) free(wa);
    return rc;
}

/* NULL after saying why on stderr when a thread cannot start (or out of memory); the
 * workers started so far are stopped again. */
hz_pool *hz_pool_new(int threads)
{
    hz_pool *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->threads = threads < 1 ? 1 : threads;
    p->tid = calloc((size_t)p->threads, sizeof(pthread_t));
    if (!p->tid) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    for (int i = 1; i < p->threads; i++) {
        int rc = start_worker(p, i);
        if (rc == 0) continue;
        fprintf(stderr, "train: error: cannot start worker thread %d of %d: %s; raise the "
                        "process limit (ulimit -u), or run fewer threads (--threads for the "
                        "host optimizer; one a rank for a plan of several GPUs)\n",
                i + 1, p->threads, strerror(rc));
        p->threads = i; /* hz_pool_free joins the i - 1 started */
        hz_pool_free(p);
        return NULL;
    }
    return p;
}

void hz_pool_run(hz_pool *p, hz_task_fn fn, void *arg, int64_t n)
{
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->pending = p->threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    run_chunk(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

int hz_pool_threads(const hz_pool *p) { return p->threads; }

void hz_pool_free(hz_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->threads; i++) pthread_join(p->tid[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    free(p->tid);
    free(p);
}
