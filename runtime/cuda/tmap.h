/* runtime/cuda/tmap.h - the TMA tensor maps of the Hopper attention forward
 * (attention_wgmma.cu's hzk_attention_forward_tma): a (B, T, heads, 128) bf16 tensor as a
 * 4-D map whose box is 64 columns (128 bytes) by ROWS positions of one head, landing in
 * shared memory with the 128-byte swizzle the wgmma tiles use; positions at or past T read
 * as zeros. */
#ifndef HZ_CUDA_TMAP_H
#define HZ_CUDA_TMAP_H
#include <cuda.h>

/* The map of the tensor at BASE; 0, or the driver's error (the tensor's strides and base
 * must be 16-byte aligned, HD 128). */
CUresult hzcu_tmap_heads(CUtensorMap *map, CUdeviceptr base, int B, int T, int heads, int HD, int rows);

#endif
