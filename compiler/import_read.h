/* compiler/import_read.h - hzc import's own parts, shared by import.c (the families and the
 * YAML), import_gemma.c (Gemma 3's keys) and import_json.c (reading values by key); no
 * other module includes it. Every error names the config key at fault, as
 * "CONFIG: error: KEY: ...". */
#ifndef HZC_IMPORT_READ_H
#define HZC_IMPORT_READ_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "spec.h"

#define IMPORT_MAX_ERRORS 50

typedef struct imp {
    const char *src;
    FILE *err;
    int errors_n;
    const char *where; /* "" at the top level, "text_config." inside a multimodal config: the
                        * prefix the messages of import_gemma.c give their keys */
} imp;

/* Report one error ("SRC: error: ..."); past IMPORT_MAX_ERRORS they are only counted. */
void imp_error(imp *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON value for a message: compact, printable, at most 40 bytes, in BUF. */
const char *imp_shown(const json_t *v, char buf[48]);
/* The value at KEY, or NULL when absent or JSON null. */
json_t *imp_get(json_t *obj, const char *key);
/* The value at WHERE.KEY (WHERE "" at the top level), or NULL, reporting it when required. */
json_t *imp_get_at(imp *c, json_t *obj, const char *where, const char *key, int required);
/* An integer in [1, 2^31 - 1] at WHERE.KEY into *OUT. Returns 1 when present and valid;
 * reports a missing required key or a bad value. */
int imp_size(imp *c, json_t *obj, const char *where, const char *key, int required,
             int64_t *out);
/* A finite number > 0 at WHERE.KEY; same contract as imp_size. */
int imp_pos(imp *c, json_t *obj, const char *where, const char *key, int required, double *out);
/* A boolean at KEY, DEF when absent (reported when not a boolean). */
int imp_bool(imp *c, json_t *obj, const char *key, int def);
/* A string at WHERE.KEY, or NULL (absent; reported when not a string). */
const char *imp_str(imp *c, json_t *obj, const char *where, const char *key);

/* Notes for the YAML's header, one per line. */
typedef struct notes {
    char text[1024];
    size_t len;
} notes;
void imp_note(notes *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Shortest decimal for X that reads back exactly, in a form spec.c reads as a number:
 * 500000, 1e-5, 0.02. */
void imp_fmt_num(char *buf, size_t n, double x);

/* Gemma 3 (import_gemma.c): the text model's keys from CFG (a Gemma3ForCausalLM config, or
 * a Gemma3ForConditionalGeneration's text_config), with Gemma3TextConfig's defaults for
 * the keys it omits, into S; *MAX_POS gets max_position_embeddings. */
void import_gemma3(imp *c, json_t *cfg, hzc_spec *s, int64_t *max_pos);
/* Its keys of the YAML's architecture section beyond the common ones. */
void import_gemma3_yaml(FILE *o, const hzc_spec *s);

#endif
