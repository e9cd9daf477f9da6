/* runtime/safetensors.h - the .safetensors format (Hugging Face): a strict reader over an
 * mmap'd file, a checkpoint index (one file, or shards named by model.safetensors.index.json),
 * conversion of a tensor or a row range to fp32 (safetensors.c), and the writers: the
 * layout of a file or of transformers-style shards plus their index, and an atomic
 * sequential writer (st_write.c). Little-endian hosts only (as the format). */
#ifndef HZ_SAFETENSORS_H
#define HZ_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>

#define HZ_ST_ERR_BYTES 512           /* size of every err buffer these functions write */
#define HZ_ST_MAX_DIMS 8              /* deeper shapes are refused */
#define HZ_ST_MAX_HEADER_BYTES (100ll << 20)
#define HZ_ST_DEFAULT_SHARD_BYTES 5000000000ll /* transformers' max_shard_size "5GB" */

/* X(ID, name in the header, bytes per element) */
#define HZ_ST_DTYPES(X) \
    X(BF16, "BF16", 2)  \
    X(F16, "F16", 2)    \
    X(F32, "F32", 4)

#define HZ_ST_DTYPE_ENTRY(id, ...) HZ_ST_##id,
enum hz_st_dtype { HZ_ST_DTYPES(HZ_ST_DTYPE_ENTRY) HZ_ST_DTYPE_N };
extern const char *const hz_st_dtype_names[];
extern const int hz_st_dtype_bytes[];

/* One tensor of an open file. Its data points into the mapping (not aligned). */
typedef struct hz_st_tensor {
    const char *name;
    int dtype;                        /* enum hz_st_dtype */
    int ndim;
    int64_t shape[HZ_ST_MAX_DIMS];
    int64_t numel;                    /* product of shape (1 for a 0-d tensor) */
    const unsigned char *data;        /* numel * dtype bytes */
    int64_t offset;                   /* where data starts in the file */
    const char *file;                 /* path of the file holding it */
} hz_st_tensor;

typedef struct hz_st_file hz_st_file;   /* one open .safetensors file */
typedef struct hz_st_index hz_st_index; /* a checkpoint: one file or several shards */

/* Open and validate PATH: at least 8 bytes; header length (u64 LE) at most 100 MiB and
 * within the file; the header a JSON object of tensors {dtype, shape, data_offsets} and an
 * optional "__metadata__" object of strings; dtypes BF16/F16/F32; offsets inside the data
 * area, sized numel * dtype bytes, covering it without overlaps or holes (as the format
 * requires). On error returns NULL with one message naming the file and the tensor. */
hz_st_file *hz_st_open(const char *path, char *err);
/* The same over a caller's buffer (kept, not copied; NAME is used in messages). */
hz_st_file *hz_st_open_memory(const void *buf, size_t size, const char *name, char *err);
void hz_st_close(hz_st_file *f);          /* NULL is allowed */
int hz_st_tensor_n(const hz_st_file *f);
const hz_st_tensor *hz_st_tensor_at(const hz_st_file *f, int i); /* in header order */
const hz_st_tensor *hz_st_find(const hz_st_file *f, const char *name); /* or NULL */
/* For the reader's parts (safetensors.c, st_index.c, st_write.c): NAME fit for a message (at
 * most 80 bytes, non-printable bytes as '?'); qsort's order of tensor pointers by name; the
 * tensor called NAME in such a sorted list, or NULL. */
const char *hz_st_shown(const char *name, char buf[96]);
int hz_st_cmp_name(const void *a, const void *b);
const hz_st_tensor *hz_st_find_sorted(const hz_st_tensor *const *v, int n, const char *name);

/* Rows of T are its first dimension (a 0-d tensor has one row of one element). */
int64_t hz_st_rows(const hz_st_tensor *t);
int64_t hz_st_row_elems(const hz_st_tensor *t);
/* Convert rows [row0, row0 + rows_n) of T to fp32 into OUT (rows_n * row_elems floats).
 * Returns 0, or -1 when the range is outside the tensor. */
int hz_st_read_f32(const hz_st_tensor *t, int64_t row0, int64_t rows_n, float *out);
/* Elements [begin, begin + n) in the flat order, to fp32. Returns 0 or -1 (out of range). */
int hz_st_read_elems_f32(const hz_st_tensor *t, int64_t begin, int64_t n, float *out);
float hz_st_f32_from_f16(uint16_t h);
/* "[a, b, ...]" of a shape into BUF (truncated to N bytes). */
void hz_st_shape_str(char *buf, size_t n, int ndim, const int64_t *shape);

/* Open a checkpoint: PATH a .safetensors file, or a directory holding
 * model.safetensors.index.json ("weight_map": name -> shard file in that directory) or
 * model.safetensors (preferred when both exist, as in transformers). Every shard the map
 * names is opened and validated; each name of the map must be in its shard; the index holds
 * every tensor of those shards, and a name in two shards is refused, as are shard names
 * with a '/'. On error returns NULL with one message naming the file. */
hz_st_index *hz_st_index_open(const char *path, char *err);
void hz_st_index_close(hz_st_index *ix);  /* NULL is allowed */
int hz_st_index_tensor_n(const hz_st_index *ix);
const hz_st_tensor *hz_st_index_tensor_at(const hz_st_index *ix, int i); /* sorted by name */
const hz_st_tensor *hz_st_index_find(const hz_st_index *ix, const char *name); /* or NULL */
const char *hz_st_index_path(const hz_st_index *ix); /* the index or single file opened */

/* ---- writing ---- */

/* Produce elements [begin, begin + n) of the tensor, in its dtype, into OUT. */
typedef void (*hz_st_fill_fn)(void *arg, int64_t begin, int64_t n, void *out);

typedef struct hz_st_wtensor {
    const char *name;
    int dtype;                        /* HZ_ST_BF16, HZ_ST_F16 or HZ_ST_F32 */
    int ndim;
    int64_t shape[HZ_ST_MAX_DIMS];
    hz_st_fill_fn fill;
    void *arg;
} hz_st_wtensor;

/* Write the tensors (in this order, names unique) to PATH: the data goes to PATH.tmp,
 * which is fsync'd and renamed over PATH. The header carries "__metadata__":
 * {"format": "pt"}, as transformers expects. Returns 0, or -1 with a message. */
int hz_st_write(const char *path, const hz_st_wtensor *tensors, int n, char *err);

/* Write a checkpoint into the existing directory DIR as transformers' save_pretrained does:
 * model.safetensors when the tensors total at most max_shard_bytes (<= 0: 5 GB), else
 * model-0000i-of-0000N.safetensors filled in order (a new shard when the next tensor would
 * pass the limit; a larger tensor gets a shard of its own) plus model.safetensors.index.json
 * {"metadata": {"total_size"}, "weight_map"}. Each file is written atomically, the index
 * last; files of an earlier checkpoint in another layout (model.safetensors, the index,
 * model-*-of-*.safetensors) that the new one does not use are removed. Returns the number
 * of shard files written (1 for a single file), or -1 with a message. */
int hz_st_write_checkpoint(const char *dir, const hz_st_wtensor *tensors, int n,
                           int64_t max_shard_bytes, char *err);

/* ---- the layout of a checkpoint, for writers that place the bytes themselves ---- */

/* Bytes of a tensor's data. */
int64_t hz_st_wtensor_bytes(const hz_st_wtensor *t);
/* The start of a file holding TENSORS in this order (checked as hz_st_write does): the u64
 * header length and the JSON header padded with spaces to a multiple of 8; malloc'd, *BYTES
 * long; the tensors' data follows it back to back. NULL with a message on error. */
unsigned char *hz_st_header(const char *path, const hz_st_wtensor *tensors, int n,
                            int64_t *bytes, char *err);
/* hz_st_write_checkpoint's split: shard s holds tensors [first[s], first[s + 1]) (FIRST has
 * room for n + 1); returns the shard count, or -1 beyond 99999 shards. */
int hz_st_shards(const hz_st_wtensor *tensors, int n, int64_t max_shard_bytes, int *first);
/* "model-0000s-of-0000N.safetensors" for shard S (0-based) of SHARDS. */
void hz_st_shard_name(char *buf, size_t n, int shard, int shards);
/* model.safetensors.index.json's text for that split (malloc'd; NULL: out of memory). */
char *hz_st_index_text(const hz_st_wtensor *tensors, const int *first, int shards);

/* Write TEXT to PATH via PATH.tmp, fsync and rename. Returns 0 or -1 with a message. */
int hz_st_write_text(const char *path, const char *text, char *err);

/* Write the bytes EMIT produces to PATH via PATH.tmp: fsync, rename, fsync the directory.
 * EMIT returns 0 or -1 (errno set). Returns 0, or -1 with a message in err. */
typedef int (*hz_st_emit_fn)(int fd, void *arg);
int hz_st_write_atomic(const char *path, hz_st_emit_fn emit, void *arg, char *err);
/* fsync a directory (after renames into it); 0 or -1. */
int hz_st_fsync_dir(const char *dir);
/* write(2) all of BUF, retrying short writes and EINTR; 0 or -1. */
int hz_st_write_all(int fd, const void *buf, size_t n);

#endif
