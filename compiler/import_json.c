/* compiler/import_json.c - the parts of hzc import that read a config.json's values with
 * jansson and report what is wrong with them, by key (import_read.h). */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "import_read.h"
#include "spec.h"

void imp_error(imp *c, const char *fmt, ...)
{
    if (++c->errors_n > IMPORT_MAX_ERRORS) return;
    va_list ap;
    fprintf(c->err, "%s: error: ", c->src);
    va_start(ap, fmt);
    vfprintf(c->err, fmt, ap);
    va_end(ap);
    fputc('\n', c->err);
}

/* A JSON value for a message: compact, printable, at most 40 bytes. */
const char *imp_shown(const json_t *v, char buf[48])
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    size_t n = s ? strlen(s) : 0, k = n > 40 ? 37 : n, o = 0;
    for (size_t i = 0; i < k; i++)
        buf[o++] = (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f ? s[i] : '?';
    if (k < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = 0;
    free(s);
    return buf;
}

/* The value at KEY, or NULL when absent or JSON null. */
json_t *imp_get(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* The value at WHERE.KEY (WHERE "" at the top level), or NULL, reporting it when required. */
json_t *imp_get_at(imp *c, json_t *obj, const char *where, const char *key, int required)
{
    json_t *v = imp_get(obj, key);
    if (!v && required) imp_error(c, "missing required key '%s%s'", where, key);
    return v;
}

/* An integer in [1, 2^31 - 1] at WHERE.KEY. Returns 1 when present and valid; reports a
 * missing required key or a bad value. */
int imp_size(imp *c, json_t *obj, const char *where, const char *key, int required,
                    int64_t *out)
{
    char buf[48];
    json_t *v = imp_get_at(c, obj, where, key, required);
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > SPEC_MAX_SIZE) {
        imp_error(c, "%s%s: expected an integer from 1 to %lld, got %s", where, key,
                  SPEC_MAX_SIZE, imp_shown(v, buf));
        return 0;
    }
    *out = json_integer_value(v);
    return 1;
}

/* A finite number > 0 at WHERE.KEY; same contract as get_size. */
int imp_pos(imp *c, json_t *obj, const char *where, const char *key, int required,
                   double *out)
{
    char buf[48];
    json_t *v = imp_get_at(c, obj, where, key, required);
    if (!v) return 0;
    double x = json_is_number(v) ? json_number_value(v) : NAN;
    /* spec.c refuses magnitudes below 1e-300 and anything not finite */
    if (!(x >= 1e-300) || !isfinite(x)) {
        imp_error(c, "%s%s: expected a number > 0, got %s", where, key, imp_shown(v, buf));
        return 0;
    }
    *out = x;
    return 1;
}

/* A boolean at KEY, DEF when absent. */
int imp_bool(imp *c, json_t *obj, const char *key, int def)
{
    char buf[48];
    json_t *v = imp_get(obj, key);
    if (!v) return def;
    if (!json_is_boolean(v)) {
        imp_error(c, "%s: expected true or false, got %s", key, imp_shown(v, buf));
        return def;
    }
    return json_is_true(v);
}

/* A string at KEY, or NULL (absent; reported when not a string). */
const char *imp_str(imp *c, json_t *obj, const char *where, const char *key)
{
    char buf[48];
    json_t *v = imp_get(obj, key);
    if (v && !json_is_string(v)) {
        imp_error(c, "%s%s: expected a string, got %s", where, key, imp_shown(v, buf));
        return NULL;
    }
    return v ? json_string_value(v) : NULL;
}


void imp_note(notes *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(n->text + n->len, sizeof n->text - n->len, fmt, ap);
    va_end(ap);
    if (w > 0) n->len = n->len + (size_t)w < sizeof n->text ? n->len + (size_t)w : sizeof n->text - 1;
}

/* Shortest decimal for X that reads back exactly, in a form spec.c reads as a number:
 * 500000, 1e-5, 0.02. */
void imp_fmt_num(char *buf, size_t n, double x)
{
    if (x == floor(x) && fabs(x) < 1e15) {
        snprintf(buf, n, "%.0f", x);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    char *e = strchr(buf, 'e'); /* 1e-05 -> 1e-5, 1e+20 -> 1e20 */
    if (e) {
        char *p = e + 1, *q = e + 1;
        if (*p == '+') p++;
        else if (*p == '-') *q++ = *p++;
        while (*p == '0' && p[1]) p++;
        memmove(q, p, strlen(p) + 1);
    }
}
