/* runtime/train_summary.c - the end of a run's summary: the profiled steps' means and the
 * predicted phases beside them (docs/plan.md "Step time"), and memory planned beside
 * measured (docs/training.md "Output"). */
#include <stdio.h>

#include "train_summary.h"

hz_rss_kinds hz_rss_kinds_now(void)
{
    hz_rss_kinds k = {hz_proc_bytes("/proc/self/status", "RssAnon:"),
                      hz_proc_bytes("/proc/self/status", "RssFile:"),
                      hz_proc_bytes("/proc/self/status", "RssShmem:")};
    return k;
}

/* The planner's predicted phases (a model of the GPU and the host) beside the measured means
 * of N profiled steps. */
static void print_times(const hz_plan *p, const hz_profile *sum, double n, double step_s)
{
    printf("  %-22s %12s %12s %8s\n", "time per step", "predicted", "measured", "error");
    for (int k = 0; k < hz_plan_phase_n(p); k++) {
        double want = p->pred.phase_s[k] * 1e3, got = sum->phase_ms[k] / n;
        printf("  %-22s %9.1f ms %9.1f ms %+7.1f%%\n", hz_phase_names[k], want, got,
               got > 0 ? 100.0 * (want - got) / got : 0.0);
    }
    printf("  %-22s %9.1f ms %9.1f ms %+7.1f%%\n", "step (wall)", p->pred.step_s * 1e3,
           step_s * 1e3, step_s > 0 ? 100.0 * (p->pred.step_s - step_s) / step_s : 0.0);
    printf("  predicted critical path: %s; rates: %s\n", hz_phase_names[p->pred.critical],
           p->pred.ceilings ? p->pred.ceilings : "?");
}

void hz_train_print_profile(const hz_plan *p, const hz_profile *sum, int64_t steps, double step_s)
{
    double n = (double)steps, span = sum->span_ms / n, busy = sum->busy_ms[HZ_COMPUTE] / n;
    double h2d = sum->busy_ms[HZ_H2D] / n, d2h = sum->busy_ms[HZ_D2H] / n;
    printf("profile (mean of %lld steps): device span %.1f ms, compute stream busy %.1f%% of it",
           (long long)steps, span, 100.0 * busy / span);
    /* the cpu backend's "copies" widen bf16 in host memory: no bus to report */
    if (hz_backend_impl.caps->pcie) {
        int64_t h2d_b, d2h_b;
        hz_plan_pcie_bytes(p, &h2d_b, &d2h_b);
        printf("; PCIe per step: h2d %.3f GB in %.1f ms (%.1f GB/s), d2h %.3f GB in %.1f ms "
               "(%.1f GB/s)",
               h2d_b * 1e-9, h2d, h2d > 0 ? h2d_b / (h2d * 1e6) : 0.0, d2h_b * 1e-9, d2h,
               d2h > 0 ? d2h_b / (d2h * 1e6) : 0.0);
    }
    printf("\n");
    printf("  step wall %.1f ms: the compute stream is busy %.1f%% of the whole step\n",
           step_s * 1e3, 100.0 * busy / (step_s * 1e3));
    /* the prediction models a GPU and its bus: the cpu backend's times are not that */
    if (hz_backend_impl.caps->pcie) print_times(p, sum, n, step_s);
}

static void print_bytes_line(const char *what, int64_t planned, int64_t measured)
{
    const double gib = 1024.0 * 1024.0 * 1024.0;
    printf("  %-22s planned %14lld (%8.3f GiB)  measured %14lld (%8.3f GiB)\n", what,
           (long long)planned, planned / gib, (long long)measured, measured / gib);
}

void hz_train_print_memory(const hz_ctx *ctx, const hz_rss_kinds *ready, hz_mem_line mem[2])
{
    const hz_plan *p = ctx->plan;
    /* a device backend's process holds its libraries and device context beside the plan (the
     * ceilings' process_host_bytes); the cpu backend's arena is host memory of its own */
    int64_t peak = hz_peak_rss_bytes();
    int64_t process = hz_backend_impl.caps->pcie ? p->pred.process_host_bytes : 0;
    mem[0] = (hz_mem_line){"host store", p->host_store_bytes, hz_store_measured_bytes(&ctx->store)};
    mem[1] = (hz_mem_line){"host peak (RSS)", p->host_bytes + process, peak};
    print_bytes_line(mem[0].what, mem[0].planned, mem[0].measured);
    if (process <= 0) {
        print_bytes_line(mem[1].what, mem[1].planned, mem[1].measured);
        return;
    }
    int64_t planned = mem[1].planned, rss_ready = ready->anon + ready->file + ready->shmem;
    printf("  host peak (RSS)        planned %14lld (%8.3f GiB)  measured %14lld (%8.3f GiB)"
           "  %+.3f%%\n", (long long)planned, planned / 1073741824.0, (long long)peak,
           peak / 1073741824.0, 100.0 * (double)(peak - planned) / (double)planned);
    printf("    the plan's %lld and the process's own %lld (%s); when ready %lld beyond the "
           "plan, %+lld after\n", (long long)p->host_bytes, (long long)process,
           p->pred.ceilings, (long long)(rss_ready - p->host_bytes), (long long)(peak - rss_ready));
    hz_rss_kinds end = hz_rss_kinds_now();
    printf("    resident when ready / at the end: anonymous %lld / %lld, file-backed (code, "
           "libraries) %lld / %lld, shared %lld / %lld\n",
           (long long)ready->anon, (long long)end.anon, (long long)ready->file,
           (long long)end.file, (long long)ready->shmem, (long long)end.shmem);
}
