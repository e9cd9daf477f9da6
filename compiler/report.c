/* compiler/report.c - hzc report RUN: the metrics log of a run (train --metrics), its
 * plan.json and, when there is one, its Chrome trace, turned into one self-contained
 * HTML page (inline SVG, no script, nothing fetched): loss, val loss, lr and throughput
 * by step, memory planned beside measured, one traced step by stream, the samples. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "report.h"
#include "svg.h"

#define RP_MAX_BARS 16 /* regions of the arena, memory lines of the summary */

typedef struct run_data {
    json_t *run, *summary;         /* the last of each (NULL: none) */
    json_t *samples;               /* array of the sample records */
    rp_series loss, val, lr, tok_s, tflops;
    int records;
} run_data;

/* Read the metrics file PATH; 0, or -1 after saying why. */
static int read_metrics(const char *path, run_data *d)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "hzc: error: report: cannot open %s (a train --metrics file, or a "
                        "--out directory holding metrics.jsonl)\n", path);
        return -1;
    }
    d->samples = json_array();
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == strlen(line)) continue;
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        const char *type = o ? json_string_value(json_object_get(o, "type")) : NULL;
        if (!type) {
            fprintf(stderr, "hzc: error: %s:%d: not a metrics record: %s\n", path, lineno,
                    o ? "no \"type\"" : je.text);
            json_decref(o);
            rc = -1;
            break;
        }
        d->records++;
        double step = json_number_value(json_object_get(o, "step"));
        /* a null number (a diverged step) is NaN: a gap in the line */
#define NUM(key) (json_is_number(json_object_get(o, key)) ? json_number_value(json_object_get(o, key)) : NAN)
        int bad = 0;
        if (!strcmp(type, "run")) {
            json_decref(d->run);
            d->run = json_incref(o);
        } else if (!strcmp(type, "summary")) {
            json_decref(d->summary);
            d->summary = json_incref(o);
        } else if (!strcmp(type, "sample")) {
            json_array_append(d->samples, o);
        } else if (!strcmp(type, "eval")) {
            bad = rp_add(&d->val, step, NUM("val_loss"));
        } else if (!strcmp(type, "step")) {
            bad = rp_add(&d->loss, step, NUM("loss")) || rp_add(&d->lr, step, NUM("lr")) ||
                  rp_add(&d->tok_s, step, NUM("tokens_per_s")) ||
                  rp_add(&d->tflops, step, NUM("model_tflops"));
        }
#undef NUM
        json_decref(o);
        if (bad) {
            fprintf(stderr, "hzc: error: report: out of memory\n");
            rc = -1;
            break;
        }
    }
    free(line);
    fclose(f);
    if (rc == 0 && d->loss.n == 0) {
        fprintf(stderr, "hzc: error: %s: no step records (train --metrics writes them)\n", path);
        rc = -1;
    }
    return rc;
}

static const char *str_of(json_t *o, const char *key, const char *dflt)
{
    const char *s = o ? json_string_value(json_object_get(o, key)) : NULL;
    return s ? s : dflt;
}

static double num_of(json_t *o, const char *key)
{
    json_t *v = o ? json_object_get(o, key) : NULL;
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* ---- the page ---- */

static void row(FILE *out, const char *key, const char *value)
{
    fputs("<tr><th>", out);
    svg_escape(out, key);
    fputs("</th><td>", out);
    svg_escape(out, value);
    fputs("</td></tr>\n", out);
}

static void summary_table(FILE *out, const run_data *d, json_t *plan)
{
    char v[256];
    fputs("<table id=\"summary\">\n", out);
    row(out, "model", str_of(d->run, "spec", "?"));
    snprintf(v, sizeof v, "%.0f", num_of(d->run, "params"));
    row(out, "parameters", v);
    row(out, "backend", str_of(d->run, "backend", "?"));
    snprintf(v, sizeof v, "%.0f", num_of(d->run, "step_tokens"));
    row(out, "tokens per step", v);
    snprintf(v, sizeof v, "%.0f of %.0f", d->loss.x[d->loss.n - 1], num_of(d->run, "steps"));
    row(out, "steps logged", v);
    snprintf(v, sizeof v, "%.4f", d->loss.y[d->loss.n - 1]);
    row(out, "last loss", v);
    if (d->val.n) {
        snprintf(v, sizeof v, "%.4f (after step %.0f)", d->val.y[d->val.n - 1], d->val.x[d->val.n - 1]);
        row(out, "last val loss", v);
    }
    if (d->summary) {
        snprintf(v, sizeof v, "%.0f tokens/s, %.4g model TFLOP/s", num_of(d->summary, "tokens_per_s"),
                 num_of(d->summary, "model_tflops"));
        row(out, "throughput (steps after the first)", v);
    }
    json_t *pred = plan ? json_object_get(plan, "predicted") : NULL;
    if (pred) {
        snprintf(v, sizeof v, "%.4g ms (%s)", num_of(pred, "step_s") * 1e3,
                 str_of(pred, "ceilings", "?"));
        row(out, "predicted step (the plan's model of its GPU)", v);
    }
    row(out, "started", str_of(d->run, "started", "?"));
    fputs("</table>\n", out);
}

/* The host and GPU bars: the plan's arrays and regions beside the summary's measurements. */
static void memory(FILE *out, const run_data *d, json_t *plan)
{
    rp_bar host[8], gpu[RP_MAX_BARS], mhost[RP_MAX_BARS], mgpu[RP_MAX_BARS];
    int hn = 0, gn = 0, mhn = 0, mgn = 0;
    if (plan) {
        double store = num_of(plan, "host_store_bytes"), g = !strcmp(str_of(plan, "host_grad_dtype", ""), "bf16") ? 2 : 4;
        static const char *const arr[] = {"w", "lo", "m", "v", "g"};
        const double per[] = {2, 2, 4, 4, g};
        double sum = 2 + 2 + 4 + 4 + g;
        for (int k = 0; k < 5; k++) host[hn++] = (rp_bar){arr[k], store * per[k] / sum};
        host[hn++] = (rp_bar){"extras", num_of(plan, "host_extra_bytes")};
        json_t *regions = json_object_get(plan, "regions"), *r;
        size_t i;
        json_array_foreach(regions, i, r) {
            if (gn == RP_MAX_BARS) break;
            gpu[gn++] = (rp_bar){str_of(r, "name", "?"), num_of(r, "bytes")};
        }
    }
    json_t *lines = d->summary ? json_object_get(d->summary, "memory") : NULL, *l;
    size_t i;
    json_array_foreach(lines, i, l) {
        const char *what = str_of(l, "what", "?");
        rp_bar b = {what, num_of(l, "measured")};
        if (strstr(what, "host") == what && mhn < RP_MAX_BARS) mhost[mhn++] = b;
        else if (mgn < RP_MAX_BARS) mgpu[mgn++] = b;
    }
    if (!plan && !lines) {
        fputs("<p>No plan.json and no summary record: nothing to show.</p>\n", out);
        return;
    }
    char title[160];
    snprintf(title, sizeof title, "host memory: planned by array (%.0f bytes) and measured",
             plan ? num_of(plan, "host_bytes") : 0.0);
    rp_memory_chart(out, "memory-host", title, host, hn, mhost, mhn);
    snprintf(title, sizeof title, "GPU memory: the planned arena by region (%.0f bytes) and "
             "measured", plan ? num_of(plan, "gpu_bytes") : 0.0);
    rp_memory_chart(out, "memory-gpu", title, gpu, gn, mgpu, mgn);
    if (!d->summary)
        fputs("<p>The run wrote no summary record (it was stopped): no measured bytes.</p>\n", out);
}

/* The events of one traced step: its device ops, the host updates of the step before (which
 * its loads wait for), and whatever else ran meanwhile. */
static void trace_step(FILE *out, const char *path)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je), *ev = json_object_get(root, "traceEvents"), *e;
    if (!json_is_array(ev)) {
        fputs("<p>The trace could not be read: ", out);
        svg_escape(out, je.text);
        fputs("</p>\n", out);
        json_decref(root);
        return;
    }
    const char *tracks[8] = {"0", "1", "2", "3", "4", "5", "6", "7"};
    int track_n = 0;
    /* the last traced step whose previous step's updates are traced too, else the one
     * before the last traced, else the last */
    double last = 0, prev = 0, best = 0;
    size_t i;
    json_array_foreach(ev, i, e) {
        int tid = (int)json_integer_value(json_object_get(e, "tid"));
        if (tid < 0 || tid >= 8) continue;
        if (!strcmp(str_of(e, "ph", ""), "M")) {
            tracks[tid] = str_of(json_object_get(e, "args"), "name", tracks[tid]);
            if (tid + 1 > track_n) track_n = tid + 1;
        }
    }
    json_array_foreach(ev, i, e) {
        int tid = (int)json_integer_value(json_object_get(e, "tid"));
        if (tid < 0 || tid >= 8 || strcmp(str_of(e, "ph", ""), "X")) continue;
        double s = num_of(json_object_get(e, "args"), "step");
        if (!strcmp(tracks[tid], "host")) continue;
        if (s > last) prev = last, last = s;
        else if (s < last && s > prev) prev = s;
    }
    json_array_foreach(ev, i, e) {
        int tid = (int)json_integer_value(json_object_get(e, "tid"));
        double s = num_of(json_object_get(e, "args"), "step");
        if (tid >= 0 && tid < 8 && !strcmp(tracks[tid], "host") && s + 1 <= last && s + 1 > best)
            best = s + 1;
    }
    double step = best > 0 ? best : prev > 0 ? prev : last, a = INFINITY, b = -INFINITY;
    /* the step's device ops, and the host updates of the step before, which it waits for */
    json_array_foreach(ev, i, e) {
        int tid = (int)json_integer_value(json_object_get(e, "tid"));
        double s = num_of(json_object_get(e, "args"), "step");
        int host = tid >= 0 && tid < 8 && !strcmp(tracks[tid], "host");
        if (strcmp(str_of(e, "ph", ""), "X") || s != (host ? step - 1 : step)) continue;
        a = fmin(a, num_of(e, "ts"));
        b = fmax(b, num_of(e, "ts") + num_of(e, "dur"));
    }
    rp_event *list = calloc(json_array_size(ev) + 1, sizeof *list);
    int n = 0;
    json_array_foreach(ev, i, e) {
        double ts = num_of(e, "ts"), dur = num_of(e, "dur");
        if (!list || strcmp(str_of(e, "ph", ""), "X") || !(ts < b && ts + dur > a)) continue;
        list[n++] = (rp_event){(char *)str_of(e, "name", "?"),
                               (int)json_integer_value(json_object_get(e, "tid")), ts, dur};
    }
    char title[200];
    snprintf(title, sizeof title, "step %.0f as traced, with the updates of the step before: "
             "%d events in %.3f ms", step, n, (b - a) * 1e-3);
    if (n > 0) rp_timeline(out, "timeline", title, list, n, tracks, track_n);
    else fputs("<p>The trace holds no step.</p>\n", out);
    free(list);
    json_decref(root);
}

static void samples(FILE *out, const run_data *d)
{
    size_t i;
    json_t *s;
    if (json_array_size(d->samples) == 0) return;
    fputs("<h2>Samples</h2>\n", out);
    json_array_foreach(d->samples, i, s) {
        fprintf(out, "<h3>after step %.0f</h3>\n<pre class=\"sample\">", num_of(s, "step"));
        const char *text = str_of(s, "text", NULL);
        if (text) {
            svg_escape(out, text);
        } else {
            json_t *ids = json_object_get(s, "tokens"), *t;
            size_t k;
            json_array_foreach(ids, k, t) fprintf(out, "%s%lld", k ? " " : "", (long long)json_integer_value(t));
        }
        fputs("</pre>\n", out);
    }
}

static void page(FILE *out, const run_data *d, json_t *plan, const char *trace,
                 const char *metrics, const char *plan_path)
{
    fputs("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n"
          "<meta charset=\"utf-8\"/>\n<title>hzc report: ", out);
    svg_escape(out, str_of(d->run, "spec", "run"));
    fputs("</title>\n<style>\nbody { font-family: sans-serif; margin: 24px; color: #222; }\n"
          ".charts { display: flex; flex-wrap: wrap; gap: 12px; }\n"
          "table { border-collapse: collapse; }\n"
          "th, td { padding: 3px 12px; text-align: left; border-bottom: 1px solid #ddd; }\n"
          "pre { background: #f6f6f6; padding: 8px; white-space: pre-wrap; }\n"
          "svg { background: #ffffff; }\n</style>\n</head>\n<body>\n<h1>", out);
    svg_escape(out, str_of(d->run, "spec", "run"));
    fputs(": a training run</h1>\n", out);
    summary_table(out, d, plan);
    fputs("<h2>Training</h2>\n<div class=\"charts\">\n", out);
    rp_series loss[2] = {d->loss, d->val};
    loss[0].name = "loss", loss[0].color = "#4e79a7";
    loss[1].name = "val loss", loss[1].color = "#e15759", loss[1].markers = 1;
    rp_line_chart(out, "loss", "loss by step", "loss", loss, d->val.n ? 2 : 1);
    rp_series lr = d->lr, tok = d->tok_s, tf = d->tflops;
    lr.name = "lr", lr.color = "#59a14f";
    tok.name = "tokens/s", tok.color = "#f28e2b";
    tf.name = "model TFLOP/s", tf.color = "#b07aa1";
    rp_line_chart(out, "lr", "learning rate", "lr", &lr, 1);
    rp_line_chart(out, "throughput", "throughput", "tokens/s", &tok, 1);
    rp_line_chart(out, "tflops", "model TFLOP/s (DESIGN.md accounting)", "TFLOP/s", &tf, 1);
    fputs("</div>\n<h2>Memory</h2>\n", out);
    memory(out, d, plan);
    fputs("<h2>One step by stream</h2>\n", out);
    if (trace) trace_step(out, trace);
    else fputs("<p>No trace (train --trace FILE writes one; hzc report --trace FILE reads "
               "it).</p>\n", out);
    samples(out, d);
    fputs("<p class=\"sources\">From ", out);
    svg_escape(out, metrics);
    if (plan_path) {
        fputs(", ", out);
        svg_escape(out, plan_path);
    }
    if (trace) {
        fputs(", ", out);
        svg_escape(out, trace);
    }
    fputs(" by hzc report.</p>\n</body>\n</html>\n", out);
}

static int readable(const char *path)
{
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int usage(void)
{
    fprintf(stderr, "hzc: error: usage: hzc report RUN [-o FILE.html] [--plan plan.json] "
                    "[--trace FILE] (RUN: a train --metrics file or its --out directory)\n");
    return 1;
}

int report_command(int argc, char **argv)
{
    const char *runp = NULL, *outp = "report.html", *planp = NULL, *tracep = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **dst = !strcmp(a, "-o") ? &outp : !strcmp(a, "--plan") ? &planp
                           : !strcmp(a, "--trace") ? &tracep : NULL;
        if (dst && v) {
            *dst = v;
            i++;
        } else if (dst || a[0] == '-' || runp) {
            return usage();
        } else {
            runp = a;
        }
    }
    if (!runp) return usage();
    char metrics[4200];
    struct stat st;
    if (stat(runp, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", runp);
    else
        snprintf(metrics, sizeof metrics, "%s", runp);
    run_data d;
    memset(&d, 0, sizeof d);
    int rc = 1;
    json_t *plan = NULL;
    if (read_metrics(metrics, &d) != 0) goto done;
    if (!planp) planp = str_of(d.run, "plan", NULL);
    if (planp) {
        json_error_t je;
        if (!(plan = json_load_file(planp, 0, &je))) {
            fprintf(stderr, "hzc: error: report: %s:%d: %s (--plan FILE names the trainer's "
                            "DIR/generated/plan.json)\n", planp, je.line, je.text);
            goto done;
        }
    }
    if (!tracep && readable(str_of(d.run, "trace", NULL))) tracep = str_of(d.run, "trace", NULL);
    if (tracep && !readable(tracep)) {
        fprintf(stderr, "hzc: error: report: --trace %s: no such file\n", tracep);
        goto done;
    }
    FILE *out = fopen(outp, "w");
    if (!out) {
        fprintf(stderr, "hzc: error: report: cannot write %s\n", outp);
        goto done;
    }
    page(out, &d, plan, tracep, metrics, plan ? planp : NULL);
    if (fclose(out) != 0) {
        fprintf(stderr, "hzc: error: report: cannot write %s\n", outp);
        goto done;
    }
    fprintf(stderr, "hzc: wrote %s (%d records%s%s)\n", outp, d.records,
            plan ? ", the plan" : ", no plan.json", tracep ? ", a trace" : ", no trace");
    rc = 0;
done:
    json_decref(plan);
    json_decref(d.run);
    json_decref(d.summary);
    json_decref(d.samples);
    rp_free(&d.loss);
    rp_free(&d.val);
    rp_free(&d.lr);
    rp_free(&d.tok_s);
    rp_free(&d.tflops);
    return rc;
}
