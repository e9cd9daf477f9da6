/* compiler/spec_read.h - the spec reader's own parts, shared by spec.c (the sections of
 * the model), spec_plan.c (the plan: section), spec_msg.c (error marks) and
 * spec_override.c (KEY=VALUE overrides); no other module includes it.
 * A section is a table of its keys (field_def); spec_load_section checks a mapping
 * against one and converts its plain fields; the rest is each section's own code. */
#ifndef HZC_SPEC_READ_H
#define HZC_SPEC_READ_H
#include <stddef.h>
#include <stdio.h>

#include "spec.h"
#include "yml.h"

#define SPEC_MAX_ERRORS 50
#define SPEC_MAX_FIELDS 24 /* keys of the largest section (architecture) */

typedef struct {
    const char *path;
    FILE *err;
    int errors_n;
    const char *const *overrides; /* the KEY=VALUE texts a node of line -N came from */
} spec_ctx;

/* Validate the parsed file ROOT (taken from PATH, with OVERRIDES spliced in by
 * spec_override.c; NULL: none) into *spec; the number of errors. ROOT stays the caller's. */
int spec_load_tree(const char *path, yml_node *root, const char *const *overrides,
                   hzc_spec *spec, FILE *err);

/* Report one error at AT's mark; past SPEC_MAX_ERRORS errors are counted, not printed. */
void spec_error(spec_ctx *c, const yml_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef enum {
    FT_INT,     /* int64_t at off */
    FT_NUM,     /* double at off */
    FT_BOOL,    /* int at off */
    FT_OTHER,   /* converted by the section's own code (names, choices, sub-mappings) */
} field_type;

typedef enum {
    R_ANY,
    R_SIZE,      /* integer in [1, SPEC_MAX_SIZE] */
    R_LAYERS,    /* integer in [1, SPEC_MAX_LAYERS] */
    R_NONNEG,    /* >= 0 */
    R_POS,       /* > 0 */
    R_UNIT_OPEN, /* [0, 1) */
    R_UNIT,      /* [0, 1] */
    R_BLOCKS,    /* integer in [0, num_layers] (only >= 0 while num_layers is in error):
                  * the section is loaded after the architecture */
    R_GPUS,      /* integer in [1, SPEC_MAX_GPUS] */
    R_HOSTS,     /* integer in [1, SPEC_MAX_HOSTS] */
} field_range;

typedef struct {
    const char *key;
    field_type type;
    field_range range;
    int required;
    size_t off; /* offsetof(hzc_spec, ...) for FT_INT, FT_NUM, FT_BOOL */
} field_def;

/* What spec_load_section found for one field: its key and value nodes (NULL when absent)
 * and whether the value converted and passed its range check. */
typedef struct {
    const yml_node *key, *value;
    int ok;
} field_val;

#define FIELD(k, t, r, req, member) { k, t, r, req, offsetof(hzc_spec, member) }
#define FIELD_OTHER(k, req) { k, FT_OTHER, R_ANY, req, 0 }

/* Every mapping of the schema, so that a key in the wrong one can be pointed home. */
enum { SEC_TOP, SEC_ARCH, SEC_ROPE, SEC_SHAPE, SEC_TRAINING, SEC_PLAN };

/* The architecture and rope_scaling sections' keys (spec_arch.c). */
enum {
    A_FAMILY, A_VOCAB, A_HIDDEN, A_LAYERS, A_HEADS, A_KV_HEADS, A_HEAD_DIM, A_FFN,
    A_NORM_EPS, A_ROPE_THETA, A_ROPE_SCALING, A_TIED, A_QKV_BIAS, A_QK_NORM,
    A_ROPE_LOCAL, A_QPAS, A_WINDOW, A_PATTERN, A_LAYER_TYPES, SPEC_ARCH_N
};
extern const field_def spec_arch_fields[SPEC_ARCH_N];
enum { RS_TYPE, RS_FACTOR, RS_LOW, RS_HIGH, RS_ORIG, SPEC_ROPE_N };
extern const field_def spec_rope_fields[SPEC_ROPE_N];

/* Load the architecture section whose key and value AT holds (spec_arch.c). */
void spec_load_architecture(spec_ctx *c, const field_val *at, hzc_spec *spec);

/* The plan: section's keys (spec_plan.c), in the order spec_plan_write writes them. */
enum { PK_RESIDENT_BLOCKS, PK_RESIDENT_ENDS, PK_KEEP, PK_WEIGHT_SLOTS, PK_HOST_GRAD,
       PK_BOUNDARIES, PK_GPU_GRAD_BLOCKS, PK_GPU_GRAD_ENDS, PK_GPUS, PK_HOSTS, PK_KEEP_MLP_OUT,
       PK_N };
extern const field_def spec_plan_fields[PK_N];

/* NODE's text for a message, in BUF (at least 48 bytes): 'text' with non-printable bytes
 * as '?', shortened past 40 bytes; "nothing" for an empty plain scalar; the kind for a
 * collection. */
const char *spec_describe(const yml_node *node, char *buf);

/* Whether NODE is a YAML null (an empty plain scalar, ~ or null), as in "training:". */
int spec_is_null(const yml_node *node);

/* Whether NODE is a string among NAMES; returns its index, or -1 after reporting
 * "KEY: WHAT 'text' (supported: ...)", with a suggestion when one is near. */
int spec_parse_choice(spec_ctx *c, const char *key, const yml_node *node,
                      const char *const *names, int names_n, const char *what);

/* Check mapping MAP (named by KEY_NODE, NULL at the top level) against section SECTION:
 * every key known and given once, required keys present; fill VALS (one per field) and
 * convert the plain fields into SPEC. Missing keys are reported at KEY_NODE, the line
 * that opens the section. Returns 0 if MAP is not a mapping at all. */
int spec_load_section(spec_ctx *c, int section, const yml_node *key_node, const yml_node *map,
                      hzc_spec *spec, field_val *vals);

/* Load the plan: section whose key and value AT holds (spec_plan.c). Runs after the
 * architecture, so that block counts are checked against num_layers. */
void spec_load_plan(spec_ctx *c, const field_val *at, hzc_spec *spec);

#endif
