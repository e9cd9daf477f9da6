/* runtime/metrics.c - the trainer's metrics log: JSON Lines written with jansson to the
 * --metrics file and to --out's metrics.jsonl, one flushed line per record. Non-finite
 * numbers (a diverged step) are written as null: JSON has no NaN. */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"

struct hz_metrics {
    FILE *f[2]; /* --metrics FILE, OUT/metrics.jsonl */
};

static FILE *open_or_die(const char *path, const char *mode, const char *flag)
{
    FILE *f = fopen(path, mode);
    if (!f) {
        fprintf(stderr, "train: error: %s: cannot write %s; pick a writable path\n", flag, path);
        exit(1);
    }
    return f;
}

hz_metrics *hz_metrics_open(const char *file, const char *out_dir)
{
    if (!file && !out_dir) return NULL;
    hz_metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    if (file) m->f[0] = open_or_die(file, "w", "--metrics");
    if (out_dir) {
        char path[4200];
        snprintf(path, sizeof path, "%s/metrics.jsonl", out_dir);
        m->f[1] = open_or_die(path, "a", "--out");
    }
    return m;
}

static json_t *num(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

/* Write OBJ (a reference taken) as one line to each file, flushed. */
static void put(hz_metrics *m, json_t *obj)
{
    char *line = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(obj);
    if (!line) return;
    for (int i = 0; i < 2; i++) {
        if (!m->f[i]) continue;
        fputs(line, m->f[i]);
        fputc('\n', m->f[i]);
        fflush(m->f[i]);
    }
    free(line);
}

void hz_metrics_run(hz_metrics *m, const hz_plan *p, const char *trace,
                    int64_t first_step, int64_t steps)
{
    if (!m) return;
    char exe[PATH_MAX], plan[PATH_MAX + 32], tr[PATH_MAX];
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string("run"));
    json_object_set_new(o, "spec", json_string(p->spec_name));
    json_object_set_new(o, "backend", json_string(hz_backend_impl.name));
    json_object_set_new(o, "params", json_integer(p->params_n));
    json_object_set_new(o, "step_tokens", json_integer(p->dims.step_tokens));
    json_object_set_new(o, "first_step", json_integer(first_step));
    json_object_set_new(o, "steps", json_integer(steps));
    json_object_set_new(o, "flops_per_token", json_real(hz_flops_per_token(&p->dims)));
    json_object_set_new(o, "planned_host_bytes", json_integer(p->host_bytes));
    json_object_set_new(o, "planned_gpu_bytes", json_integer(p->gpu_bytes));
    /* the trainer's DIR/generated/plan.json, found from its own path */
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        snprintf(plan, sizeof plan, "%s/generated/plan.json", exe);
        if (access(plan, R_OK) == 0) json_object_set_new(o, "plan", json_string(plan));
    }
    /* called once the trace file exists */
    if (trace && realpath(trace, tr)) json_object_set_new(o, "trace", json_string(tr));
    time_t now = time(NULL);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    json_object_set_new(o, "started", json_string(when));
    put(m, o);
}

void hz_metrics_step(hz_metrics *m, int64_t step, double loss, double norm, double lr,
                     double seconds, int64_t step_tokens, double flops_per_token,
                     int64_t trained_tokens)
{
    if (!m) return;
    double tok_s = seconds > 0 ? (double)step_tokens / seconds : 0.0;
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string("step"));
    json_object_set_new(o, "step", json_integer(step + 1));
    json_object_set_new(o, "loss", num(loss));
    json_object_set_new(o, "grad_norm", num(norm));
    json_object_set_new(o, "lr", num(lr));
    json_object_set_new(o, "ms", num(seconds * 1e3));
    json_object_set_new(o, "tokens_per_s", num(tok_s));
    json_object_set_new(o, "model_tflops", num(tok_s * flops_per_token * 1e-12));
    json_object_set_new(o, "trained_tokens", json_integer(trained_tokens));
    put(m, o);
}

void hz_metrics_eval(hz_metrics *m, int64_t steps, double val_loss)
{
    if (!m) return;
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string("eval"));
    json_object_set_new(o, "step", json_integer(steps));
    json_object_set_new(o, "val_loss", num(val_loss));
    put(m, o);
}

void hz_metrics_sample(hz_metrics *m, int64_t steps, const int32_t *tokens, int64_t n,
                       const char *text)
{
    if (!m) return;
    json_t *o = json_object(), *ids = json_array();
    for (int64_t i = 0; i < n; i++) json_array_append_new(ids, json_integer(tokens[i]));
    json_object_set_new(o, "type", json_string("sample"));
    json_object_set_new(o, "step", json_integer(steps));
    json_object_set_new(o, "tokens", ids);
    /* bytes that are not UTF-8 are left out of the text (the ids hold every token) */
    if (text) {
        json_t *t = json_string(text);
        if (!t) {
            size_t len = strlen(text);
            char *ascii = malloc(len + 1);
            size_t k = 0;
            for (size_t i = 0; ascii && i < len; i++)
                if ((unsigned char)text[i] < 128) ascii[k++] = text[i];
            if (ascii) ascii[k] = 0;
            t = ascii ? json_string(ascii) : NULL;
            free(ascii);
        }
        if (t) json_object_set_new(o, "text", t);
    }
    put(m, o);
}

void hz_metrics_summary(hz_metrics *m, int64_t steps, double final_loss, double tok_s,
                        double tflops, const hz_mem_line *lines, int line_n)
{
    if (!m) return;
    json_t *o = json_object(), *mem = json_array();
    json_object_set_new(o, "type", json_string("summary"));
    json_object_set_new(o, "steps", json_integer(steps));
    json_object_set_new(o, "final_loss", num(final_loss));
    json_object_set_new(o, "tokens_per_s", num(tok_s));
    json_object_set_new(o, "model_tflops", num(tflops));
    for (int i = 0; i < line_n; i++) {
        json_t *l = json_object();
        json_object_set_new(l, "what", json_string(lines[i].what));
        json_object_set_new(l, "planned", json_integer(lines[i].planned));
        json_object_set_new(l, "measured", json_integer(lines[i].measured));
        json_array_append_new(mem, l);
    }
    json_object_set_new(o, "memory", mem);
    put(m, o);
}

void hz_metrics_kernels(hz_metrics *m, const hz_kprof *kp, const hz_plan *p)
{
    if (!m) return;
    const hz_predict *c = &p->pred;
    json_t *o = json_object(), *ceil = json_object(), *streams = json_array();
    json_object_set_new(o, "type", json_string("kernels"));
    json_object_set_new(o, "step", json_integer(kp->step + 1));
    json_object_set_new(o, "backend", json_string(hz_backend_impl.name));
    json_object_set_new(ceil, "source", json_string(c->ceilings ? c->ceilings : ""));
    json_object_set_new(ceil, "gemm_tflops", num(c->gemm_tflops));
    json_object_set_new(ceil, "hbm_gbps", num(c->hbm_gbps));
    json_object_set_new(ceil, "h2d_gbps", num(c->h2d_gbps));
    json_object_set_new(ceil, "d2h_gbps", num(c->d2h_gbps));
    json_object_set_new(o, "ceilings", ceil);
    for (int st = 0; st < HZ_STREAM_KIND_N; st++) {
        double total = 0.0;
        int64_t calls = 0;
        for (int k = 0; k < HZ_KROW_N; k++) {
            total += kp->row[st][k].ms;
            calls += kp->row[st][k].calls;
        }
        if (st == HZ_HOST || (calls == 0 && total <= 0)) continue;
        json_t *so = json_object(), *rows = json_array();
        json_object_set_new(so, "stream", json_string(hz_stream_names[st]));
        json_object_set_new(so, "busy_ms", num(kp->busy_ms[st]));
        json_object_set_new(so, "total_ms", num(total));
        json_object_set_new(so, "calls", json_integer(calls));
        for (int k = 0; k < HZ_KROW_N; k++) {
            const hz_kstat *r = &kp->row[st][k];
            if (r->calls == 0 && r->ms <= 0) continue;
            int cls = hz_krow_class[k];
            json_t *ro = json_object();
            json_object_set_new(ro, "kernel", json_string(hz_krow_names[k]));
            json_object_set_new(ro, "calls", json_integer(r->calls));
            json_object_set_new(ro, "ms", num(r->ms));
            json_object_set_new(ro, "mean_us", r->calls > 0 ? num(r->ms * 1e3 / (double)r->calls)
                                                            : json_null());
            json_object_set_new(ro, "flops", num(r->flops));
            json_object_set_new(ro, "bytes", num(r->bytes));
            double rate = hz_kprof_rate(r, k);
            json_object_set_new(ro, "tflops", cls == HZ_KC_FLOPS ? num(rate) : json_null());
            json_object_set_new(ro, "gbps",
                                cls != HZ_KC_FLOPS && cls != HZ_KC_NONE ? num(rate) : json_null());
            json_object_set_new(ro, "roofline",
                                cls != HZ_KC_NONE ? num(hz_kprof_roofline(r, k, p)) : json_null());
            double alone = hz_kprof_vs_alone(r);
            json_object_set_new(ro, "vs_alone", alone > 0 ? num(alone) : json_null());
            json_object_set_new(ro, "share", num(total > 0 ? r->ms / total : 0.0));
            json_array_append_new(rows, ro);
        }
        json_object_set_new(so, "rows", rows);
        json_array_append_new(streams, so);
    }
    json_object_set_new(o, "streams", streams);
    if (kp->clock_mhz[0] > 0) { /* the device's SM clock and power: the step, the GEMMs alone */
        json_object_set_new(o, "sm_clock_mhz", json_pack("[ff]", kp->clock_mhz[0], kp->clock_mhz[1]));
        json_object_set_new(o, "power_w", json_pack("[ff]", kp->power_w[0], kp->power_w[1]));
        json_object_set_new(o, "power_limit_w", num(kp->power_limit_w));
    }
    put(m, o);
}

void hz_metrics_close(hz_metrics *m)
{
    if (!m) return;
    for (int i = 0; i < 2; i++)
        if (m->f[i]) fclose(m->f[i]);
    free(m);
}
