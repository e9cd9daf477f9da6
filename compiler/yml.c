/* compiler/yml.c - load YAML with libyaml's event parser into a yml_node tree.
 * The event API (rather than libyaml's document loader) lets us refuse aliases before
 * they are expanded, bound the nesting depth, and keep the exact mark of every node. */
#include "yml.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

static void yml_error(FILE *err, int *errors_n, const char *name, int line, int col,
                      const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Report one error as NAME:LINE:COL: error: ... (or NAME: error: ... when line is 0). */
static void yml_error(FILE *err, int *errors_n, const char *name, int line, int col,
                      const char *fmt, ...) {
    va_list ap;
    if (line > 0)
        fprintf(err, "%s:%d:%d: error: ", name, line, col);
    else
        fprintf(err, "%s: error: ", name);
    va_start(ap, fmt);
    vfprintf(err, fmt, ap);
    va_end(ap);
    fputc('\n', err);
    (*errors_n)++;
}

const char *yml_kind_name(yml_kind kind) {
    switch (kind) {
    case YML_SCALAR: return "a scalar";
    case YML_SEQUENCE: return "a sequence";
    case YML_MAPPING: return "a mapping";
    }
    return "a node";
}

void yml_free(yml_node *node) {
    if (!node) return;
    int slots_n = node->kind == YML_MAPPING ? 2 * node->n : node->n;
    for (int i = 0; i < slots_n; i++) yml_free(node->items[i]);
    free(node->items);
    free(node->text);
    free(node);
}

/* Convert a byte offset into TEXT to a 1-based line and column (columns count UTF-8
 * characters, as libyaml's marks do). Used for reader errors, which carry only an offset. */
static void offset_to_mark(const char *text, size_t len, size_t offset, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < offset && i < len; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
            (*col)++;
        }
    }
}

/* Whether 1-based LINE of TEXT starts with whitespace that contains a tab: libyaml's
 * "found character that cannot start any token" then means tab indentation. */
static int line_indented_with_tab(const char *text, size_t len, int line) {
    size_t i = 0;
    for (int l = 1; l < line && i < len; i++)
        if (text[i] == '\n') l++;
    for (; i < len && (text[i] == ' ' || text[i] == '\t'); i++)
        if (text[i] == '\t') return 1;
    return 0;
}

static void report_parser_error(const yaml_parser_t *p, const char *name, const char *text,
                                size_t len, FILE *err, int *errors_n) {
    int line, col;
    const char *problem = p->problem ? p->problem : "invalid YAML";
    switch (p->error) {
    case YAML_MEMORY_ERROR:
        yml_error(err, errors_n, name, 0, 0, "out of memory while parsing YAML");
        return;
    case YAML_READER_ERROR:
        offset_to_mark(text, len, p->problem_offset, &line, &col);
        if (p->problem_value != -1)
            yml_error(err, errors_n, name, line, col, "%s (byte 0x%02X)", problem,
                      (unsigned)p->problem_value);
        else
            yml_error(err, errors_n, name, line, col, "%s", problem);
        return;
    default:
        break;
    }
    line = (int)p->problem_mark.line + 1;
    col = (int)p->problem_mark.column + 1;
    const char *hint = "";
    if (p->error == YAML_SCANNER_ERROR && line_indented_with_tab(text, len, line))
        hint = "; indent with spaces, not tabs";
    if (p->context)
        yml_error(err, errors_n, name, line, col, "%s (%s at %d:%d)%s", problem, p->context,
                  (int)p->context_mark.line + 1, (int)p->context_mark.column + 1, hint);
    else
        yml_error(err, errors_n, name, line, col, "%s%s", problem, hint);
}

static yml_node *node_new(yml_kind kind, const yaml_mark_t *mark) {
    yml_node *node = calloc(1, sizeof *node);
    if (!node) return NULL;
    node->kind = kind;
    node->line = (int)mark->line + 1;
    node->col = (int)mark->column + 1;
    return node;
}

/* One open collection while the tree is built: the node and its items array capacity. */
typedef struct {
    yml_node *node;
    int items_n, items_cap;
} open_collection;

/* Append CHILD to the innermost open collection. A mapping's n counts started pairs,
 * so yml_free sees a half-built pair; unused slots stay NULL. */
static int collection_add(open_collection *top, yml_node *child) {
    if (top->items_n == top->items_cap) {
        int cap = top->items_cap ? 2 * top->items_cap : 8;
        yml_node **items = realloc(top->node->items, (size_t)cap * sizeof *items);
        if (!items) return 0;
        memset(items + top->items_cap, 0, (size_t)(cap - top->items_cap) * sizeof *items);
        top->node->items = items;
        top->items_cap = cap;
    }
    top->node->items[top->items_n++] = child;
    top->node->n = top->node->kind == YML_MAPPING ? (top->items_n + 1) / 2 : top->items_n;
    return 1;
}

yml_node *yml_parse(const char *name, const char *text, size_t len, FILE *err, int *errors_n) {
    yaml_parser_t parser;
    yaml_event_t event;
    open_collection stack[YML_MAX_DEPTH];
    int depth = 0, documents_n = 0, done = 0;
    yml_node *root = NULL;

    *errors_n = 0;
    if (!yaml_parser_initialize(&parser)) {
        yml_error(err, errors_n, name, 0, 0, "out of memory while parsing YAML");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    while (!done) {
        if (!yaml_parser_parse(&parser, &event)) {
            report_parser_error(&parser, name, text, len, err, errors_n);
            break;
        }
        const yaml_mark_t *mark = &event.start_mark;
        int line = (int)mark->line + 1, col = (int)mark->column + 1;
        yml_node *node = NULL;
        switch (event.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++documents_n > 1) {
                yml_error(err, errors_n, name, line, col,
                          "a second YAML document; a model description is one document");
                done = 1;
            }
            break;
        case YAML_ALIAS_EVENT:
            yml_error(err, errors_n, name, line, col, "aliases (*%s) are not supported",
                      (const char *)event.data.alias.anchor);
            done = 1;
            break;
        case YAML_SCALAR_EVENT:
            node = node_new(YML_SCALAR, mark);
            if (node) {
                node->len = event.data.scalar.length;
                node->text = malloc(node->len + 1);
                if (node->text) {
                    memcpy(node->text, event.data.scalar.value, node->len);
                    node->text[node->len] = '\0';
                }
                node->plain = event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            }
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (depth == YML_MAX_DEPTH) {
                yml_error(err, errors_n, name, line, col, "nesting deeper than %d levels",
                          YML_MAX_DEPTH);
                done = 1;
                break;
            }
            node = node_new(event.type == YAML_MAPPING_START_EVENT ? YML_MAPPING : YML_SEQUENCE,
                            mark);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        default: /* stream start, document end */
            break;
        }
        if (!done && (event.type == YAML_SCALAR_EVENT || event.type == YAML_SEQUENCE_START_EVENT ||
                      event.type == YAML_MAPPING_START_EVENT)) {
            int ok = node && (node->kind != YML_SCALAR || node->text);
            if (ok && depth > 0) {
                ok = collection_add(&stack[depth - 1], node);
            } else if (ok) {
                root = node; /* a document's root; the tree owns it from here */
            }
            if (!ok) {
                yml_free(node);
                yml_error(err, errors_n, name, line, col, "out of memory while parsing YAML");
                done = 1;
            } else if (node->kind != YML_SCALAR) {
                stack[depth].node = node;
                stack[depth].items_n = stack[depth].items_cap = 0;
                depth++;
            }
        }
        yaml_event_delete(&event);
    }
    yaml_parser_delete(&parser);

    if (*errors_n == 0 && (!root || (root->kind == YML_SCALAR && root->plain && root->len == 0)))
        yml_error(err, errors_n, name, 1, 1, "empty model description");
    if (*errors_n > 0) {
        yml_free(root);
        return NULL;
    }
    return root;
}

char *yml_slurp(FILE *f, size_t max, size_t *len) {
    size_t n = 0, cap = 4096;
    char *buf = malloc(cap);
    while (buf) {
        size_t room = cap - 1 - n, got = fread(buf + n, 1, room, f);
        n += got;
        if (n > max) { /* one byte past MAX is enough to know */
            free(buf);
            errno = EFBIG;
            return NULL;
        }
        if (got < room) break; /* end of file, or an error */
        if (cap > SIZE_MAX / 2) {
            free(buf);
            buf = NULL;
            break;
        }
        size_t grown = 2 * cap;
        if (max < SIZE_MAX - 2 && grown > max + 2) grown = max + 2; /* read at most MAX + 1 */
        char *bigger = realloc(buf, grown);
        if (!bigger) free(buf);
        buf = bigger;
        cap = grown;
    }
    if (!buf) {
        errno = ENOMEM;
        return NULL;
    }
    if (ferror(f)) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* What a file of mode MODE is, for "not a regular file (...)". */
static const char *file_kind(mode_t mode) {
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a plain file";
}

yml_node *yml_load(const char *path, FILE *err, int *errors_n) {
    return yml_load_text(path, err, errors_n, NULL, NULL);
}

yml_node *yml_load_text(const char *path, FILE *err, int *errors_n, char **text_out,
                        size_t *len_out) {
    *errors_n = 0;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        yml_error(err, errors_n, path, 0, 0, "cannot open: %s", strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        if (S_ISDIR(st.st_mode))
            yml_error(err, errors_n, path, 0, 0, "is a directory; give the model description "
                                                 "file (SPEC.yaml)");
        else
            yml_error(err, errors_n, path, 0, 0, "not a regular file (%s); a model description "
                                                 "is a YAML file", file_kind(st.st_mode));
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        yml_error(err, errors_n, path, 0, 0, "cannot open: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    size_t len = 0;
    char *text = NULL;
    int read_errno = EFBIG;
    if (st.st_size <= YML_MAX_FILE_BYTES) {
        text = yml_slurp(f, YML_MAX_FILE_BYTES, &len);
        read_errno = text ? 0 : errno;
    }
    fclose(f);
    yml_node *root = NULL;
    if (read_errno == EFBIG) /* the file may have grown since fstat: then say "more than" */
        yml_error(err, errors_n, path, 0, 0, "%s%jd bytes; a model description is at most "
                  "1 MiB (%d bytes)", st.st_size > YML_MAX_FILE_BYTES ? "" : "more than ",
                  (intmax_t)(st.st_size > YML_MAX_FILE_BYTES ? st.st_size : YML_MAX_FILE_BYTES),
                  YML_MAX_FILE_BYTES);
    else if (read_errno)
        yml_error(err, errors_n, path, 0, 0, "cannot read: %s", strerror(read_errno));
    else
        root = yml_parse(path, text, len, err, errors_n);
    if (root && text_out) {
        *text_out = text;
        *len_out = len;
    } else {
        free(text);
    }
    return root;
}
