/* runtime/names.c - what the compiler and the runtime share: the names of the tables
 * (hz_tables.h) for messages and traces, and the FLOP accounting of DESIGN.md. */
#include "hz.h"

#define HZ_NAME_ENTRY(id, name, ...) name,
#define HZ_WHAT_ENTRY(id, name, what) what,
const char *const hz_unit_names[] = {HZ_UNIT_KINDS(HZ_NAME_ENTRY)};
const char *const hz_tensor_names[] = {HZ_TENSOR_KINDS(HZ_NAME_ENTRY)};
const char *const hz_region_names[] = {HZ_REGION_KINDS(HZ_NAME_ENTRY)};
const char *const hz_stream_names[] = {HZ_STREAM_KINDS(HZ_NAME_ENTRY)};
const char *const hz_op_names[] = {HZ_OP_KINDS(HZ_NAME_ENTRY)};
const char *const hz_region_what[] = {HZ_REGION_KINDS(HZ_WHAT_ENTRY)};

double hz_flops_per_token(const hz_dims *d)
{
    int64_t A = d->NH * d->HD, KV = d->NKV * d->HD;
    double block = (double)d->C * (A + 2 * KV) + (double)A * d->C + 3.0 * d->C * d->F;
    double n_matmul = d->L * block + (double)d->V * d->C;
    return 6.0 * n_matmul + 6.0 * d->L * d->T * A;
}
