/* runtime/trace.c - the step profile (stream busy times, PCIe bytes) and the Chrome trace
 * JSON (chrome://tracing, Perfetto): one track per device stream from the backend's
 * timing events, and one for the host optimizer from the host clock. The two clocks are
 * aligned at the end of each step: the host time the step's last device op was seen
 * done is taken as that op's end. */
#include <stdlib.h>
#include <string.h>

#include "rt.h"

struct hz_trace {
    FILE *f;
    int events;          /* events written: a comma goes before every later one */
    int64_t opt_pending; /* step whose host updates are not written yet (-1 none) */
    double origin_s;     /* host clock of the first traced step: trace time zero */
    int64_t first, last; /* the traced steps, 1-based, inclusive */
};

hz_trace *hz_trace_open(const char *path, const hz_plan *p, int64_t first, int64_t last)
{
    hz_trace *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->f = fopen(path, "w");
    if (!t->f) {
        free(t);
        return NULL;
    }
    t->opt_pending = -1;
    t->origin_s = -1.0;
    t->first = first;
    t->last = last;
    fprintf(t->f, "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n");
    for (int k = 0; k < HZ_STREAM_KIND_N; k++)
        fprintf(t->f, "%s{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 1, \"tid\": %d, "
                      "\"args\": {\"name\": \"%s\"}}",
                t->events++ ? ",\n" : "", k, hz_stream_names[k]);
    return t;
}

/* "block 3", "head": a unit's kind and layer */
static void unit_label(const hz_unit *u, char *buf, size_t n)
{
    if (u->layer >= 0) snprintf(buf, n, "%s %d", hz_unit_names[u->kind], u->layer);
    else snprintf(buf, n, "%s", hz_unit_names[u->kind]);
}

void hz_op_label(const hz_plan *p, int i, char *buf, size_t n)
{
    const hz_op *o = &p->ops[i];
    char unit[48], micro[24] = "";
    unit_label(&p->units[o->unit], unit, sizeof unit);
    if (o->micro >= 0) snprintf(micro, sizeof micro, " micro %d", o->micro);
    snprintf(buf, n, "%s %s%s", hz_op_names[o->kind], unit, micro);
}

static void event(hz_trace *t, const char *name, int tid, double start_s, double dur_s,
                  int64_t step)
{
    fprintf(t->f, "%s{\"name\": \"%s\", \"ph\": \"X\", \"pid\": 1, \"tid\": %d, "
                  "\"ts\": %.3f, \"dur\": %.3f, \"args\": {\"step\": %lld}}",
            t->events++ ? ",\n" : "", name, tid, (start_s - t->origin_s) * 1e6, dur_s * 1e6,
            (long long)step + 1);
}

/* The host updates of step t->opt_pending (all applied by now); a resident unit's update is
 * a device op of the compute stream, written with the step's other device ops. */
static void write_updates(hz_trace *t, hz_ctx *c)
{
    if (t->opt_pending < 0) return;
    char unit[48], name[64];
    for (int u = 0; u < c->plan->unit_n; u++) {
        if (c->plan->units[u].resident) continue;
        unit_label(&c->plan->units[u], unit, sizeof unit);
        snprintf(name, sizeof name, "opt %s", unit);
        int64_t k = (t->opt_pending % 2) * c->plan->unit_n + u;
        event(t, name, HZ_HOST, c->opt_t0_s[k], c->opt_t1_s[k] - c->opt_t0_s[k], t->opt_pending);
    }
    t->opt_pending = -1;
}

int hz_profile_step(hz_ctx *c, hz_trace *t, hz_profile *out)
{
    const hz_plan *p = c->plan;
    memset(out, 0, sizeof(*out));
    if (!c->be->op_times) return 0;
    float *t0 = c->op_t0_ms, *t1 = c->op_t1_ms;
    c->be->op_times(c, 0, t0, t1); /* rank 0's timeline */
    double first = 1e30, last = 0.0;
    for (int i = 0; i < p->op_n; i++) {
        const hz_op *o = &p->ops[i];
        if (o->stream == HZ_HOST) continue;
        double ms = t1[i] - t0[i];
        out->busy_ms[o->stream] += ms;
        if (o->kind == HZ_FWD) out->phase_ms[HZ_PH_FWD] += ms;
        if (o->kind == HZ_LOSS) out->phase_ms[HZ_PH_LOSS] += ms;
        if (o->kind == HZ_BWD) out->phase_ms[HZ_PH_BWD] += ms;
        if (o->kind == HZ_OPT) { /* resident units' updates: issued after the step's end */
            out->phase_ms[HZ_PH_GPU_OPT] += ms;
            continue;
        }
        if (t0[i] < first) first = t0[i];
        if (t1[i] > last) last = t1[i];
    }
    out->span_ms = last - first;
    /* the copies; a resident or held unit's store_g only adds its squared norm on the d2h
     * stream (a held unit's gradients go home in the next step's fetch_g) */
    for (int i = 0; i < p->op_n; i++) {
        const hz_op *o = &p->ops[i];
        double ms = t1[i] - t0[i];
        if (o->kind == HZ_LOAD_W || o->kind == HZ_LOAD_B) out->phase_ms[HZ_PH_H2D] += ms;
        const hz_unit *u = &p->units[o->unit];
        if (o->kind == HZ_STORE_B || o->kind == HZ_FETCH_G ||
            (o->kind == HZ_STORE_G && !u->resident && !u->held))
            out->phase_ms[HZ_PH_D2H] += ms;
    }
    /* the sums over the GPUs and hosts run inside the STORE_G ops: their own phases */
    if (c->be->sum_times && (c->rank_n > 1 || c->hosts.n > 1)) {
        double ms[2] = {0.0, 0.0};
        c->be->sum_times(c, ms);
        out->phase_ms[HZ_PH_NCCL] += ms[0];
        out->phase_ms[HZ_PH_NET] += ms[1];
        out->phase_ms[HZ_PH_D2H] -= ms[0] + ms[1];
    }
    if (c->step >= 1) { /* the updates of the step before, all applied by now */
        const double *u0 = c->opt_t0_s + ((c->step - 1) % 2) * p->unit_n;
        const double *u1 = c->opt_t1_s + ((c->step - 1) % 2) * p->unit_n;
        for (int u = 0; u < p->unit_n; u++) out->phase_ms[HZ_PH_OPT] += (u1[u] - u0[u]) * 1e3;
    }
    if (t) write_updates(t, c); /* the previous step's updates finished before this step's loads */
    if (t && c->step + 1 >= t->first && c->step + 1 <= t->last) {
        double base_s = c->step_end_s - last * 1e-3; /* host time of the step's t = 0 */
        if (t->origin_s < 0) t->origin_s = base_s + first * 1e-3;
        char name[80];
        for (int i = 0; i < p->op_n; i++) {
            if (p->ops[i].stream == HZ_HOST) continue;
            hz_op_label(p, i, name, sizeof name);
            event(t, name, p->ops[i].stream, base_s + t0[i] * 1e-3, (t1[i] - t0[i]) * 1e-3,
                  c->step);
        }
        t->opt_pending = c->step;
    }
    return 1;
}

void hz_trace_close(hz_trace *t, hz_ctx *c)
{
    if (!t) return;
    write_updates(t, c);
    fprintf(t->f, "\n]}\n");
    fclose(t->f);
    free(t);
}
