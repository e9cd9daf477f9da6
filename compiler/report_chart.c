/* compiler/report_chart.c - the charts of hzc report as inline SVG: line charts with
 * axes and ticks, memory bars planned beside measured, and one traced step's timeline.
 * Each chart's elements carry their numbers as data- attributes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "svg.h"

int rp_add(rp_series *s, double x, double y)
{
    while (s->n > 0 && s->x[s->n - 1] >= x) s->n--;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        double *nx = realloc(s->x, (size_t)cap * sizeof *nx);
        if (!nx) return -1;
        s->x = nx;
        double *ny = realloc(s->y, (size_t)cap * sizeof *ny);
        if (!ny) return -1;
        s->y = ny;
        s->cap = cap;
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
    return 0;
}

void rp_free(rp_series *s)
{
    free(s->x);
    free(s->y);
    s->x = s->y = NULL;
    s->n = s->cap = 0;
}

/* A tick spacing of 1, 2 or 5 times a power of ten that cuts RANGE into about 5. */
static double tick_step(double range)
{
    if (!(range > 0)) return 1.0;
    double raw = range / 5.0, p = pow(10.0, floor(log10(raw))), f = raw / p;
    return p * (f < 1.5 ? 1.0 : f < 3.5 ? 2.0 : f < 7.5 ? 5.0 : 10.0);
}

#define CW 540.0 /* chart width */
#define CH 280.0 /* chart height */
#define ML 64.0  /* left margin: the y tick labels */
#define MR 16.0
#define MT 34.0
#define MB 40.0

void rp_line_chart(FILE *out, const char *id, const char *title, const char *ylabel,
                   const rp_series *s, int n)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].y[i])) continue;
            x0 = fmin(x0, s[k].x[i]), x1 = fmax(x1, s[k].x[i]);
            y0 = fmin(y0, s[k].y[i]), y1 = fmax(y1, s[k].y[i]);
        }
    fprintf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"%s\" width=\"%.0f\" "
                 "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\">\n",
            id, CW, CH, CW, CH);
    svg_text(out, ML, 20, 14, "start", title);
    if (!(x1 >= x0)) {
        svg_text(out, CW / 2, CH / 2, 13, "middle", "no data");
        fputs("</svg>\n", out);
        return;
    }
    if (x1 == x0) x0 -= 1, x1 += 1;
    if (y1 == y0) y0 -= fabs(y0) * 0.1 + 1e-12, y1 += fabs(y1) * 0.1 + 1e-12;
    double ys = tick_step(y1 - y0), xs = tick_step(x1 - x0);
    y0 = floor(y0 / ys) * ys, y1 = ceil(y1 / ys) * ys;
    double pw = CW - ML - MR, ph = CH - MT - MB;
#define PX(v) (ML + ((v) - x0) / (x1 - x0) * pw)
#define PY(v) (MT + (1.0 - ((v) - y0) / (y1 - y0)) * ph)
    char label[64];
    for (double v = y0; v <= y1 + ys * 1e-6; v += ys) {
        svg_line(out, ML, PY(v), ML + pw, PY(v), "#e4e4e4");
        snprintf(label, sizeof label, "%.4g", fabs(v) < ys * 1e-6 ? 0.0 : v);
        svg_text(out, ML - 6, PY(v) + 4, 11, "end", label);
    }
    for (double v = ceil(x0 / xs) * xs; v <= x1 + xs * 1e-6; v += xs) {
        svg_line(out, PX(v), MT + ph, PX(v), MT + ph + 5, "#555555");
        snprintf(label, sizeof label, "%.6g", v);
        svg_text(out, PX(v), MT + ph + 18, 11, "middle", label);
    }
    svg_line(out, ML, MT + ph, ML + pw, MT + ph, "#555555");
    svg_line(out, ML, MT, ML, MT + ph, "#555555");
    svg_text(out, ML + pw / 2, CH - 6, 12, "middle", "step");
    fprintf(out, "<text x=\"14\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\" "
                 "transform=\"rotate(-90 14 %.1f)\">", MT + ph / 2, MT + ph / 2);
    svg_escape(out, ylabel);
    fputs("</text>\n", out);
    for (int k = 0; k < n; k++) {
        double *px = malloc((size_t)(s[k].n + 1) * sizeof *px);
        double *py = malloc((size_t)(s[k].n + 1) * sizeof *py);
        int m = 0;
        for (int i = 0; px && py && i < s[k].n; i++) {
            if (!isfinite(s[k].y[i])) continue; /* a diverged step: a gap in the data */
            px[m] = PX(s[k].x[i]);
            py[m++] = PY(s[k].y[i]);
        }
        char attrs[160];
        snprintf(attrs, sizeof attrs, "class=\"series\" data-name=\"%s\" data-n=\"%d\" "
                 "data-last=\"%.9g\"", s[k].name, m, s[k].n ? s[k].y[s[k].n - 1] : 0.0);
        svg_polyline(out, px, py, m, s[k].color, attrs);
        for (int i = 0; s[k].markers && i < m; i++)
            fprintf(out, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"%s\"/>\n", px[i], py[i],
                    s[k].color);
        svg_rect(out, ML + pw - 150, MT + 6 + k * 16, 10, 10, s[k].color, NULL, NULL);
        svg_text(out, ML + pw - 136, MT + 15 + k * 16, 11, "start", s[k].name);
        free(px);
        free(py);
    }
#undef PX
#undef PY
    fputs("</svg>\n", out);
}

/* One stacked bar of BARS at Y, on SCALE pixels per byte. */
static void bar_row(FILE *out, const char *row, const rp_bar *bars, int n, double y,
                    double scale, int color0)
{
    char attrs[200], title[200], b[32];
    svg_text(out, 78, y + 17, 12, "end", row);
    double x = 84, total = 0;
    for (int i = 0; i < n; i++) {
        snprintf(attrs, sizeof attrs, "class=\"bar\" data-row=\"%s\" data-name=\"%s\" "
                 "data-bytes=\"%.0f\"", row, bars[i].name, bars[i].bytes);
        snprintf(title, sizeof title, "%s %s: %.0f bytes (%s)", row, bars[i].name,
                 bars[i].bytes, svg_bytes(b, sizeof b, bars[i].bytes));
        svg_rect(out, x, y, bars[i].bytes * scale, 24, svg_color(color0 + i), title, attrs);
        x += bars[i].bytes * scale;
        total += bars[i].bytes;
    }
    svg_text(out, x + 6, y + 17, 12, "start", svg_bytes(b, sizeof b, total));
}

void rp_memory_chart(FILE *out, const char *id, const char *title, const rp_bar *planned,
                     int planned_n, const rp_bar *measured, int measured_n)
{
    double W = 1100, most = 0, sum = 0;
    for (int i = 0; i < planned_n; i++) sum += planned[i].bytes;
    most = sum;
    for (int i = 0; i < measured_n; i++) most = fmax(most, measured[i].bytes);
    int legend_rows = (planned_n + 3) / 4;
    double H = 50 + 34 * (1 + measured_n) + 18 * legend_rows + 10;
    fprintf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"%s\" width=\"%.0f\" "
                 "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\">\n",
            id, W, H, W, H);
    svg_text(out, 10, 20, 14, "start", title);
    double scale = most > 0 ? (W - 84 - 120) / most : 0;
    bar_row(out, "planned", planned, planned_n, 34, scale, 0);
    /* each measured line is its own bar, grey: one number, no breakdown */
    for (int i = 0; i < measured_n; i++) {
        bar_row(out, "measured", &measured[i], 1, 34 + 34 * (i + 1), scale, 9);
        svg_text(out, 90, 34 + 34 * (i + 1) + 17, 11, "start", measured[i].name);
    }
    double ly = 34 + 34 * (1 + measured_n) + 12;
    char b[32], line[160];
    for (int i = 0; i < planned_n; i++) {
        double x = 84 + (i % 4) * 250, y = ly + (i / 4) * 18;
        svg_rect(out, x, y - 9, 10, 10, svg_color(i), NULL, NULL);
        snprintf(line, sizeof line, "%s %s", planned[i].name, svg_bytes(b, sizeof b, planned[i].bytes));
        svg_text(out, x + 14, y, 11, "start", line);
    }
    fputs("</svg>\n", out);
}

void rp_timeline(FILE *out, const char *id, const char *title, const rp_event *ev, int n,
                 const char *const *tracks, int track_n)
{
    double W = 1100, lx = 80, tw = W - lx - 20, rh = 28, H = 60 + track_n * rh + 40;
    double t0 = INFINITY, t1 = -INFINITY;
    for (int i = 0; i < n; i++) t0 = fmin(t0, ev[i].ts), t1 = fmax(t1, ev[i].ts + ev[i].dur);
    fprintf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"%s\" width=\"%.0f\" "
                 "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\">\n",
            id, W, H, W, H);
    svg_text(out, 10, 20, 14, "start", title);
    double scale = t1 > t0 ? tw / (t1 - t0) : 0;
    for (int k = 0; k < track_n; k++) {
        svg_rect(out, lx, 36 + k * rh, tw, rh - 4, "#f4f4f4", NULL, NULL);
        svg_text(out, lx - 6, 36 + k * rh + 17, 12, "end", tracks[k]);
    }
    char attrs[300], label[300];
    for (int i = 0; i < n; i++) {
        if (ev[i].tid < 0 || ev[i].tid >= track_n) continue;
        /* the colour by the op kind: the name's first word */
        int kind = 0;
        for (const char *c = ev[i].name; *c && *c != ' '; c++) kind = kind * 31 + *c;
        snprintf(attrs, sizeof attrs, "class=\"event\" data-track=\"%s\" data-ts=\"%.3f\" "
                 "data-dur=\"%.3f\"", tracks[ev[i].tid], ev[i].ts, ev[i].dur);
        snprintf(label, sizeof label, "%.200s: %.3f ms from %.3f ms", ev[i].name,
                 ev[i].dur * 1e-3, (ev[i].ts - t0) * 1e-3);
        double w = ev[i].dur * scale;
        svg_rect(out, lx + (ev[i].ts - t0) * scale, 36 + ev[i].tid * rh + 1, w < 0.5 ? 0.5 : w,
                 rh - 6, svg_color(kind), label, attrs);
    }
    double ay = 36 + track_n * rh + 2;
    for (int k = 0; k <= 5 && t1 > t0; k++) {
        double x = lx + tw * k / 5.0;
        svg_line(out, x, ay, x, ay + 5, "#555555");
        snprintf(label, sizeof label, "%.4g ms", (t1 - t0) * 1e-3 * k / 5.0);
        svg_text(out, x, ay + 18, 11, k == 0 ? "start" : k == 5 ? "end" : "middle", label);
    }
    fputs("</svg>\n", out);
}
