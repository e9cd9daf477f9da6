/* compiler/report.h - hzc report: a training run as one self-contained HTML page
 * (report.c reads the metrics, the plan and the trace; report_chart.c draws the inline SVG
 * charts). */
#ifndef HZC_REPORT_H
#define HZC_REPORT_H
#include <stdio.h>

/* One line of a chart: N points (x[i], y[i]). */
typedef struct rp_series {
    const char *name, *color;
    double *x, *y;
    int n, cap;
    int markers; /* draw a dot at every point (few points, as evaluations) */
} rp_series;

/* One segment of a memory bar. */
typedef struct rp_bar {
    const char *name;
    double bytes;
} rp_bar;

/* One event of a trace on track TID, from TS for DUR microseconds. */
typedef struct rp_event {
    char *name;
    int tid;
    double ts, dur;
} rp_event;

/* Add (x, y) to S; 0, or -1 out of memory. A point at or before the last x replaces the
 * points from there on (a resumed run logs those steps again). */
int rp_add(rp_series *s, double x, double y);
void rp_free(rp_series *s);

/* An SVG line chart with axes and ticks (<svg id="ID">), the lines of S[0..N). */
void rp_line_chart(FILE *out, const char *id, const char *title, const char *ylabel,
                   const rp_series *s, int n);
/* Two rows of stacked bars on one byte scale: PLANNED (by region or array) and MEASURED. */
void rp_memory_chart(FILE *out, const char *id, const char *title, const rp_bar *planned,
                     int planned_n, const rp_bar *measured, int measured_n);
/* The events of one traced step, one row per track (TRACKS[tid]). */
void rp_timeline(FILE *out, const char *id, const char *title, const rp_event *ev, int n,
                 const char *const *tracks, int track_n);

/* hzc report RUN [-o FILE] [--plan FILE] [--trace FILE] (ARGV after "report"). */
int report_command(int argc, char **argv);

#endif
