/* compiler/yml.h - a YAML file as a small tree of mappings, sequences and scalars.
 * libyaml does the parsing; this module keeps only what the spec reader needs: the
 * structure, each scalar's text and style, and a 1-based line:column for every node. */
#ifndef HZC_YML_H
#define HZC_YML_H
#include <stddef.h>
#include <stdio.h>

typedef enum { YML_SCALAR, YML_SEQUENCE, YML_MAPPING } yml_kind;

typedef struct yml_node {
    yml_kind kind;
    int line, col;           /* 1-based position of the node's first character */
    char *text;              /* YML_SCALAR: the text, NUL-terminated (NULL otherwise) */
    size_t len;              /* YML_SCALAR: length of text (it may hold escaped NULs) */
    int plain;               /* YML_SCALAR: 1 if written unquoted; only plain scalars
                              * are read as numbers or booleans */
    struct yml_node **items; /* YML_SEQUENCE: n items; YML_MAPPING: n pairs, key of pair i
                              * at items[2*i], value at items[2*i+1], in file order */
    int n;
} yml_node;

/* Parse TEXT (LEN bytes) as one YAML document. NAME is used only in messages, which go
 * to ERR as "NAME:LINE:COL: error: ..." (libyaml's own problem text for syntax errors).
 * Returns the root node, or NULL after reporting at least one error; *errors_n is set
 * to the number of errors reported. Not accepted, each with its own error: an empty
 * stream (only comments, or only "---"), a second document, aliases (*name), and
 * nesting deeper than YML_MAX_DEPTH. Tags and anchors are ignored. */
#define YML_MAX_DEPTH 64
yml_node *yml_parse(const char *name, const char *text, size_t len, FILE *err, int *errors_n);

/* Read the file PATH and yml_parse it under its own name. Refused, each with one
 * "PATH: error: ..." line: a file that cannot be opened ("cannot open: <strerror>"), a
 * directory, anything else that is not a regular file (a FIFO or a device is never read:
 * /dev/zero would not end), and a file of more than YML_MAX_FILE_BYTES. */
#define YML_MAX_FILE_BYTES (1 << 20) /* 1 MiB: a model description is a few hundred bytes */
yml_node *yml_load(const char *path, FILE *err, int *errors_n);
/* yml_load that also hands back the file's text (NUL-terminated, malloc'd; the caller
 * frees it) and its length, when it returns a tree. */
yml_node *yml_load_text(const char *path, FILE *err, int *errors_n, char **text, size_t *len);

/* Free a tree returned by yml_parse or yml_load (NULL is fine). */
void yml_free(yml_node *root);

/* All of open file F in a malloc'd, NUL-terminated buffer, its length in *len; NULL with
 * errno ENOMEM, EIO, or EFBIG when F holds more than MAX bytes (it reads at most MAX + 1).
 * The front ends read every input so. */
char *yml_slurp(FILE *f, size_t max, size_t *len);

/* "a scalar", "a sequence" or "a mapping", for messages. */
const char *yml_kind_name(yml_kind kind);

#endif
