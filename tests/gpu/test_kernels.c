/* tests/gpu/test_kernels.c - every kernel of the cuda backend against the cpu reference ops.
 * Usage: test_kernels [-D NAME=VALUE]... [SRCDIR]   (run from the repository root; SRCDIR
 * defaults to runtime/cuda; -D adds a prelude #define, e.g. -D HZ_ATT_FWD_MINB=3).
 * Compiles the .cu files of SRCDIR (util.cu first, then alphabetical) with NVRTC for this GPU,
 * loads the cubin with the driver API, and for each kernel: fresh random inputs, outputs
 * poisoned with NaN bytes, the same bf16-rounded inputs through runtime/cpu (fp32), and a
 * comparison printing tensor, max abs diff and tolerance (AdamW: bit for bit against the
 * host's own loop, hz_adamw_range of runtime/adamw.c). Ends with attention timings
 * (set HZ_TEST_NO_BENCH=1 to skip them) and the line "N passed, N failed".
 * HZ_TEST_SEED=n changes the random inputs. The helpers are ktest.c's (ktest.h), the tests of
 * each op family in ktest_FAMILY.c (Gemma 3's in ktest_gemma.c; its head_dim 256 attention
 * needs -D HZ_HD=256). */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ktest.h"

TEST_STATE_DEFINE;

int main(int argc, char **argv) {
    const char *dir = "runtime/cuda";
    if (getenv("HZ_TEST_SEED")) test_rng ^= strtoull(getenv("HZ_TEST_SEED"), NULL, 0) * 0x9e3779b97f4a7c15ull;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-D") == 0 && i + 1 < argc) {
            ktest_define(argv[++i]);
        } else dir = argv[i];
    }
    CU_CHECK(cuInit(0));
    CUdevice dev;
    CUcontext ctx;
    CU_CHECK(cuDeviceGet(&dev, 0));
    CU_CHECK(cuDevicePrimaryCtxRetain(&ctx, dev));
    CU_CHECK(cuCtxSetCurrent(ctx));
    int major = 0, minor = 0;
    char devname[256] = "?";
    CU_CHECK(cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev));
    CU_CHECK(cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev));
    CU_CHECK(cuDeviceGetName(devname, sizeof devname, dev));
    printf("device: %s (sm_%d%d)\n", devname, major, minor);
    compile_and_load(dir, major, minor);

    test_util();
    test_adamw();
    test_adamw_q();
    test_embedding(400, 256, 300);
    test_embedding(400, 77, 50);
    test_rmsnorm(400, 256);
    test_rmsnorm(300, 100);
    test_rmsnorm_backward_groups(97, 4096, 0); /* Llama 3 8B's hidden: 2 groups of 512 */
    test_rmsnorm_backward_groups(61, 1000, 0); /* 125 chunks: 3 idle threads a group of 128 */
    test_rmsnorm_backward_groups(33, 8192, 0); /* one group of 1024 */
    test_rmsnorm_backward_groups(50, 3840, 1); /* Gemma 3 12B's hidden */
    test_rmsnorm_backward_groups(70, 1152, 1); /* Gemma 3 1B's: 6 groups of 160 */
    test_rope(2, 200, 8, 2, 64, 0, 0);
    test_rope(2, 128, 8, 2, 128, 1, 1);
    test_rope(2, 200, 8, 2, 32, 1, 0);
    test_rope(1, 4096, 2, 1, 64, 1, 1);
    test_qk_norm(2, 200, 16, 8, 128); /* Qwen3-0.6B's heads */
    test_qk_norm(2, 128, 8, 2, 64);
    test_qk_norm(1, 300, 4, 1, 32);
    test_qk_norm(1, 100, 4, 2, 256);
    test_swiglu(400, 512);
    test_swiglu(300, 100);
    test_geglu(400, 512);
    test_geglu(300, 100);
    test_crossentropy(300, 1000);
    test_crossentropy(100, 1003);
    test_attention(2, 128, 8, 2, 64);
    test_attention(2, 200, 8, 2, 128);
    test_attention(2, 200, 8, 2, 32);
    test_attention(1, 77, 4, 4, 64);
    test_attention(1, 1, 2, 1, 128);
    test_attention(1, 300, 6, 1, 128);
    test_attention(1, 1024, 4, 1, 128);
    /* cuDNN's fused attention: GQA, MHA, MQA, T not a multiple of the tile, a non-default
     * scale (Gemma 3's query_pre_attn_scalar^-0.5 style) */
    test_attention_cudnn(2, 128, 8, 2, 64, 0.125f);
    test_attention_cudnn(2, 200, 8, 2, 128, (float)(1.0 / sqrt(128.0)));
    test_attention_cudnn(1, 77, 4, 4, 64, 0.125f);
    test_attention_cudnn(1, 300, 6, 1, 128, 0.0625f);
    test_attention_cudnn(1, 1024, 4, 1, 128, (float)(1.0 / sqrt(128.0)));
    test_attention_cudnn(2, 256, 8, 4, 128, 0.0625f);
    test_gemma();
    test_wgmma();
    test_attention_wgmma(2, 200, 8, 2);   /* partial tiles, GQA */
    test_attention_wgmma(1, 1, 2, 1);     /* one row */
    test_attention_wgmma(1, 1024, 4, 1);  /* eight key tiles, MQA */
    test_attention_wgmma(2, 384, 4, 4);   /* MHA, whole tiles */
    test_attention_wgmma(2, 1000, 16, 4); /* 256 items: persistent blocks take two */
    if (!getenv("HZ_TEST_NO_BENCH")) {
        bench_attention(4, 2048, 32, 8, 128);
        bench_attention(8, 2048, 16, 2, 64);
        bench_attention(1, 32768, 32, 8, 128);
        bench_attention(1, 131072, 32, 8, 128);
        bench_rmsnorm_backward(8192, 4096); /* llama3-8b's micro-batch */
        bench_rmsnorm_backward(8192, 3840); /* Gemma-3-12B's */
        bench_rope(8192, 2048, 32, 8, 128);   /* llama3-8b's q/k/v split and RoPE */
    }
    unload_module();
    CU_CHECK(cuDevicePrimaryCtxRelease(dev));
    TEST_END();
}
