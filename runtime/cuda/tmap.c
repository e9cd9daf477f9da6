/* runtime/cuda/tmap.c - the Hopper attention's TMA tensor maps (tmap.h). */
#include <stdint.h>

#include "tmap.h"

CUresult hzcu_tmap_heads(CUtensorMap *map, CUdeviceptr base, int B, int T, int heads, int HD, int rows)
{
    /* dimension 0 fastest: head_dim, head, position, batch */
    const cuuint64_t dims[4] = {(cuuint64_t)HD, (cuuint64_t)heads, (cuuint64_t)T, (cuuint64_t)B};
    const cuuint64_t row = (cuuint64_t)HD * 2;
    const cuuint64_t strides[3] = {row, row * (cuuint64_t)heads, row * (cuuint64_t)heads * (cuuint64_t)T};
    const cuuint32_t box[4] = {64, 1, (cuuint32_t)rows, 1}, step[4] = {1, 1, 1, 1};
    return cuTensorMapEncodeTiled(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, (void *)(uintptr_t)base, dims,
                                  strides, box, step, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                  CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
}

CUresult hzcu_tmap_rows(CUtensorMap *map, CUdeviceptr base, int N, int T, int rows)
{
    const cuuint64_t dims[2] = {(cuuint64_t)T, (cuuint64_t)N}, strides[1] = {(cuuint64_t)T * 4};
    const cuuint32_t box[2] = {(cuuint32_t)rows, 1}, step[2] = {1, 1};
    return cuTensorMapEncodeTiled(map, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 2, (void *)(uintptr_t)base, dims, strides,
                                  box, step, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
                                  CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
}
