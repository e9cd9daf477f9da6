/* runtime/cuda/nccl_api.c - NCCL loaded with dlopen (nccl_api.h). */
#ifdef HZ_HAVE_NCCL
#include "nccl_api.h"

#include <stdio.h>

#include "dlib.h"

hznccl_lib hznccl;

int hznccl_load(char *why, size_t why_n)
{
    static int tried, result = -1;
    static char first_why[1024];
    if (tried) {
        snprintf(why, why_n, "%s", first_why);
        return result;
    }
    tried = 1;
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
                       sizeof lib.path, first_why, sizeof first_why) != 0) {
        snprintf(why, why_n, "%s", first_why);
        return -1;
    }
    ncclResult_t r = lib.ncclGetVersion(&lib.version);
    if (r != ncclSuccess || lib.version / 10000 != 2) {
        snprintf(first_why, sizeof first_why, "%s: NCCL version %d, this build speaks NCCL 2",
                 lib.path, lib.version);
        snprintf(why, why_n, "%s", first_why);
        return -1;
    }
    hznccl = lib;
    result = 0;
    first_why[0] = 0;
    return 0;
}
#endif
