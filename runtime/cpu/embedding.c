/* runtime/cpu/embedding.c - token embedding lookup and its scatter-add backward (fp32),
 * plain or times a scale (Gemma 3's sqrt(hidden)).
 * A token id outside [0, V) is our bug (the data loader validates ids), so it asserts;
 * the table's row count is not passed, only the lower bound is checkable here. */
#include "ops.h"

#include <assert.h>
#include <string.h>

void embedding_forward(float *out, const int32_t *tok, const float *wte, int64_t N, int64_t C) {
    for (int64_t n = 0; n < N; n++) {
        assert(tok[n] >= 0);
        memcpy(out + n * C, wte + (int64_t)tok[n] * C, (size_t)C * sizeof(float));
    }
}

void embedding_scaled_forward(float *out, const int32_t *tok, const float *wte, int64_t N,
                              int64_t C, float scale) {
    for (int64_t n = 0; n < N; n++) {
        assert(tok[n] >= 0);
        const float *row = wte + (int64_t)tok[n] * C;
        for (int64_t c = 0; c < C; c++) out[n * C + c] = row[c] * scale;
    }
}

void embedding_scaled_backward(float *dwte, const float *dout, const int32_t *tok, int64_t N,
                               int64_t C, float scale) {
    for (int64_t n = 0; n < N; n++) {
        assert(tok[n] >= 0);
        float *row = dwte + (int64_t)tok[n] * C;
        const float *d = dout + n * C;
        for (int64_t c = 0; c < C; c++) row[c] += d[c] * scale;
    }
}

/* Serial on purpose: two tokens of the batch may share a row of dwte. */
void embedding_backward(float *dwte, const float *dout, const int32_t *tok, int64_t N, int64_t C) {
    for (int64_t n = 0; n < N; n++) {
        assert(tok[n] >= 0);
        float *row = dwte + (int64_t)tok[n] * C;
        const float *d = dout + n * C;
        for (int64_t c = 0; c < C; c++) row[c] += d[c];
    }
}
