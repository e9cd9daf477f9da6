/* runtime/cuda/nccl_api.c - NCCL loaded with dlopen (nccl_api.h). */
#ifdef HZ_HAVE_NCCL
#include "nccl_api.h"

#include <stdio.h>

#include "dlib.h"

hznccl_lib hznccl;

/* Open libnccl.so.2, take its functions, check its version (hzcu_dlib_once_run's LOAD). */
static int load_nccl(char *why, size_t why_n)
{
    const hzcu_dlib_where where = {"libnccl.so.2", "HZ_NCCL_LIB",
#ifdef HZ_NCCL_LIB_DIR
                                   HZ_NCCL_LIB_DIR,
#else
                                   NULL,
#endif
                                   "nvidia.nccl", NULL, 0};
    hznccl_lib lib = {0};
#define HZNCCL_NAME(name) #name,
#define HZNCCL_SLOT(name) &lib.name,
    static const char *const names[] = {HZNCCL_FUNCS(HZNCCL_NAME)};
    void *const slots[] = {HZNCCL_FUNCS(HZNCCL_SLOT)};
#undef HZNCCL_NAME
#undef HZNCCL_SLOT
    if (hzcu_dlib_take(&where, names, slots, sizeof names / sizeof *names, &lib.so, lib.path,
                       sizeof lib.path, why, why_n) != 0)
        return -1;
    ncclResult_t r = lib.ncclGetVersion(&lib.version);
    if (r != ncclSuccess || lib.version / 10000 != 2) {
        snprintf(why, why_n, "%s: NCCL version %d, this build speaks NCCL 2", lib.path,
                 lib.version);
        return -1;
    }
    hznccl = lib;
    return 0;
}

int hznccl_load(char *why, size_t why_n)
{
    static hzcu_dlib_once once;
    return hzcu_dlib_once_run(&once, load_nccl, why, why_n);
}
#endif
