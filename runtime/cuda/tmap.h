/* runtime/cuda/tmap.h - the TMA tensor maps of the Hopper attention kernels
 * (attention_wgmma.cu, attention_wgmma_bwd.cu): a (B, T, heads, 128) bf16 tensor as a 4-D
 * map whose box is 64 columns (128 bytes) by ROWS positions of one head, landing in shared
 * memory with the 128-byte swizzle the wgmma tiles use; and an (N, T) fp32 tensor (lse, the
 * backward's D) as a 2-D map whose box is ROWS positions of one row. Positions at or past T
 * read as zeros. */
#ifndef HZ_CUDA_TMAP_H
#define HZ_CUDA_TMAP_H
#include <cuda.h>

/* The map of the tensor at BASE; 0, or the driver's error (the tensor's strides and base
 * must be 16-byte aligned, HD 128). */
CUresult hzcu_tmap_heads(CUtensorMap *map, CUdeviceptr base, int B, int T, int heads, int HD, int rows);
/* The map of the fp32 (N, T) tensor at BASE (T a multiple of 4: its rows 16-byte aligned) */
CUresult hzcu_tmap_rows(CUtensorMap *map, CUdeviceptr base, int N, int T, int rows);

#endif
