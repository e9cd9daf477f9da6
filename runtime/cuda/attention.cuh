/* runtime/cuda/attention.cuh - the attention kernels' tile shape and their shared-memory
 * needs, as plain macros: read by the kernels (runtime/cuda/attention.cu, which the kernel
 * sources place after this file) and by the launch table (kernels.h), so the two agree by
 * construction. */
#ifndef HZ_ATTENTION_CUH
#define HZ_ATTENTION_CUH

#define HZ_ATT_BM 64 /* query rows per tile (4 warps x 16 rows) */
#define HZ_ATT_BN 64 /* key rows per tile */
#define HZ_ATT_THREADS 128

/* Dynamic shared memory in bytes for head dim HD (bf16 tiles of 2-byte elements):
 * forward: Q (BM x HD), K and V (BN x HD);
 * kv-tile backward: K, V (BN x HD), two buffers of Q and dO (BM x HD each), two buffers of
 *   lse * log2 e and D (BM fp32 each);
 * q-tile backward (dq): Q, dO (BM x HD), K, V (BN x HD). */
#define HZ_ATT_FWD_SMEM(HD) ((HZ_ATT_BM + 2 * HZ_ATT_BN) * (HD) * 2)
#define HZ_ATT_BWD_SMEM(HD) ((2 * HZ_ATT_BN + 4 * HZ_ATT_BM) * (HD) * 2 + 4 * HZ_ATT_BM * 4)
#define HZ_ATT_DQ_SMEM(HD) ((2 * HZ_ATT_BM + 2 * HZ_ATT_BN) * (HD) * 2)

/* The Hopper forward (attention_wgmma.cu, head_dim 128): a block of a producer warpgroup
 * and two consumers takes 128 query rows (64 a consumer) against key tiles of 128; the
 * block's 168 x 384 registers split as 40 for the producer's threads and 232 for the
 * consumers'; shared: Q, a ring of STAGES buffers of K and V, 1024 bytes to align the
 * swizzled tiles, and 2 + 2 STAGES mbarriers of 8 bytes (230,464 bytes of the 232,448 a
 * block may have). */
#define HZ_ATT_WG_BM 128
#define HZ_ATT_WG_BN 128
#define HZ_ATT_WG_HD 128
#define HZ_ATT_WG_STAGES 3
#define HZ_ATT_WS_THREADS 384
#define HZ_ATT_WS_PRODUCER_REGS 40
#define HZ_ATT_WS_CONSUMER_REGS 232
#define HZ_ATT_WS_SMEM ((HZ_ATT_WG_BM + 2 * HZ_ATT_WG_STAGES * HZ_ATT_WG_BN) * HZ_ATT_WG_HD * 2 + 1024 + 8 * (2 + 2 * HZ_ATT_WG_STAGES))

/* The Hopper backward (attention_wgmma_bwd.cu, head_dim 128), two kernels of a producer
 * warpgroup (one TMA thread, HZ_ATT_WB_PRODUCER_REGS) and two consumers (_CONSUMER_REGS):
 * dK and dV, a block per 128 keys of one kv head (64 a consumer) walking the query tiles of
 * 64 rows at or after them, of every query head of the group, each tile's Q, dO, lse and D
 * in a ring of STAGES; dQ, a block per 128 query rows of one head (64 a consumer) walking
 * the key tiles of 64 at or before them, K and V in the ring. Shared: the block's own
 * tiles (K and V, or Q and dO: 128 x 128 bf16 each), the ring, 1024 bytes to align, and the
 * mbarriers (the own tiles' arrival and release, each stage's). */
#define HZ_ATT_WB_THREADS 384
#define HZ_ATT_WB_PRODUCER_REGS 24
#define HZ_ATT_WB_CONSUMER_REGS 240
#define HZ_ATT_WB_STAGES 3
#define HZ_ATT_WB_STAGE_KV (2 * 64 * 128 * 2 + 1024) /* Q, dO (64 x 128), lse and D (64 each) */
#define HZ_ATT_WB_STAGE_Q (2 * 64 * 128 * 2)          /* K, V (64 x 128) */
#define HZ_ATT_WB_KV_SMEM (2 * 128 * 128 * 2 + HZ_ATT_WB_STAGES * HZ_ATT_WB_STAGE_KV + 1024 + 8 * (2 + 2 * HZ_ATT_WB_STAGES))
#define HZ_ATT_WB_Q_SMEM (2 * 128 * 128 * 2 + HZ_ATT_WB_STAGES * HZ_ATT_WB_STAGE_Q + 1024 + 8 * (2 + 2 * HZ_ATT_WB_STAGES))

#endif
