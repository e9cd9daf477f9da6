/* runtime/exec.c - the executor: walks the generated op list of one step, dispatches each
 * device op by kind to the backend's function for it (hz_backend.ops) in issue order, and
 * runs the host ops (AdamW per unit) on the optimizer thread, so the update of step s
 * overlaps the forward of step s+1. With several ranks (rt.h "Ranks") each rank's thread
 * walks the same list on its own micro-batches, the backend sums the gradients over the
 * ranks before each STORE_G (hz_backend.reduce), and the one optimizer thread updates the
 * one host store from rank 0's copies. With several hosts (hosts.h) each host's ranks run
 * its share of the step, the backend's reduce sums over the hosts too, and the loss is
 * summed over them.
 * Contract: LOAD_W of unit u in step s+1 is issued (on every rank) only after OPT(u) of
 * step s; a held unit's OPT of step s runs on the gradients its FETCH_G copied in step s+1
 * (or a drain), and only once a checkpoint of s steps being written (ckpt_async.c) holds
 * u's state.
 * A step whose loss or gradient norm is not finite is skipped (no unit updated) when the
 * update waits for the norm (hz_exec_update_waits_norm). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "data.h"
#include "hfmap.h"
#include "hz_layout.h"
#include "rt.h"

/* Test hook: HZ_TEST_NAN_STEPS=A-B (1-based, inclusive; A alone: one step) makes the loss
 * and gradient norm of those steps NaN, as a diverging step's are; tests/test_robust.sh
 * uses it. Both 0 when unset. */
static int64_t test_nan_first, test_nan_last;

static void read_test_hooks(void)
{
    const char *v = getenv("HZ_TEST_NAN_STEPS");
    if (!v) return;
    char *end;
    test_nan_first = test_nan_last = strtoll(v, &end, 10);
    if (*end == '-') test_nan_last = strtoll(end + 1, NULL, 10);
}

int hz_exec_update_waits_norm(const hz_ctx *c)
{
    return c->plan->train.grad_clip != 0 || c->optim.grad_clip != 0;
}

/* The update of step STEP from its gradient norm NORM: 1 when it is skipped (a non-finite
 * step whose update waits for the norm), else 0 with the learning rate and the clipping
 * scale. The host and the device updates both take it from here. */
static int update_of(const hz_ctx *c, int64_t step, double norm, float *lr, float *gscale)
{
    /* a non-finite step leaves the moments and masters as they are; queued early (no
     * clipping) the norm here is an older step's and says nothing */
    if (hz_exec_update_waits_norm(c) && !isfinite(norm)) return 1;
    *lr = hz_lr_at(&c->optim, step);
    *gscale = 1.0f;
    if (c->optim.grad_clip > 0 && norm > c->optim.grad_clip)
        *gscale = (float)(c->optim.grad_clip / (norm + 1e-6));
    return 0;
}

/* Before the update of step STEP of unit U: a checkpoint of STEP steps done being written
 * must have written U's state (the lock is not held). */
static void wait_unit_saved(hz_ctx *c, int u, int64_t step)
{
    pthread_mutex_lock(&c->mu);
    while (c->save_step == step && c->save_pending[u] > 0) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

/* The optimizer thread: for each queued step, the host OPT ops in schedule order. */
static void *opt_main(void *arg)
{
    hz_ctx *c = arg;
    const hz_plan *p = c->plan;
    pthread_mutex_lock(&c->mu);
    int64_t done_step = c->opt_done_before; /* updates before this thread started are done */
    for (;;) {
        while (!c->opt_quit && c->opt_queued_step <= done_step) pthread_cond_wait(&c->cv, &c->mu);
        if (c->opt_queued_step <= done_step) break;
        int64_t step = c->opt_queued_step;
        double norm = c->grad_norm;
        pthread_mutex_unlock(&c->mu);
        float lr = 0.0f, gscale = 1.0f;
        int skip = update_of(c, step, norm, &lr, &gscale);
        for (int i = 0; i < p->op_n; i++) {
            const hz_op *o = &p->ops[i];
            if (o->kind != HZ_OPT || o->stream != HZ_HOST) continue;
            int fetch = c->fetch_op[o->unit];
            if (fetch >= 0) { /* a held unit: its gradients' copy is issued first */
                pthread_mutex_lock(&c->mu);
                while (c->fetched_step[o->unit] < step) pthread_cond_wait(&c->cv, &c->mu);
                pthread_mutex_unlock(&c->mu);
            }
            for (int w = 0; w < HZ_OP_WAITS; w++)
                if (o->wait[w] >= 0) c->be->wait_op(c, 0, o->wait[w]); /* rank 0's copies */
            wait_unit_saved(c, o->unit, step);
            double t0 = hz_now_s();
            const float *grads = fetch >= 0 ? c->gstage[p->ops[fetch].gslot] : NULL;
            int64_t bad = skip ? 0
                               : hz_adamw_unit_grads(&c->store, p, o->unit, grads, &c->optim, lr,
                                                     gscale, step + 1, c->pool);
            pthread_mutex_lock(&c->mu);
            c->nonfinite_n += bad;
            c->opt_t0_s[(step % 2) * p->unit_n + o->unit] = t0;
            c->opt_t1_s[(step % 2) * p->unit_n + o->unit] = hz_now_s();
            c->unit_done_step[o->unit] = step;
            pthread_cond_broadcast(&c->cv);
            pthread_mutex_unlock(&c->mu);
        }
        done_step = step;
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* The two staging slots of the held units' gradients, touched and pinned as the store. */
static int alloc_stage(hz_ctx *c)
{
    size_t bytes = (size_t)hz_stage_slot_bytes(c->plan);
    for (int j = 0; j < 2; j++) {
        c->gstage[j] = aligned_alloc(HZ_STORE_PAGE, bytes);
        if (!c->gstage[j]) {
            fprintf(stderr, "train: error: cannot allocate the %.2f GiB gradient staging for "
                            "the held units\n", 2.0 * (double)bytes / 1073741824.0);
            return -1;
        }
        memset(c->gstage[j], 0, bytes);
        if (c->be->host_pin && c->be->host_pin(c->gstage[j], bytes) != 0) {
            free(c->gstage[j]);
            c->gstage[j] = NULL;
            return -1;
        }
    }
    return 0;
}

int hz_exec_init(hz_ctx *c, const hz_plan *p, int threads)
{
    c->plan = p;
    c->be = &hz_backend_impl;
    c->rank_n = (int)hz_gpus(&p->dims);
    /* the last op of the step's own work on the D2H stream, which ends the step (a FETCH_G
     * copies the step before's gradients), and the last device update (-1: none) */
    c->last_d2h_op = c->last_device_update = -1;
    for (int i = 0; i < p->op_n; i++) {
        const hz_op *o = &p->ops[i];
        if (o->stream == HZ_D2H && o->kind != HZ_OPT && o->kind != HZ_FETCH_G) c->last_d2h_op = i;
        if (o->kind == HZ_OPT && o->stream != HZ_HOST) c->last_device_update = i;
    }
    read_test_hooks();
    if (!(c->pool = hz_pool_new(threads))) exit(1); /* it said why */
    if ((c->rank_n > 1 || c->hosts.n > 1) && !c->be->reduce) {
        fprintf(stderr, "train: error: the %s backend runs one rank, and the plan has %d "
                        "(internal error: train_check.c refuses such a plan first)\n",
                c->be->name, c->rank_n);
        return -1;
    }
    if (c->rank_n > 1 && !(c->rank_pool = hz_pool_new(c->rank_n))) exit(1); /* it said why */
    c->unit_done_step = calloc((size_t)p->unit_n, sizeof(int64_t));
    c->opt_t0_s = calloc(2 * (size_t)p->unit_n, sizeof(double));
    c->opt_t1_s = calloc(2 * (size_t)p->unit_n, sizeof(double));
    c->op_t0_ms = calloc((size_t)p->op_n, sizeof(float));
    c->op_t1_ms = calloc((size_t)p->op_n, sizeof(float));
    c->fetch_op = calloc((size_t)p->unit_n, sizeof(int));
    c->fetched_step = calloc((size_t)p->unit_n, sizeof(int64_t));
    if (!c->fetch_op || !c->fetched_step) return -1;
    for (int u = 0; u < p->unit_n; u++) c->fetch_op[u] = -1;
    for (int i = 0; i < p->op_n; i++)
        if (p->ops[i].kind == HZ_FETCH_G) c->fetch_op[p->ops[i].unit] = i;
    c->save_pending = calloc((size_t)p->unit_n, sizeof(int));
    c->save_step = -1;
    if (c->kprof && (!c->be->kprof_begin || !c->be->kprof_end)) {
        fprintf(stderr, "train: error: the %s backend cannot profile kernels (internal error)\n",
                c->be->name);
        return -1;
    }
    for (int k = 0; k < HZ_OP_KIND_N; k++)
        if (!c->be->ops[k]) {
            fprintf(stderr, "train: error: the %s backend has no %s op (internal error)\n",
                    c->be->name, hz_op_names[k]);
            return -1;
        }
    if (!c->pool || !c->unit_done_step || !c->opt_t0_s || !c->save_pending ||
        !c->opt_t1_s || !c->op_t0_ms || !c->op_t1_ms)
        return -1;
    hz_exec_resume_at(c, 0); /* nothing applied yet, nothing queued */
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    double t0 = hz_now_s();
    if (hz_store_alloc(&c->store, p, c->be->host_pin, c->be->host_unpin) != 0) return -1;
    if (p->fetch_n > 0 && alloc_stage(c) != 0) return -1;
    double t1 = hz_now_s();
    printf("setting up: host store %.2f GiB allocated%s in %.1f s\n", c->store.bytes / 1073741824.0,
           c->be->caps->pinned_host ? " and pinned" : "", t1 - t0);
    fflush(stdout);
    int rc = c->be->init(c);
    c->store.home = c->be->home_copy; /* the resident units' state lives with the backend */
    c->store.home_ctx = c;
    if (rc == 0) printf("setting up: %s backend ready in %.1f s\n", c->be->name, hz_now_s() - t1);
    return rc;
}

void hz_exec_resume_at(hz_ctx *c, int64_t step)
{
    c->step = step;
    for (int u = 0; u < c->plan->unit_n; u++) c->unit_done_step[u] = c->fetched_step[u] = step - 1;
    c->opt_queued_step = step - 1;
    c->stage_unit[0] = c->stage_unit[1] = -1;
}

/* FETCH_G op i of RANK, of the gradients of step c->step - 1: issued on rank 0 (which holds
 * their sum) when that update is still to come and they are not copied yet, once its
 * staging slot's last gradients are used; else, with MARK, only its marks (the step's
 * timeline and waits have every op). */
static void issue_fetch(hz_ctx *c, int rank, int i, int mark)
{
    const hz_op *o = &c->plan->ops[i];
    int64_t g = c->step - 1;
    int j = o->gslot;
    pthread_mutex_lock(&c->mu);
    int needed = rank == 0 && g >= 0 && c->unit_done_step[o->unit] < g &&
                 c->fetched_step[o->unit] < g;
    while (needed && c->stage_unit[j] >= 0 && c->unit_done_step[c->stage_unit[j]] < c->stage_step[j])
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    if (!needed && !mark) return;
    c->be->op_begin(c, rank, i);
    if (needed) c->be->ops[o->kind](c, rank, o);
    c->be->op_end(c, rank, i);
    if (!needed) return;
    pthread_mutex_lock(&c->mu);
    c->fetched_step[o->unit] = g;
    c->stage_unit[j] = o->unit;
    c->stage_step[j] = g;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Block until unit u holds the update of step s-1 (its weights may stream again). */
static void wait_unit_updated(hz_ctx *c, int u)
{
    pthread_mutex_lock(&c->mu);
    while (c->unit_done_step[u] < c->step - 1) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

/* Let the optimizer thread apply step c->step (with its gradient norm when known). */
static void queue_step(hz_ctx *c, const double *norm)
{
    pthread_mutex_lock(&c->mu);
    if (norm) c->grad_norm = *norm;
    c->opt_queued_step = c->step;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int64_t hz_exec_trained(const hz_plan *p, const int32_t *targets)
{
    int64_t n = 0;
    for (int64_t i = 0; i < p->dims.step_tokens; i++) n += targets[i] != HZ_DATA_IGNORE;
    return n;
}

/* Issue device op i on RANK: ordered after its waits, its work (a STORE_G with several
 * ranks: after the gradients' sum over them), then its completion mark. */
static void issue(hz_ctx *c, int rank, int i)
{
    const hz_op *o = &c->plan->ops[i];
    c->be->op_begin(c, rank, i);
    if (o->kind == HZ_STORE_G && (c->rank_n > 1 || c->hosts.n > 1)) c->be->reduce(c, rank, o);
    c->be->ops[o->kind](c, rank, o);
    c->be->op_end(c, rank, i);
}

/* Run FN(ARG, r, r + 1) for every rank r at once, each on its rank's thread, and return
 * when all are done; with one rank, FN(ARG, 0, 1) on this thread. */
static void for_ranks(hz_ctx *c, hz_task_fn fn, void *arg)
{
    if (c->rank_pool)
        hz_pool_run(c->rank_pool, fn, arg, c->rank_n);
    else
        fn(arg, 0, 1);
}

/* One step's work for the ranks: their tokens, what they issue, what they give back. */
typedef struct rank_step {
    hz_ctx *c;
    const int32_t *inputs, *targets; /* the whole step's */
    float dscale;
    int skip;                        /* device updates: the step is skipped */
    double *loss;                    /* eval: (rank_n) loss sums */
    float *logits;                   /* eval: NULL, or the whole step's */
} rank_step;

/* A rank's device ops of the step (rank_step; [rank, end) is one rank), in schedule order. */
static void rank_issue_step(void *arg, int64_t rank, int64_t end)
{
    (void)end;
    const rank_step *a = arg;
    hz_ctx *c = a->c;
    const hz_plan *p = c->plan;
    int r = (int)rank;
    int64_t share = hz_gpu_step_tokens(&p->dims), at = (c->hosts.rank * c->rank_n + r) * share;
    c->be->begin_step(c, r, a->inputs + at, a->targets + at, a->dscale);
    for (int i = 0; i < p->op_n; i++) {
        const hz_op *o = &p->ops[i];
        if (o->stream == HZ_HOST || o->kind == HZ_OPT) continue; /* updates: below */
        if (o->kind == HZ_FETCH_G) {
            issue_fetch(c, r, i, 1);
            continue;
        }
        if (o->kind == HZ_LOAD_W) wait_unit_updated(c, o->unit);
        issue(c, r, i);
    }
}

/* A rank's device updates of the resident units (rank_step), in schedule order; rank 0
 * marks each unit updated (every rank's copy is the same). */
static void rank_issue_updates(void *arg, int64_t rank, int64_t end)
{
    (void)end;
    const rank_step *a = arg;
    hz_ctx *c = a->c;
    const hz_plan *p = c->plan;
    int r = (int)rank;
    for (int i = 0; i < p->op_n; i++) {
        const hz_op *o = &p->ops[i];
        if (o->kind != HZ_OPT || o->stream == HZ_HOST) continue;
        wait_unit_saved(c, o->unit, c->step);
        c->be->op_begin(c, r, i); /* a skipped update still marks its times */
        if (!a->skip) c->be->ops[o->kind](c, r, o);
        c->be->op_end(c, r, i);
        if (r != 0) continue;
        pthread_mutex_lock(&c->mu);
        c->unit_done_step[o->unit] = c->step;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
}

/* The resident units' updates of the step just computed, on every rank's device in schedule
 * order, once its norm is known (NaN: not finite); the next step's ops follow them on the
 * compute stream. Returns the last op issued, or -1. */
static int issue_device_updates(hz_ctx *c, double norm)
{
    float lr = 0.0f, gscale = 1.0f;
    rank_step a = {.c = c};
    a.skip = update_of(c, c->step, norm, &lr, &gscale);
    c->opt_lr = lr;
    c->opt_gscale = gscale;
    c->opt_t = c->step + 1;
    if (c->last_device_update >= 0) for_ranks(c, rank_issue_updates, &a);
    return c->last_device_update;
}

double hz_exec_step(hz_ctx *c, const int32_t *inputs, const int32_t *targets,
                    double *grad_norm)
{
    const hz_plan *p = c->plan;
    int64_t trained = hz_exec_trained(p, targets);
    if (!c->opt_started) { /* started here, so a resumed run's first step is known */
        c->opt_done_before = c->step - 1;
        if (pthread_create(&c->opt_thread, NULL, opt_main, c) != 0) {
            fprintf(stderr, "train: error: cannot start the optimizer thread\n");
            exit(1);
        }
        c->opt_started = 1;
    }
    int kp = c->kprof && c->step == c->kprof_step;
    if (kp) {
        memset(c->kprof, 0, sizeof(*c->kprof));
        c->kprof->step = c->step;
        c->be->kprof_begin(c, c->kprof);
    }
    rank_step a = {c, inputs, targets, trained > 0 ? 1.0f / (float)trained : 0.0f, 0, NULL,
                   NULL};
    for_ranks(c, rank_issue_step, &a);
    /* Without clipping in the plan and in this run, each update waits only for its own
     * gradients (the op list says so): queue the step now, so the updates overlap the
     * backward. With clipping (in either) the step is queued once the norm is known. */
    if (p->train.grad_clip == 0 && c->optim.grad_clip == 0) queue_step(c, NULL);
    /* the step's results: every device op done; the loss summed over the ranks in rank
     * order, the norm rank 0's (of the summed gradients) */
    int last_device_op = c->last_d2h_op;
    for (int r = 0; r < c->rank_n; r++) c->be->wait_op(c, r, last_device_op);
    c->step_end_s = hz_now_s();
    double loss_sum = 0.0, sumsq = 0.0;
    for (int r = 0; r < c->rank_n; r++) {
        double l, ss;
        c->be->step_result(c, r, &l, &ss);
        loss_sum = r == 0 ? l : loss_sum + l;
        if (r == 0) sumsq = ss;
    }
    /* several hosts: the loss summed over them (each host's norm is of the gradients
     * summed over all hosts already, the same bits on each) */
    hz_hosts_sum_f64(&c->hosts, &loss_sum, 1);
    if (c->step + 1 >= test_nan_first && c->step + 1 <= test_nan_last) loss_sum = sumsq = NAN;
    double norm = sqrt(sumsq);
    /* a non-finite loss with a finite norm is skipped too: the optimizer sees NaN */
    double opt_norm = isfinite(loss_sum) ? norm : NAN;
    queue_step(c, &opt_norm);
    int last_update = issue_device_updates(c, opt_norm);
    /* after queueing, so that the updates need not wait for the profile and the trace (which
     * read the device updates' times too) */
    if (c->profile || kp) {
        if (last_update >= 0) c->be->wait_op(c, 0, last_update);
        c->profiled = c->profile && hz_profile_step(c, c->trace, c->profile);
    }
    if (kp) { /* the rows of every op just waited for; their busy times beside them */
        c->be->kprof_end(c);
        if (c->profiled)
            memcpy(c->kprof->busy_ms, c->profile->busy_ms, sizeof c->kprof->busy_ms);
        c->kprofiled = 1;
    }
    c->step++;
    *grad_norm = norm;
    return trained > 0 ? loss_sum / (double)trained : 0.0;
}

/* A rank's forward-only loss sum of its share of the tokens (rank_step). */
static void rank_eval(void *arg, int64_t rank, int64_t end)
{
    (void)end;
    const rank_step *a = arg;
    hz_ctx *c = a->c;
    const hz_dims *d = &c->plan->dims;
    int64_t share = hz_gpu_step_tokens(d), at = (c->hosts.rank * c->rank_n + rank) * share;
    a->loss[rank] = c->be->eval(c, (int)rank, a->inputs + at, a->targets + at,
                                a->logits ? a->logits + at * d->V : NULL);
}

double hz_exec_eval(hz_ctx *c, const int32_t *inputs, const int32_t *targets, float *logits)
{
    double one, *loss = c->rank_n > 1 ? calloc((size_t)c->rank_n, sizeof(double)) : &one;
    if (!loss) {
        fprintf(stderr, "train: error: out of memory for the evaluation's loss sums\n");
        exit(1);
    }
    rank_step a = {c, inputs, targets, 0.0f, 0, loss, logits};
    for_ranks(c, rank_eval, &a);
    double sum = loss[0];
    for (int r = 1; r < c->rank_n; r++) sum += loss[r];
    if (loss != &one) free(loss);
    hz_hosts_sum_f64(&c->hosts, &sum, 1);
    return sum;
}

void hz_exec_drain(hz_ctx *c)
{
    /* the held units' gradients of the last step, which no next step will fetch */
    for (int i = 0; i < c->plan->op_n; i++)
        if (c->plan->ops[i].kind == HZ_FETCH_G) issue_fetch(c, 0, i, 0);
    pthread_mutex_lock(&c->mu);
    for (int u = 0; u < c->plan->unit_n; u++)
        while (c->unit_done_step[u] < c->step - 1) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

void hz_exec_free(hz_ctx *c)
{
    if (c->pool) {
        if (c->saving) { /* it needs the optimizer thread to apply what it waits for */
            int64_t step, bytes;
            double sec;
            char err[HZ_HF_ERR_BYTES];
            hz_ckpt_async_wait(c, &step, &sec, &bytes, err);
        }
        if (c->opt_started) {
            pthread_mutex_lock(&c->mu);
            c->opt_quit = 1;
            pthread_cond_broadcast(&c->cv);
            pthread_mutex_unlock(&c->mu);
            pthread_join(c->opt_thread, NULL);
        }
        c->be->destroy(c);
        if (c->rank_pool) hz_pool_free(c->rank_pool);
        for (int j = 0; j < 2; j++) {
            if (c->gstage[j] && c->be->host_unpin) c->be->host_unpin(c->gstage[j]);
            free(c->gstage[j]);
        }
        hz_store_free(&c->store);
        hz_pool_free(c->pool);
    }
    hz_hosts_close(&c->hosts);
    free(c->unit_done_step);
    free(c->opt_t0_s);
    free(c->opt_t1_s);
    free(c->op_t0_ms);
    free(c->op_t1_ms);
    free(c->fetch_op);
    free(c->fetched_step);
    free(c->save_pending);
    memset(c, 0, sizeof(*c));
}

double hz_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int64_t hz_proc_bytes(const char *file, const char *key)
{
    FILE *f = fopen(file, "r");
    if (!f) return 0;
    char line[256];
    long long kb = 0;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0 && sscanf(line + klen, " %lld", &kb) == 1) break;
    fclose(f);
    return (int64_t)kb * 1024;
}

int64_t hz_peak_rss_bytes(void) { return hz_proc_bytes("/proc/self/status", "VmHWM:"); }

void hz_touch_own_code(void)
{
    char exe[4096], line[4096 + 256];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    FILE *f = n > 0 ? fopen("/proc/self/maps", "r") : NULL;
    if (!f) return;
    exe[n] = '\0';
    long page = sysconf(_SC_PAGESIZE);
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        char perm[5];
        int at = 0;
        if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", &a, &b, perm, &at) < 3 || at == 0) continue;
        line[strcspn(line, "\n")] = '\0';
        if (perm[0] != 'r' || strcmp(line + at, exe) != 0) continue;
        for (unsigned long q = a; q < b; q += (unsigned long)page) (void)*(volatile const char *)q;
    }
    fclose(f);
}
