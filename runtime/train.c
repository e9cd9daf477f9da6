/* runtime/train.c - the trainer's main() (its flags: train_args.c): data, the step loop,
 * logging, the live progress line and the final summary (its profile and memory lines:
 * train_summary.c).
 * The plan comes from the generated schedule (hzg_plan). Errors stop the trainer at
 * once with a message that says what to do. SIGINT, SIGTERM and SIGHUP end the run after
 * the current step (with a checkpoint under --out); a second one ends it at once. */
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "data.h"
#include "hfmap.h"
#include "optstate.h"
#include "metrics.h"
#include "sample.h"
#include "rt.h"

#include "train_args.h"
#include "train_check.h"
#include "train_raw.h"
#include "train_save.h"
#include "train_summary.h"

/* ---- signals: the first ends the run after the current step, a second at once ---- */

/* the first signal's number, 0 none; a lock-free atomic, so any thread's handler may set
 * it and the step loop sees it */
static atomic_int stop_signal;

static const char *signal_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "signal";
}

/* Async-signal-safe only: a flag, write(2) and _exit(2). Any thread may run it. */
static void on_signal(int sig)
{
    if (stop_signal) {
        static const char msg[] = "train: second signal: stopping now, without saving\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
        _exit(128 + sig);
    }
    stop_signal = sig;
    static const char msg[] = "train: signal received: finishing this step, then stopping "
                              "(with a checkpoint under --out; another signal stops at once)\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
}

/* A signal ignored when the trainer started (nohup, a background job's SIGINT) stays
 * ignored. */
static void catch_signals(void)
{
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old, sa;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        sigaction(sigs[i], &sa, NULL);
    }
}

/* One step's input and target ids, (step_tokens) each. */
typedef struct step_tokens {
    int32_t *inputs, *targets;
} step_tokens;

/* A step's token buffers, written once now: resident before the first step (as in the
 * probe's process, which holds them too), not a growth during it. */
static step_tokens step_tokens_alloc(const hz_dims *dm)
{
    step_tokens tk = {malloc((size_t)dm->step_tokens * sizeof(int32_t)),
                      malloc((size_t)dm->step_tokens * sizeof(int32_t))};
    if (!tk.inputs || !tk.targets) hz_train_die("out of memory for the step's tokens", NULL);
    memset(tk.inputs, 0, (size_t)dm->step_tokens * sizeof(int32_t));
    memset(tk.targets, 0, (size_t)dm->step_tokens * sizeof(int32_t));
    return tk;
}

static void fill_step(const hz_plan *p, hz_data *d, step_tokens *tk)
{
    const hz_dims *dm = &p->dims;
    for (int64_t r = 0; r < dm->step_tokens / dm->T; r++)
        hz_data_next_row(d, tk->inputs + r * dm->T, tk->targets + r * dm->T, dm->T);
}

static double evaluate(hz_ctx *c, hz_data *val, int64_t batches, step_tokens *tk,
                       hz_metrics *m, int64_t steps)
{
    hz_exec_drain(c);
    hz_data_seek(val, 0);
    double sum = 0.0;
    int64_t n = 0;
    for (int64_t b = 0; b < batches; b++) {
        fill_step(c->plan, val, tk);
        sum += hz_exec_eval(c, tk->inputs, tk->targets, NULL);
        n += hz_exec_trained(c->plan, tk->targets);
    }
    double loss = n > 0 ? sum / (double)n : 0.0; /* the mean over trained targets, as in training */
    hz_metrics_eval(m, steps, loss);
    return loss;
}

/* The logits of the first validation step, (step_tokens, V) fp32, as a .npy file. */
static void dump_logits(hz_ctx *c, hz_data *val, const char *path, step_tokens *tk)
{
    const hz_dims *d = &c->plan->dims;
    size_t n = (size_t)(d->step_tokens * d->V);
    float *buf = malloc(n * sizeof(float));
    if (!buf) hz_train_die("out of memory for --dump-logits", NULL);
    hz_exec_drain(c);
    hz_data_seek(val, 0);
    fill_step(c->plan, val, tk);
    hz_exec_eval(c, tk->inputs, tk->targets, buf);
    /* .npy version 1.0: magic, header length, a dict padded with spaces to 64 bytes */
    char hdr[128];
    int len = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                       (long long)d->step_tokens, (long long)d->V);
    int total = (10 + len + 1 + 63) / 64 * 64;
    memset(hdr + len, ' ', (size_t)(total - 10 - len - 1));
    hdr[total - 10 - 1] = '\n';
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)((total - 10) & 255),
                             (unsigned char)((total - 10) >> 8)};
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(pre, 1, 10, f) == 10 && fwrite(hdr, 1, (size_t)(total - 10), f) == (size_t)(total - 10) &&
             fwrite(buf, sizeof(float), n, f) == n;
    if (f && fclose(f) != 0) ok = 0;
    free(buf);
    if (!ok) hz_train_die("cannot write --dump-logits file", path);
    printf("logits: %s (%lld x %lld float32, the first validation step)\n", path,
           (long long)d->step_tokens, (long long)d->V);
}

/* --sample-every's sampler, or a message and exit. */
static hz_sampler *new_sampler(const hz_plan *p, const train_args *a)
{
    int32_t *prompt;
    int64_t n;
    char err[256];
    if (hz_sample_parse_prompt(a->sample_prompt, p->dims.V, &prompt, &n, err, sizeof err) != 0)
        hz_train_die(err, NULL);
    hz_sampler *s = hz_sample_new(p, prompt, n, a->sample_tokens, a->sample_temperature,
                                  a->sample_top_k, (uint64_t)a->seed);
    free(prompt);
    if (!s) hz_train_die("out of memory for --sample-every (a whole step's logits)", NULL);
    return s;
}

/* The host store, the thread pool and the backend (arena, kernels, streams), as planned;
 * with JOIN, first the run's other hosts where the plan has several (hosts.h). */
static void set_up(hz_ctx *ctx, const hz_plan *p, const train_args *a, int join)
{
    memset(ctx, 0, sizeof *ctx);
    if (join && hz_hosts_join(&ctx->hosts, hz_hosts(&p->dims)) != 0) exit(1);
    if (ctx->hosts.n > 1) { /* the same trainer everywhere, before the backends meet */
        static const char *const what[] = {"plan digest", "rank count"};
        const int64_t v[] = {(int64_t)hz_plan_digest(p), hz_gpus(&p->dims)};
        if (hz_hosts_agree(&ctx->hosts, v, 2, what) != 0) exit(1);
    }
    ctx->optim = a->optim;
    ctx->deterministic = a->deterministic;
    ctx->attention = a->attention;
    ctx->kprof_step = -1; /* main sets the step once a resume has said where the run starts */
    static hz_kprof kprof; /* one run's profile, alive as long as the trainer */
    if (a->profile_kernels >= 0) ctx->kprof = &kprof;
    /* large models take seconds here (pinning 100 GiB): say what is happening */
    printf("setting up: host store %.2f GiB%s, %d optimizer threads\n",
           p->host_store_bytes / 1073741824.0,
           hz_backend_impl.caps->pinned_host ? " pinned" : "", a->threads);
    fflush(stdout);
    if (hz_exec_init(ctx, p, a->threads) != 0) {
        fprintf(stderr, "train: error: cannot set up the plan's memory (%lld host bytes, %lld "
                        "GPU bytes; see above); free memory or plan again with hzc plan "
                        "--gpu-mem/--host-mem for this machine\n",
                (long long)p->host_bytes, (long long)p->gpu_bytes);
        hz_exec_free(ctx);
        exit(1);
    }
    /* the plan's predicted times are a model of the device its ceilings were measured on */
    const char *assumed = p->pred.ceilings_gpu;
    const char *dev = ctx->be->device ? ctx->be->device(ctx) : NULL;
    if (assumed && *assumed && dev && strcmp(assumed, dev) != 0)
        fprintf(stderr, "train: note: the plan's predicted times assume %s; this is %s (train "
                        "--probe measures it for hzc build --ceilings)\n", assumed, dev);
}

/* --probe: the backend measures the rates of hzc's step-time model and writes them. */
static int run_probe(const hz_plan *p, const train_args *a)
{
    printf("hzc %s trainer: %s, --probe: measuring this machine for hzc's step-time model "
           "(docs/plan.md \"Step time\"); nothing is trained\n", HZ_VERSION, p->spec_name);
    hz_ctx ctx;
    set_up(&ctx, p, a, 0); /* one host measures itself */
    /* the process as a trainer's when ready: its weights initialised (by the optimizer
     * threads, whose own memory the process then holds) and its step's token buffers */
    double t0 = hz_now_s();
    hz_store_init(&ctx.store, p, (uint64_t)a->seed, ctx.pool);
    printf("initialised %lld parameters (seed %lld) in %.1f s, as a trainer starts\n",
           (long long)p->params_n, (long long)a->seed, hz_now_s() - t0);
    step_tokens tk = step_tokens_alloc(&p->dims);
    int rc = ctx.be->probe(&ctx, a->probe_out, stdout);
    hz_exec_free(&ctx);
    free(tk.inputs);
    free(tk.targets);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    const hz_plan *p = &hzg_plan;
    const hz_dims *dm = &p->dims;
    train_args a = hz_train_parse_args(argc, argv);
    hz_train_check(p, &a);
    hz_touch_own_code();
    if (a.probe) return run_probe(p, &a);
    char err[512];
    hz_data_opts dopt = {dm->V, dm->step_tokens + 1, (uint64_t)a.data_seed, a.val_fraction,
                         a.val_fraction > 0 ? HZ_DATA_TRAIN : HZ_DATA_ALL};
    hz_data *train = NULL, *val = NULL;
    int64_t val_min = dm->T + 1; /* one row */
    if (a.val_fraction > 0) { /* both parts of one read */
        if (hz_data_open_split(a.data, &dopt, val_min, &train, &val, err) != 0) {
            fprintf(stderr, "train: error: %s\n", err);
            return 1;
        }
    } else if (!(train = hz_data_open_opts(a.data, &dopt, err))) {
        fprintf(stderr, "train: error: %s\n", err);
        return 1;
    }
    if (a.val_data) {
        dopt.min_tokens = val_min;
        if (!(val = hz_data_open_opts(a.val_data, &dopt, err))) {
            fprintf(stderr, "train: error: %s\n", err);
            return 1;
        }
    }
    printf("hzc %s trainer: %s, %lld parameters, %s backend\n", HZ_VERSION, p->spec_name,
           (long long)p->params_n, hz_backend_impl.name);
    printf("step: %lld tokens (%lld micro-batches of %lld x %lld); data: %lld tokens",
           (long long)dm->step_tokens, (long long)dm->n_micro, (long long)dm->B,
           (long long)dm->T, (long long)hz_data_tokens(train));
    if (hz_data_examples(train) > 0)
        printf(" in %lld examples", (long long)hz_data_examples(train));
    printf("\n");
    if (hz_gpus(dm) > 1) /* docs/plan.md "Several GPUs of one host" */
        printf("ranks: %lld ranks of %lld micro-batches each (%lld tokens; rank r runs "
               "micro-batches %lld r to %lld r + %lld), one host store and one host optimizer "
               "for all\n",
               (long long)hz_gpus(dm), (long long)hz_gpu_n_micro(dm),
               (long long)hz_gpu_step_tokens(dm), (long long)hz_gpu_n_micro(dm),
               (long long)hz_gpu_n_micro(dm), (long long)hz_gpu_n_micro(dm) - 1);
    printf("planned: host %lld bytes (%.2f per parameter), GPU arena %lld bytes\n",
           (long long)p->host_bytes, (double)p->host_bytes / (double)p->params_n,
           (long long)p->gpu_bytes);
    printf("optimizer state: %s (Adam moments %.3f bytes per parameter; the fp32 master exact)\n",
           hz_optstate_name(p->optimizer_state), hz_optstate_bytes_per_param(p->optimizer_state));

    hz_ctx ctx;
    double t_init = hz_now_s(); /* initialising billions of weights takes seconds too */
    set_up(&ctx, p, &a, 1);
    if (ctx.hosts.n > 1 && ctx.hosts.rank > 0 && a.out) {
        printf("hosts: host %d writes no checkpoints (host 0 writes the run's; --out %s is "
               "not used here)\n", ctx.hosts.rank, a.out);
        a.out = NULL;
    }
    ctx.store.state_seed = (uint64_t)a.seed; /* a resume takes the checkpoint's */
    step_tokens tk = step_tokens_alloc(dm);
    int64_t first_step = 0;
    int resumed = 0; /* state from a checkpoint, which is saved already */
    char herr[HZ_HF_ERR_BYTES];
    if (a.resume) {
        char dir[4096];
        hz_resume r;
        double t0 = hz_now_s();
        int rc = hz_ckpt_resume(&ctx.store, p, a.resume, a.threads, &r, dir, sizeof dir, herr);
        if (rc == -2)
            hz_train_die(
                "--resume: no checkpoint there (a step-N directory with resume.bin, or a --out "
                "directory holding them)",
                a.resume);
        if (rc != 0) {
            fprintf(stderr, "train: error: --resume: %s\n", herr);
            return 1;
        }
        first_step = r.step;
        resumed = 1;
        if ((int64_t)r.data_seed != a.data_seed) {
            fprintf(stderr, "train: error: --resume: the checkpoint's data order used seed %llu, "
                            "this run %lld: pass --data-seed %llu\n",
                    (unsigned long long)r.data_seed, (long long)a.data_seed,
                    (unsigned long long)r.data_seed);
            return 1;
        }
        hz_exec_resume_at(&ctx, first_step);
        hz_data_seek(train, r.data_pos);
        if (r.state_mode != p->optimizer_state)
            printf("resumed optimizer state: the checkpoint's %s moments converted to this plan's "
                   "%s\n", hz_optstate_names[r.state_mode], hz_optstate_names[p->optimizer_state]);
        printf("resumed from %s: %lld steps done (%.1f s)\n", dir, (long long)first_step,
               hz_now_s() - t0);
    } else if (a.init_hf) {
        double t0 = hz_now_s();
        hz_hf_load_times lt;
        if (hz_hf_load_timed(&ctx.store, p, a.init_hf, a.threads, &lt, herr) != 0) {
            fprintf(stderr, "train: error: --init: %s\n", herr);
            return 1;
        }
        printf("loaded %s (%.1f s): %d files opened and matched in %.2f s, %.2f GB read and "
               "converted in %.2f s (%.2f GB/s, %d threads)\n",
               a.init_hf, hz_now_s() - t0, lt.files, lt.open_s, lt.bytes * 1e-9, lt.read_s,
               lt.read_s > 0 ? lt.bytes * 1e-9 / lt.read_s : 0.0, lt.threads);
    } else {
        double t0 = hz_now_s();
        hz_store_init(&ctx.store, p, (uint64_t)a.seed, ctx.pool);
        printf("initialised %lld parameters (seed %lld) in %.1f s\n", (long long)p->params_n,
               (long long)a.seed, hz_now_s() - t0);
    }
    if (a.init_raw) hz_train_load_raw(&ctx.store, a.init_raw);
    if (ctx.hosts.n > 1) { /* every host trains the same store on the same tokens */
        static const char *const what[] = {"first step", "--steps", "--seed", "--data-seed",
                                           "data tokens", "--lr (bits)"};
        float lr = a.optim.lr;
        int32_t lr_bits;
        memcpy(&lr_bits, &lr, 4);
        const int64_t v[] = {first_step, a.steps, a.seed, a.data_seed, hz_data_tokens(train),
                             lr_bits};
        if (hz_hosts_agree(&ctx.hosts, v, 6, what) != 0) return 1;
    }
    if (a.profile_kernels > 0 && a.profile_kernels <= first_step) {
        fprintf(stderr, "train: error: --profile-kernels %lld: the checkpoint has %lld steps done, "
                        "so this run starts at step %lld; profile one of its steps\n",
                (long long)a.profile_kernels, (long long)first_step, (long long)first_step + 1);
        return 1;
    }
    if (ctx.kprof) /* the run's second step by default: its first includes warm-up work */
        ctx.kprof_step = a.profile_kernels > 0 ? a.profile_kernels - 1
                         : first_step + 1 < a.steps ? first_step + 1 : first_step;
    printf("ready in %.1f s\n", hz_now_s() - t_init);
    /* everything the plan allocates exists now; what the process holds beyond it is its own
     * start-up (code, libraries, the CUDA context), which the plan does not model */
    hz_rss_kinds kinds_ready = hz_rss_kinds_now();
    hz_profile prof, prof_sum;
    memset(&prof_sum, 0, sizeof prof_sum);
    int64_t profiled_steps = 0;
    ctx.profile = &prof;
    if (a.trace) {
        if (!(ctx.trace = hz_trace_open(a.trace, p, a.trace_first ? a.trace_first : 1,
                                        a.trace_first ? a.trace_last : INT64_MAX)))
            hz_train_die("cannot create the trace file", a.trace);
    }
    hz_metrics *met = hz_metrics_open(a.metrics, a.metrics ? a.out : NULL);
    hz_metrics_run(met, p, a.trace, first_step, a.steps);
    hz_sampler *smp = a.sample_every ? new_sampler(p, &a) : NULL;

    int tty = isatty(fileno(stderr));
    double flops = hz_flops_per_token(dm), t_start = hz_now_s(), train_s = 0.0, loss = 0.0;
    int64_t timed_steps = 0;
    int64_t saved_step = -1, bad_run = 0;
    if (first_step >= a.steps && resumed) {
        fprintf(stderr, "train: note: nothing to train: the checkpoint has %lld steps done and "
                        "--steps is %lld; pass a larger --steps to train on\n",
                (long long)first_step, (long long)a.steps);
        saved_step = first_step; /* it is saved already */
    } else if (first_step >= a.steps) {
        /* --steps 0 from fresh weights: with --out, the end's save writes them as step 0 (the
         * initial model, loadable by from_pretrained and by --resume) */
        fprintf(stderr, "train: note: --steps 0: nothing to train%s\n",
                a.out ? "; the initial weights are saved to --out as step 0" : "");
    }
    catch_signals();
    for (int64_t step = first_step; step < a.steps && !stop_signal; step++) {
        fill_step(p, train, &tk);
        double t0 = hz_now_s(), norm;
        loss = hz_exec_step(&ctx, tk.inputs, tk.targets, &norm);
        double dt = hz_now_s() - t0;
        if (!isfinite(loss) || !isfinite(norm)) {
            /* step + 1: the 1-based count of the log */
            if (!hz_exec_update_waits_norm(&ctx)) {
                fprintf(stderr, "train: error: step %lld: the loss is %g and the gradient norm "
                                "%g; without gradient clipping the updates ran before the norm "
                                "was known, so the weights may be damaged: stopping without a "
                                "checkpoint; lower --lr, or set --grad-clip (then such steps are "
                                "skipped)\n",
                        (long long)step + 1, loss, norm);
                hz_train_finish_save(&ctx, &a); /* of an earlier step's state, before this one */
                return 1;
            }
            bad_run++;
            fprintf(stderr, "train: warning: step %lld: the loss is %g and the gradient norm %g: "
                            "update skipped (%lld in a row; --max-bad-steps %lld)\n",
                    (long long)step + 1, loss, norm, (long long)bad_run,
                    (long long)a.max_bad_steps);
            if (bad_run >= a.max_bad_steps) {
                fprintf(stderr, "train: error: %lld steps in a row (%lld to %lld) had a "
                                "non-finite loss or gradient norm: the run diverged; stopping "
                                "without a checkpoint; lower --lr or --grad-clip, or resume from "
                                "an earlier checkpoint\n",
                        (long long)bad_run, (long long)(step + 2 - bad_run), (long long)step + 1);
                hz_train_finish_save(&ctx, &a);
                return 1;
            }
        } else {
            bad_run = 0;
        }
        if (step > first_step) { /* the first step includes warm-up work */
            train_s += dt;
            timed_steps++;
            if (ctx.profiled) {
                profiled_steps++;
                prof_sum.span_ms += prof.span_ms;
                for (int k = 0; k < HZ_STREAM_KIND_N; k++) prof_sum.busy_ms[k] += prof.busy_ms[k];
                for (int k = 0; k < HZ_PHASE_ALL_N; k++) prof_sum.phase_ms[k] += prof.phase_ms[k];
            }
        }
        double tok_s = (double)dm->step_tokens / dt;
        hz_metrics_step(met, step, loss, norm, hz_lr_at(&a.optim, step), dt, dm->step_tokens,
                        flops, hz_exec_trained(p, tk.targets));
        if (tty) fprintf(stderr, "\r\033[K");
        if (step % a.log_every == 0 || step + 1 == a.steps)
            printf("step %5lld/%lld | loss %.4f | norm %.4f | lr %.2e | %.1f ms | %.0f tok/s | "
                   "%.2f TFLOP/s\n",
                   (long long)step + 1, (long long)a.steps, loss, norm,
                   hz_lr_at(&a.optim, step), dt * 1e3, tok_s, tok_s * flops * 1e-12);
        if (ctx.kprofiled) { /* --profile-kernels: this step's table, after its line */
            if (ctx.be->kprof_alone) ctx.be->kprof_alone(&ctx, ctx.kprof);
            hz_kprof_print(ctx.kprof, p, hz_backend_impl.name, stdout);
            hz_metrics_kernels(met, ctx.kprof, p);
            ctx.kprofiled = 0;
        }
        if (val && a.eval_every > 0 && (step + 1) % a.eval_every == 0 && step + 1 < a.steps)
            printf("step %5lld/%lld | val loss %.4f\n", (long long)step + 1, (long long)a.steps,
                   evaluate(&ctx, val, a.eval_batches, &tk, met, step + 1));
        if (smp && (step + 1) % a.sample_every == 0 && step + 1 < a.steps)
            hz_sample_print(smp, &ctx, step + 1, met, stdout);
        if (a.out && a.save_every > 0 && (step + 1) % a.save_every == 0) {
            hz_train_save(&ctx, train, &a, step + 1, !a.sync_save);
            saved_step = step + 1;
        }
        if (hz_ckpt_async_done(&ctx)) hz_train_finish_save(&ctx, &a);
        fflush(stdout);
        if (ctx.hosts.n > 1) { /* a signal on any host stops every host after this step */
            double any = stop_signal;
            hz_hosts_sum_f64(&ctx.hosts, &any, 1);
            if (any > 0 && !stop_signal) stop_signal = SIGTERM;
        }
        if (tty) {
            double el = hz_now_s() - t_start, eta = el / (double)(step + 1) * (double)(a.steps - step - 1);
            fprintf(stderr, "[%lld/%lld] loss %.4f  %.0f tok/s  elapsed %.0fs  eta %.0fs",
                    (long long)step + 1, (long long)a.steps, loss, tok_s, el, eta);
        }
    }
    if (tty) fprintf(stderr, "\r\033[K");
    hz_exec_drain(&ctx);
    hz_train_finish_save(&ctx, &a);
    double loop_s = hz_now_s() - t_start; /* the steps and the checkpoints written among them */
    if (stop_signal) {
        int sig = stop_signal;
        int save = a.out && saved_step != ctx.step && ctx.step > first_step;
        fprintf(stderr, "train: %s: stopping after step %lld of %lld%s\n", signal_name(sig),
                (long long)ctx.step, (long long)a.steps,
                save ? "; saving a checkpoint (a second signal stops at once, without it)"
                     : a.out ? "; its checkpoint is saved already" : " (no --out: nothing saved)");
        if (ctx.trace) hz_trace_close(ctx.trace, &ctx);
        if (save) {
            hz_train_save(&ctx, train, &a, ctx.step, 0);
            fprintf(stderr, "train: saved %s/step-%08lld: --resume %s continues there\n", a.out,
                    (long long)ctx.step, a.out);
        }
        hz_metrics_close(met);
        fflush(stdout);
        return 128 + sig;
    }
    if (ctx.trace) {
        hz_trace_close(ctx.trace, &ctx);
        printf("trace: %s (chrome://tracing or https://ui.perfetto.dev)\n", a.trace);
    }
    if (val) printf("val loss %.6f\n", evaluate(&ctx, val, a.eval_batches, &tk, met, ctx.step));
    if (smp) hz_sample_print(smp, &ctx, ctx.step, met, stdout);
    hz_sample_free(smp);
    if (a.logits) dump_logits(&ctx, val, a.logits, &tk);
    if (a.save_raw) {
        hz_exec_drain(&ctx);
        hz_train_save_raw(&ctx.store, a.save_raw);
    }
    if (a.out && saved_step != ctx.step) hz_train_save(&ctx, train, &a, ctx.step, 0);
    hz_train_finish_save(&ctx, &a);

    if (ctx.step == first_step && resumed)
        printf("summary: no steps trained (the checkpoint has %lld of --steps %lld done)",
               (long long)first_step, (long long)a.steps);
    else if (ctx.step == first_step)
        printf("summary: no steps trained (--steps 0)");
    else
        printf("summary: %lld steps, final loss %.4f", (long long)a.steps, loss);
    double mean_tok_s = timed_steps > 0 ? (double)timed_steps * (double)dm->step_tokens / train_s : 0;
    if (timed_steps > 0)
        printf(", %.0f tokens/s, %.3f model TFLOP/s (steps after the first)", mean_tok_s,
               mean_tok_s * flops * 1e-12);
    if (ctx.step > first_step)
        printf("; step loop %.1f s with its checkpoints", loop_s);
    printf("\n");
    if (profiled_steps > 0)
        hz_train_print_profile(p, &prof_sum, profiled_steps, train_s / (double)timed_steps);
    hz_mem_line mem[2 + HZ_MEM_LINES_MAX];
    hz_train_print_memory(&ctx, &kinds_ready, mem);
    ctx.be->report(&ctx, stdout);
    if (p->optimizer_state != HZ_OPTSTATE_FP32)
        printf("optimizer state %s: %lld non-finite gradients kept out of the moments\n",
               hz_optstate_name(p->optimizer_state), (long long)ctx.nonfinite_n);
    int mem_n = 2 + ctx.be->memory(&ctx, mem + 2);
    hz_metrics_summary(met, ctx.step, loss, mean_tok_s, mean_tok_s * flops * 1e-12, mem, mem_n);
    hz_metrics_close(met);
    hz_exec_free(&ctx);
    free(tk.inputs);
    free(tk.targets);
    hz_data_close(train);
    if (val) hz_data_close(val);
    return 0;
}
