/* runtime/kprof.c - the per-kernel profile's rows (kprof.h), their sums, the host-clock
 * marks of the cpu backend and the table the trainer prints (train --profile-kernels). */
#include <string.h>

#include "kprof.h"
#include "rt.h"

#define HZ_KR_GEMM_NAME(id, name) "gemm " name " fwd", "gemm " name " dx", "gemm " name " dw",
#define HZ_KR_NAME(id, name, cls) name,
const char *const hz_krow_names[HZ_KROW_N] = {HZ_GEMM_ROLES(HZ_KR_GEMM_NAME)
                                                  HZ_KROWS(HZ_KR_NAME)};
#define HZ_KR_GEMM_CLASS(id, name) HZ_KC_FLOPS, HZ_KC_FLOPS, HZ_KC_FLOPS,
#define HZ_KR_CLASS(id, name, cls) cls,
const int hz_krow_class[HZ_KROW_N] = {HZ_GEMM_ROLES(HZ_KR_GEMM_CLASS) HZ_KROWS(HZ_KR_CLASS)};

void hz_kprof_add(hz_kprof *kp, int stream, const hz_kcost *k, double ms)
{
    hz_kstat *r = &kp->row[stream][k->row];
    r->calls += k->calls;
    r->ms += ms;
    r->flops += k->flops;
    r->bytes += k->bytes;
}

double hz_kprof_vs_alone(const hz_kstat *r)
{
    return r->calls > 0 && r->alone_calls == r->calls && r->ms > 0 ? r->alone_ms / r->ms : 0.0;
}

double hz_kprof_rate(const hz_kstat *r, int row)
{
    if (r->ms <= 0) return 0.0;
    switch (hz_krow_class[row]) {
    case HZ_KC_FLOPS:
        return r->flops / (r->ms * 1e-3) * 1e-12;
    case HZ_KC_HBM:
    case HZ_KC_H2D:
    case HZ_KC_D2H:
    case HZ_KC_NCCL:
        return r->bytes / (r->ms * 1e-3) * 1e-9;
    default:
        return 0.0;
    }
}

double hz_kprof_roofline(const hz_kstat *r, int row, const hz_plan *p)
{
    const hz_predict *c = &p->pred;
    double ceil = 0.0;
    switch (hz_krow_class[row]) {
    case HZ_KC_FLOPS: ceil = c->gemm_tflops; break;
    case HZ_KC_HBM: ceil = c->hbm_gbps; break;
    case HZ_KC_H2D: ceil = c->h2d_gbps; break;
    case HZ_KC_D2H: ceil = c->d2h_gbps; break;
    case HZ_KC_NCCL: ceil = c->nccl_busbw_gbps; break;
    default: break;
    }
    return ceil > 0 ? hz_kprof_rate(r, row) / ceil : 0.0;
}

/* The stream's rows' total time and calls. */
static double stream_ms(const hz_kprof *kp, int st, int64_t *calls)
{
    double ms = 0.0;
    int64_t n = 0;
    for (int k = 0; k < HZ_KROW_N; k++) {
        ms += kp->row[st][k].ms;
        n += kp->row[st][k].calls;
    }
    if (calls) *calls = n;
    return ms;
}

void hz_kprof_print(const hz_kprof *kp, const hz_plan *p, const char *backend, FILE *out)
{
    const hz_predict *c = &p->pred;
    fprintf(out,
            "kernel profile of step %lld (%s backend); roofline: the plan's ceilings (%s): GEMM "
            "%.1f TFLOP/s, device memory %.0f GB/s, h2d %.1f GB/s, d2h %.1f GB/s\n",
            (long long)kp->step + 1, backend, c->ceilings ? c->ceilings : "?", c->gemm_tflops,
            c->hbm_gbps, c->h2d_gbps, c->d2h_gbps);
    if (kp->clock_mhz[0] > 0)
        fprintf(out, "  the device during the step: SM clock %.0f MHz, %.0f W (its limit %.0f W); "
                     "during the GEMMs alone, timed after the step: %.0f MHz, %.0f W\n",
                kp->clock_mhz[0], kp->power_w[0], kp->power_limit_w, kp->clock_mhz[1],
                kp->power_w[1]);
    fprintf(out, "  %-8s %-24s %7s %11s %10s %9s %9s %9s %7s %7s\n", "stream", "kernel", "calls",
            "total ms", "mean us", "TFLOP/s", "GB/s", "roofline", "alone", "share");
    for (int st = 0; st < HZ_STREAM_KIND_N; st++) {
        if (st == HZ_HOST) continue;
        int64_t calls = 0;
        double total = stream_ms(kp, st, &calls);
        if (calls == 0 && total <= 0) continue;
        const char *sn = hz_stream_names[st];
        for (int k = 0; k < HZ_KROW_N; k++) {
            const hz_kstat *r = &kp->row[st][k];
            if (r->calls == 0 && r->ms <= 0) continue;
            int cls = hz_krow_class[k];
            char tf[16] = "-", gb[16] = "-", roof[16] = "-", alone[16] = "-";
            if (cls == HZ_KC_FLOPS) snprintf(tf, sizeof tf, "%.2f", hz_kprof_rate(r, k));
            else if (cls != HZ_KC_NONE) snprintf(gb, sizeof gb, "%.1f", hz_kprof_rate(r, k));
            if (cls != HZ_KC_NONE)
                snprintf(roof, sizeof roof, "%.1f%%", 100.0 * hz_kprof_roofline(r, k, p));
            if (hz_kprof_vs_alone(r) > 0)
                snprintf(alone, sizeof alone, "%.1f%%", 100.0 * hz_kprof_vs_alone(r));
            fprintf(out, "  %-8s %-24s %7lld %11.3f %10.1f %9s %9s %9s %7s %6.2f%%\n", sn,
                    hz_krow_names[k], (long long)r->calls, r->ms,
                    r->calls > 0 ? r->ms * 1e3 / (double)r->calls : 0.0, tf, gb, roof, alone,
                    total > 0 ? 100.0 * r->ms / total : 0.0);
        }
        fprintf(out, "  %-8s %-24s %7lld %11.3f %10s %9s %9s %9s %7s %6.2f%%\n", sn, "total",
                (long long)calls, total, "", "", "", "", "", total > 0 ? 100.0 : 0.0);
        double busy = kp->busy_ms[st];
        fprintf(out, "  %-8s stream busy %.3f ms by the step's op events; the rows add up to "
                     "%.3f ms (%+.2f%%)\n",
                sn, busy, total, busy > 0 ? 100.0 * (total - busy) / busy : 0.0);
    }
    if (kp->marks_lost > 0)
        fprintf(out, "  warning: %lld launches were not timed (the event pool was short: an "
                     "internal error)\n", (long long)kp->marks_lost);
}

void hz_kclock_start(hz_kclock *kc, int stream, double t_s)
{
    kc->stream = stream;
    kc->last_s = t_s;
}

void hz_kclock_mark(hz_kclock *kc, hz_kcost k)
{
    if (!kc) return;
    double t = hz_now_s();
    hz_kprof_add(kc->kp, kc->stream, &k, (t - kc->last_s) * 1e3);
    kc->last_s = t;
}

void hz_kclock_end(hz_kclock *kc, double t_s)
{
    hz_kcost k = {HZ_KR_HOST, 1, 0.0, 0.0};
    hz_kprof_add(kc->kp, kc->stream, &k, (t_s - kc->last_s) * 1e3);
    kc->last_s = t_s;
}
