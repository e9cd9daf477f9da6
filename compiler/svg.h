/* compiler/svg.h - the few SVG elements hzc's pictures are made of (svg.c): text escaped
 * for XML, rectangles with a tooltip and data- attributes, text, lines, polylines. */
#ifndef HZC_SVG_H
#define HZC_SVG_H
#include <stdio.h>

/* S with &, <, >, " and ' escaped, into OUT. */
void svg_escape(FILE *out, const char *s);
/* <svg> with its namespace, WIDTH x HEIGHT user units, and a white background. */
void svg_begin(FILE *out, double width, double height);
void svg_end(FILE *out);
/* A rectangle filled with FILL; TITLE (NULL: none) is its tooltip; ATTRS (NULL: none) is
 * written into the tag as it is (data- attributes: the caller escapes nothing there). */
void svg_rect(FILE *out, double x, double y, double w, double h, const char *fill,
              const char *title, const char *attrs);
/* Text at (X, Y), SIZE px, ANCHOR start|middle|end; TEXT escaped. */
void svg_text(FILE *out, double x, double y, double size, const char *anchor, const char *text);
void svg_line(FILE *out, double x1, double y1, double x2, double y2, const char *stroke);
/* A polyline through N points (X[i], Y[i]) in STROKE; ATTRS as for svg_rect. */
void svg_polyline(FILE *out, const double *x, const double *y, int n, const char *stroke,
                  const char *attrs);
/* "1.23 GiB", "45.6 MiB", "789 B": BYTES for a label, in BUF (N bytes). */
const char *svg_bytes(char *buf, size_t n, double bytes);
/* The fill colour of item K of a palette of distinct colours. */
const char *svg_color(int k);

#endif
