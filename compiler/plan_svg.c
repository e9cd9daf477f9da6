/* compiler/plan_svg.c - hzc plan --svg: the plan as one self-contained SVG picture: the host
 * store per array, the GPU arena's regions to scale at their offsets, and one step's ops on
 * the three streams and the host optimizer as the step-time model places them
 * (tm_timeline). Every element carries its numbers as data- attributes and a tooltip. */
#include "plan_svg.h"

#include <stdlib.h>
#include <string.h>

#include "svg.h"

#define W 1100.0    /* picture width */
#define X0 20.0     /* left margin */
#define BAR (W - 2 * X0)
#define ROW 16.0    /* legend line height */

/* A host store array: its name, what it holds and its bytes per element. */
typedef struct {
    const char *name, *what;
    double bytes_per;
} host_array;

static double host_store(const hzc_plan *pl, FILE *out, double y)
{
    const hz_plan *p = &pl->p;
    host_array arr[] = {{"w", "bf16 working weights", 2},
                        {"lo", "int16 master low parts", 2},
                        {"m", "fp32 Adam first moment", 4},
                        {"v", "fp32 Adam second moment", 4},
                        {"g", p->host_grad_bf16 ? "bf16 gradients" : "fp32 gradients",
                         p->host_grad_bf16 ? 2 : 4}};
    int n = (int)(sizeof arr / sizeof arr[0]);
    double per = 0;
    for (int k = 0; k < n; k++) per += arr[k].bytes_per;
    char line[256], b[32], attrs[160];
    snprintf(line, sizeof line, "host: %s planned peak (%.2f bytes per parameter)",
             svg_bytes(b, sizeof b, (double)p->host_bytes),
             (double)p->host_bytes / (double)p->params_n);
    svg_text(out, X0, y, 15, "start", line);
    y += 10;
    double total = p->host_bytes > 0 ? (double)p->host_bytes : 1, x = X0;
    for (int k = 0; k <= n; k++) {
        /* the store's arrays share host_store_bytes by their element sizes; then the extras */
        double bytes = k < n ? (double)p->host_store_bytes * arr[k].bytes_per / per
                             : (double)pl->host_extra_bytes;
        const char *name = k < n ? arr[k].name : "extras";
        const char *what = k < n ? arr[k].what
                                 : p->boundary_on_host ? "token/loss staging, boundaries"
                                                       : "token and loss staging";
        snprintf(attrs, sizeof attrs, "class=\"host\" data-name=\"%s\" data-bytes=\"%.0f\"",
                 name, bytes);
        snprintf(line, sizeof line, "%s (%s): %.0f bytes", name, what, bytes);
        svg_rect(out, x, y, BAR * bytes / total, 28, svg_color(k), line, attrs);
        x += BAR * bytes / total;
        svg_rect(out, X0 + (k % 3) * 360, y + 44 + (k / 3) * ROW - 10, 10, 10, svg_color(k), NULL, NULL);
        snprintf(line, sizeof line, "%s  %s  %s", name, what, svg_bytes(b, sizeof b, bytes));
        svg_text(out, X0 + (k % 3) * 360 + 14, y + 44 + (k / 3) * ROW, 12, "start", line);
    }
    return y + 44 + ((n + 3) / 3) * ROW + 14;
}

static double arena(const hzc_plan *pl, FILE *out, double y)
{
    const hz_plan *p = &pl->p;
    char line[256], b[32], attrs[200];
    snprintf(line, sizeof line, "GPU arena: %s in one allocation, regions to scale",
             svg_bytes(b, sizeof b, (double)p->gpu_bytes));
    svg_text(out, X0, y, 15, "start", line);
    y += 10;
    double total = p->gpu_bytes > 0 ? (double)p->gpu_bytes : 1;
    svg_rect(out, X0, y, BAR, 28, "#eeeeee", NULL, NULL);
    int shown = 0;
    for (int k = 0; k < HZ_REGION_KIND_N; k++) {
        const hz_region *r = &pl->regions[k];
        snprintf(attrs, sizeof attrs, "class=\"region\" data-name=\"%s\" data-offset=\"%lld\" "
                 "data-bytes=\"%lld\" data-slots=\"%d\"",
                 hz_region_names[k], (long long)r->offset_bytes, (long long)r->bytes, r->count);
        snprintf(line, sizeof line, "%s: %lld bytes at offset %lld, %d slot%s: %s",
                 hz_region_names[k], (long long)r->bytes, (long long)r->offset_bytes, r->count,
                 r->count == 1 ? "" : "s", hz_region_what[k]);
        svg_rect(out, X0 + BAR * (double)r->offset_bytes / total, y,
                 BAR * (double)r->bytes / total, 28, svg_color(k), line, attrs);
        if (r->bytes == 0) continue;
        double ly = y + 44 + (shown / 2) * ROW;
        svg_rect(out, X0 + (shown % 2) * 540, ly - 10, 10, 10, svg_color(k), NULL, NULL);
        snprintf(line, sizeof line, "%s  %s at %lld (%.1f%%)", hz_region_names[k],
                 svg_bytes(b, sizeof b, (double)r->bytes), (long long)r->offset_bytes,
                 100.0 * (double)r->bytes / total);
        svg_text(out, X0 + (shown % 2) * 540 + 14, ly, 12, "start", line);
        shown++;
    }
    return y + 44 + ((shown + 1) / 2) * ROW + 14;
}

/* "fwd block 3 micro 1" */
static void op_label(const hz_plan *p, int i, char *buf, size_t n)
{
    const hz_op *o = &p->ops[i];
    const hz_unit *u = &p->units[o->unit];
    char unit[32], micro[24] = "";
    if (u->layer >= 0) snprintf(unit, sizeof unit, "%s %d", hz_unit_names[u->kind], u->layer);
    else snprintf(unit, sizeof unit, "%s", hz_unit_names[u->kind]);
    if (o->micro >= 0) snprintf(micro, sizeof micro, " micro %d", o->micro);
    snprintf(buf, n, "%s %s%s", hz_op_names[o->kind], unit, micro);
}

static double timeline(const hzc_plan *pl, const tm_ceilings *c, FILE *out, double y,
                       const double *t0, const double *t1, double span)
{
    const hz_plan *p = &pl->p;
    const double lx = X0 + 80, tw = W - X0 - lx, rh = 26;
    char line[256], attrs[240], label[96];
    snprintf(line, sizeof line, "one step as the step-time model predicts it: %.3f ms of "
             "ops (the model's step: %.3f ms)", span * 1e3, p->pred.step_s * 1e3);
    svg_text(out, X0, y, 15, "start", line);
    snprintf(line, sizeof line, "rates: %s", c->name);
    svg_text(out, X0, y + 16, 12, "start", line);
    y += 28;
    double scale = span > 0 ? tw / span : 0;
    for (int s = 0; s < HZ_STREAM_KIND_N; s++) {
        double ry = y + s * rh;
        svg_rect(out, lx, ry, tw, rh - 4, "#f4f4f4", NULL, NULL);
        svg_text(out, lx - 6, ry + rh / 2 + 2, 12, "end", hz_stream_names[s]);
    }
    for (int i = 0; i < p->op_n; i++) {
        const hz_op *o = &p->ops[i];
        op_label(p, i, label, sizeof label);
        snprintf(attrs, sizeof attrs, "class=\"op\" data-op=\"%d\" data-kind=\"%s\" "
                 "data-stream=\"%s\" data-t0=\"%.9g\" data-t1=\"%.9g\"",
                 i, hz_op_names[o->kind], hz_stream_names[o->stream], t0[i], t1[i]);
        snprintf(line, sizeof line, "%s: %.4f to %.4f ms", label, t0[i] * 1e3, t1[i] * 1e3);
        double w = (t1[i] - t0[i]) * scale;
        svg_rect(out, lx + t0[i] * scale, y + o->stream * rh + 1, w < 0.5 ? 0.5 : w, rh - 6,
                 svg_color(o->kind), line, attrs);
    }
    double ay = y + HZ_STREAM_KIND_N * rh + 4;
    for (int k = 0; k <= 5; k++) {
        double x = lx + tw * k / 5.0;
        svg_line(out, x, ay, x, ay + 5, "#555555");
        snprintf(line, sizeof line, "%.4g ms", span * 1e3 * k / 5.0);
        svg_text(out, x, ay + 17, 11, k == 0 ? "start" : k == 5 ? "end" : "middle", line);
    }
    y = ay + 36;
    for (int k = 0; k < HZ_OP_KIND_N; k++) {
        svg_rect(out, X0 + k * 130, y - 10, 10, 10, svg_color(k), NULL, NULL);
        svg_text(out, X0 + k * 130 + 14, y, 12, "start", hz_op_names[k]);
    }
    return y + 2 * ROW;
}

static double phases(const hz_plan *p, FILE *out, double y)
{
    char line[256], attrs[128];
    svg_text(out, X0, y, 15, "start", "predicted phases (each alone; the step overlaps them)");
    y += 6;
    double most = p->pred.step_s;
    int phase_n = hz_plan_phase_n(p);
    for (int k = 0; k < phase_n; k++)
        if (p->pred.phase_s[k] > most) most = p->pred.phase_s[k];
    for (int k = 0; k <= phase_n; k++) {
        double s = k < phase_n ? p->pred.phase_s[k] : p->pred.step_s;
        const char *name = k < phase_n ? hz_phase_names[k] : "step";
        snprintf(attrs, sizeof attrs, "class=\"phase\" data-name=\"%s\" data-seconds=\"%.9g\"",
                 name, s);
        snprintf(line, sizeof line, "%s: %.4f ms", name, s * 1e3);
        double ry = y + k * ROW;
        svg_rect(out, X0 + 150, ry + 3, most > 0 ? 600 * s / most : 0, ROW - 4,
                 k < phase_n ? "#7f9fbf" : "#333333", line, attrs);
        svg_text(out, X0 + 144, ry + ROW - 2, 12, "end", name);
        snprintf(line, sizeof line, "%.4f ms%s", s * 1e3,
                 k == p->pred.critical ? "  (critical path)" : "");
        svg_text(out, X0 + 156 + (most > 0 ? 600 * s / most : 0), ry + ROW - 2, 12, "start", line);
    }
    return y + (phase_n + 1) * ROW + 10;
}

int plan_svg(const hzc_plan *pl, const tm_ceilings *c, const char *path, FILE *err)
{
    const hz_plan *p = &pl->p;
    double *t0 = calloc((size_t)p->op_n + 1, sizeof *t0), *t1 = calloc((size_t)p->op_n + 1, sizeof *t1);
    FILE *out = t0 && t1 ? fopen(path, "w") : NULL;
    if (!out) {
        fprintf(err, "hzc: error: --svg %s: cannot write there\n", path);
        free(t0);
        free(t1);
        return 1;
    }
    double span = tm_timeline(p, c, t0, t1);
    double height = 60 + 70 + 2 * ROW + 70 + (HZ_REGION_KIND_N / 2 + 1) * ROW + 60 +
                    HZ_STREAM_KIND_N * 26 + 70 + (hz_plan_phase_n(p) + 2) * ROW + 20;
    svg_begin(out, W, height);
    char line[256];
    fprintf(out, "<title>");
    svg_escape(out, p->spec_name);
    fprintf(out, " plan</title>\n");
    snprintf(line, sizeof line, "plan for %.64s: %lld parameters, %lld tokens per step "
             "(%lld micro-batches of %lld x %lld)",
             p->spec_name, (long long)p->params_n, (long long)p->dims.step_tokens,
             (long long)p->dims.n_micro, (long long)p->dims.B, (long long)p->dims.T);
    svg_text(out, X0, 26, 18, "start", line);
    double y = host_store(pl, out, 60);
    y = arena(pl, out, y + 10);
    y = timeline(pl, c, out, y + 10, t0, t1, span);
    phases(p, out, y + 10);
    svg_end(out);
    free(t0);
    free(t1);
    if (fclose(out) != 0) {
        fprintf(err, "hzc: error: --svg %s: cannot write there\n", path);
        return 1;
    }
    fprintf(err, "hzc: wrote %s\n", path);
    return 0;
}
