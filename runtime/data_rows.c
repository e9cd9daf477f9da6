/* runtime/data_rows.c - what an open reader serves: rows of (input, target) pairs read
 * across a stream's shards, or packed from the examples in each epoch's order (a shuffle by
 * (seed, epoch) alone), and the position a checkpoint saves and a resume seeks to. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include <assert.h>
#include <string.h>

#include "data_impl.h"

/* splitmix64 (Steele, Lea, Flood 2014): the shuffle's generator. */
static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Start epoch E: its order is a Fisher-Yates shuffle of the identity drawn from a
 * generator seeded by (seed, E) alone, so a seek rebuilds any epoch's order directly.
 * (The modulo's bias is below examples_n / 2^64.) */
void data_jsonl_start_epoch(hz_data *d, int64_t e) {
    d->epoch = e;
    d->index = d->offset = d->epoch_pos = 0;
    uint64_t state = d->seed ^ (0x6A09E667F3BCC909ull * ((uint64_t)e + 1));
    state = splitmix64(&state);
    for (int64_t i = 0; i < d->examples_n; i++) d->order[i] = i;
    for (int64_t i = d->examples_n - 1; i > 0; i--) {
        int64_t j = (int64_t)(splitmix64(&state) % (uint64_t)(i + 1));
        int64_t t = d->order[i];
        d->order[i] = d->order[j];
        d->order[j] = t;
    }
}

int64_t hz_data_tokens(const hz_data *d) { return d->tokens_n; }

int64_t hz_data_examples(const hz_data *d) { return d->examples_n; /* 0 for streams */ }

int64_t hz_data_epoch(const hz_data *d) { return d->epoch; }

int64_t hz_data_position(const hz_data *d) {
    return d->jsonl ? d->epoch * d->tokens_n + d->epoch_pos : d->pos;
}

void hz_data_seek(hz_data *d, int64_t position) {
    if (!d->jsonl) {
        d->pos = position >= 0 && position <= d->tokens_n ? position : 0;
        return;
    }
    if (position < 0) position = 0;
    data_jsonl_start_epoch(d, position / d->tokens_n);
    int64_t p = position % d->tokens_n;
    d->epoch_pos = p;
    for (;;) {   /* p < tokens_n: some example of this epoch holds pair p */
        int64_t e = d->order[d->index], len = d->ex_start[e + 1] - d->ex_start[e];
        if (p < len) break;
        p -= len;
        d->index++;
    }
    d->offset = p;
}

/* out[i] = tok[from + i] for i < n, FROM a stream index; needs from + n <= all_n. */
static void read_tokens(const hz_data *d, int64_t from, int64_t n, int32_t *out) {
    assert(from >= 0 && n >= 0 && from + n <= d->all_n);
    if (n == 0) return;
    /* the last shard starting at or before FROM; empty shards share a start with the next
     * one, and this picks the later, non-empty one */
    int lo = 0, hi = d->shards_n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (d->shards[mid].start <= from) lo = mid;
        else hi = mid - 1;
    }
    int64_t done = 0;
    for (int si = lo; done < n; si++) {
        assert(si < d->shards_n);
        const shard *s = &d->shards[si];
        int64_t off = from + done - s->start;
        int64_t take = s->tokens_n - off < n - done ? s->tokens_n - off : n - done;
        for (int64_t i = 0; i < take; i++)
            out[done + i] = (int32_t)data_load_token(s->tok, s->width, off + i);
        data_release(s, off, take);
        done += take;
    }
}

/* Pairs of the examples in this epoch's order, packed; crosses examples and epochs. */
static void jsonl_next_row(hz_data *d, int32_t *inputs, int32_t *targets, int64_t T) {
    for (int64_t t = 0; t < T;) {
        int64_t e = d->order[d->index];
        int64_t start = d->ex_start[e], len = d->ex_start[e + 1] - start;
        int64_t take = len - d->offset < T - t ? len - d->offset : T - t;
        memcpy(inputs + t, d->ids + start + d->offset, (size_t)take * sizeof *inputs);
        memcpy(targets + t, d->tgt + start + d->offset, (size_t)take * sizeof *targets);
        t += take;
        d->offset += take;
        d->epoch_pos += take;
        if (d->offset == len) {
            d->offset = 0;
            if (++d->index == d->examples_n) data_jsonl_start_epoch(d, d->epoch + 1);
        }
    }
}

void hz_data_next_row(hz_data *d, int32_t *inputs, int32_t *targets, int64_t T) {
    if (d->jsonl) {
        assert(T >= 1 && d->tokens_n >= 1);
        jsonl_next_row(d, inputs, targets, T);
        return;
    }
    assert(T >= 1 && T + 1 <= d->tokens_n);
    if (d->tokens_n - d->pos < T + 1) {   /* new epoch */
        d->pos = 0;
        d->epoch++;
    }
    read_tokens(d, d->base + d->pos, T, inputs);
    for (int64_t t = 0; t + 1 < T; t++) targets[t] = inputs[t + 1];
    read_tokens(d, d->base + d->pos + T, 1, &targets[T - 1]);
    d->pos += T;
}
