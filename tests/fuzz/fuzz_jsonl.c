/* tests/fuzz/fuzz_jsonl.c - fuzz target: the JSON Lines example reader (runtime/data_jsonl.c)
 * over arbitrary bytes (hz_data_open_jsonl_memory: the same checks as a .jsonl file). Any
 * input must give either a reader or one message that starts with the file's name; an
 * accepted one must serve only valid pairs (ids < vocab, targets < vocab or -100, one -100
 * at least per example an epoch), resume exactly after a seek, and split into train and
 * validation parts that share out its examples. Sanitizers catch the rest. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define VOCAB 1000
#define T 7
#define MAX_ROWS 600   /* rows read per input: bounds the time of a large accepted input */

/* A refusal is one message naming the file: "fuzz.jsonl:LINE: ..." or "fuzz.jsonl: ...". */
static void check_refusal(const char *err) {
    if (!memchr(err, 0, HZ_DATA_ERR_BYTES) || strncmp(err, "fuzz.jsonl:", 11) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[HZ_DATA_ERR_BYTES];
    hz_data_opts o = {.vocab = VOCAB, .min_tokens = 1, .seed = size, .val_fraction = 0.5,
                      .split = HZ_DATA_ALL};
    hz_data *d = hz_data_open_jsonl_memory("fuzz.jsonl", data, size, &o, err);
    if (!d) {
        check_refusal(err);
        return 0;
    }
    int64_t pairs_n = hz_data_tokens(d), examples_n = hz_data_examples(d);
    if (examples_n < 1 || pairs_n < 2 * examples_n) abort();
    int32_t in[T], tg[T], in2[T], tg2[T];
    int64_t ignored_n = 0, served = 0;
    for (int r = 0; r < MAX_ROWS && served < 2 * pairs_n + T; r++) {
        int64_t pos = hz_data_position(d);
        if (pos != served) abort();
        hz_data_next_row(d, in, tg, T);
        for (int t = 0; t < T; t++) {
            if (in[t] < 0 || in[t] >= VOCAB) abort();
            if ((tg[t] < 0 || tg[t] >= VOCAB) && tg[t] != HZ_DATA_IGNORE) abort();
            if (served + t < pairs_n) ignored_n += tg[t] == HZ_DATA_IGNORE;
        }
        if (r % 3 == 1) {   /* resume here: the row again */
            hz_data_seek(d, pos);
            hz_data_next_row(d, in2, tg2, T);
            if (memcmp(in, in2, sizeof in) || memcmp(tg, tg2, sizeof tg)) abort();
        }
        served += T;
    }
    if (served >= pairs_n && ignored_n < examples_n) abort();   /* each example ends in -100 */
    hz_data_close(d);

    o.split = HZ_DATA_TRAIN;
    hz_data *train = hz_data_open_jsonl_memory("fuzz.jsonl", data, size, &o, err);
    if (!train) check_refusal(err);
    o.split = HZ_DATA_VAL;
    hz_data *val = hz_data_open_jsonl_memory("fuzz.jsonl", data, size, &o, err);
    if (!val) check_refusal(err);
    if (train && val && (hz_data_examples(train) + hz_data_examples(val) != examples_n ||
                         hz_data_tokens(train) + hz_data_tokens(val) != pairs_n))
        abort();
    hz_data_close(train);
    hz_data_close(val);
    return 0;
}
