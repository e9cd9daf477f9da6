/* compiler/svg.c - SVG elements for hzc's pictures (hzc plan --svg, hzc report): XML
 * escaping, and each element written whole, so a picture is well-formed by construction. */
#include "svg.h"

void svg_escape(FILE *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&#39;", out); break;
        default:
            /* control characters are not allowed in XML 1.0 */
            if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n') fputc('?', out);
            else fputc(*s, out);
        }
    }
}

void svg_begin(FILE *out, double width, double height)
{
    fprintf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                 "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\">\n",
            width, height, width, height);
    fprintf(out, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n",
            width, height);
}

void svg_end(FILE *out)
{
    fputs("</svg>\n", out);
}

void svg_rect(FILE *out, double x, double y, double w, double h, const char *fill,
              const char *title, const char *attrs)
{
    fprintf(out, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"%s%s",
            x, y, w, h, fill, attrs ? " " : "", attrs ? attrs : "");
    if (title) {
        fputs("><title>", out);
        svg_escape(out, title);
        fputs("</title></rect>\n", out);
    } else {
        fputs("/>\n", out);
    }
}

void svg_text(FILE *out, double x, double y, double size, const char *anchor, const char *text)
{
    fprintf(out, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"%.1f\" text-anchor=\"%s\">", x, y,
            size, anchor);
    svg_escape(out, text);
    fputs("</text>\n", out);
}

void svg_line(FILE *out, double x1, double y1, double x2, double y2, const char *stroke)
{
    fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\"/>\n",
            x1, y1, x2, y2, stroke);
}

void svg_polyline(FILE *out, const double *x, const double *y, int n, const char *stroke,
                  const char *attrs)
{
    fputs("<polyline fill=\"none\" stroke-width=\"1.5\" points=\"", out);
    for (int i = 0; i < n; i++) fprintf(out, "%s%.2f,%.2f", i ? " " : "", x[i], y[i]);
    fprintf(out, "\" stroke=\"%s\"%s%s/>\n", stroke, attrs ? " " : "", attrs ? attrs : "");
}

const char *svg_bytes(char *buf, size_t n, double bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int k = 0;
    while (bytes >= 1024.0 && k < 4) {
        bytes /= 1024.0;
        k++;
    }
    snprintf(buf, n, k ? "%.2f %s" : "%.0f %s", bytes, units[k]);
    return buf;
}

const char *svg_color(int k)
{
    static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2",
                                          "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                                          "#9c755f", "#bab0ac", "#86bcb6", "#d37295"};
    return palette[(k < 0 ? -k : k) % (int)(sizeof palette / sizeof palette[0])];
}
