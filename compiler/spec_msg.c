/* compiler/spec_msg.c - where a spec error points and how a node is shown in it: the
 * "FILE:LINE:COL: error:" of a node from the file, "override N (KEY=VALUE): error:" of a
 * node from a command-line override (spec_override.c marks those with line -N). */
#include <stdarg.h>
#include <string.h>

#include "spec_read.h"

void spec_error(spec_ctx *c, const yml_node *at, const char *fmt, ...) {
    va_list ap;
    if (++c->errors_n > SPEC_MAX_ERRORS) return;
    if (at->line < 0 && c->overrides)
        fprintf(c->err, "override %d (%s): error: ", -at->line, c->overrides[-at->line - 1]);
    else
        fprintf(c->err, "%s:%d:%d: error: ", c->path, at->line, at->col);
    va_start(ap, fmt);
    vfprintf(c->err, fmt, ap);
    va_end(ap);
    fputc('\n', c->err);
}

const char *spec_describe(const yml_node *node, char *buf) {
    if (node->kind != YML_SCALAR) return yml_kind_name(node->kind);
    if (node->len == 0 && node->plain) return "nothing";
    size_t n = node->len > 40 ? 37 : node->len, o = 0;
    buf[o++] = '\'';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)node->text[i];
        buf[o++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    if (n < node->len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '\'';
    buf[o] = '\0';
    return buf;
}

