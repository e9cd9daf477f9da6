/* runtime/sample.h - train --sample-every (sample.c): tokens generated from the current
 * weights by the backend's forward, greedily or with temperature and top-k. */
#ifndef HZ_SAMPLE_H
#define HZ_SAMPLE_H
#include "metrics.h"
#include "rt.h"

typedef struct hz_sampler hz_sampler;

/* --sample-prompt TEXT into tokens (*OUT malloc'd, *N of them): for a byte-level model
 * (V = 256) the bytes of TEXT, unless it starts with "ids:"; else token ids separated by
 * commas or spaces, each below V. 0, or -1 with the reason in ERR. */
int hz_sample_parse_prompt(const char *text, int64_t V, int32_t **out, int64_t *n, char *err,
                           size_t err_n);
/* A sampler of TOKENS_N tokens after PROMPT; TEMPERATURE 0: greedy; TOP_K 0: all tokens.
 * NULL when out of memory (it holds a whole step's logits: step_tokens x V floats). */
hz_sampler *hz_sample_new(const hz_plan *p, const int32_t *prompt, int64_t prompt_n,
                          int64_t tokens_n, double temperature, int64_t top_k, uint64_t seed);
void hz_sample_free(hz_sampler *s);
/* Generate after STEPS steps (pending updates applied first; the random stream depends on
 * the seed and STEPS only); *TOKENS points at the generated ones. Returns their count. */
int64_t hz_sample_run(hz_sampler *s, hz_ctx *c, int64_t steps, const int32_t **tokens);
/* hz_sample_run, printed to OUT (text for byte-level models, else ids) and logged to M. */
void hz_sample_print(hz_sampler *s, hz_ctx *c, int64_t steps, hz_metrics *m, FILE *out);

#endif
