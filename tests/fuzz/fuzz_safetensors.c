/* tests/fuzz/fuzz_safetensors.c - fuzz target: the safetensors reader over arbitrary bytes
 * (hz_st_open_memory, the same validation as a file), then every accepted tensor looked up
 * by name and converted to fp32 whole and by a row range. Any input must give either a
 * tensor table or one message; sanitizers catch the rest. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ELEMS (1 << 16) /* convert at most this many elements per tensor */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[HZ_ST_ERR_BYTES];
    static float buf[MAX_ELEMS];
    hz_st_file *f = hz_st_open_memory(data, size, "fuzz.safetensors", err);
    if (!f) {
        if (!memchr(err, 0, sizeof err) || strncmp(err, "fuzz.safetensors: ", 18) != 0) abort();
        return 0;
    }
    for (int i = 0; i < hz_st_tensor_n(f); i++) {
        const hz_st_tensor *t = hz_st_tensor_at(f, i);
        if (hz_st_find(f, t->name) != t) abort(); /* names are unique */
        int64_t rows = hz_st_rows(t), per = hz_st_row_elems(t);
        if (t->numel <= MAX_ELEMS) {
            if (hz_st_read_elems_f32(t, 0, t->numel, buf) != 0) abort();
            if (per > 0 && rows > 1 && hz_st_read_f32(t, rows / 2, rows - rows / 2, buf) != 0) abort();
        }
        if (hz_st_read_f32(t, rows, 1, buf) == 0 && per > 0) abort(); /* past the end */
    }
    hz_st_close(f);
    return 0;
}
