/* runtime/cuda/dlib.h - a vendor library opened with dlopen at run time instead of linked
 * (cuDNN, NCCL): a trainer that does not use it runs where it is not installed. The places
 * looked in, in order: the directory an environment variable names, the loader's own path
 * (the soname), the directory configure found at build time, and python3's NVIDIA wheel of
 * that library (pip's nvidia-cudnn-cu12, nvidia-nccl-cu12, ...). */
#ifndef HZ_CUDA_DLIB_H
#define HZ_CUDA_DLIB_H
#include <stddef.h>

typedef struct hzcu_dlib_where {
    const char *soname;            /* e.g. "libnccl.so.2" */
    const char *env;               /* the variable naming a directory to try first */
    const char *built_dir;         /* configure's directory, or NULL */
    const char *py_module;         /* e.g. "nvidia.nccl": its wheel's lib/ is tried last */
    const char *const *sublibs;    /* opened first (global) from a directory, so that the
                                    * library's own dlopen by soname finds them; or NULL */
    size_t sublib_n;
} hzcu_dlib_where;

/* The library W describes, opened RTLD_GLOBAL, or NULL. PATH receives where it came from
 * (for the start-up line), WHY the first failure's dlerror() when it was not found. */
void *hzcu_dlib_open(const hzcu_dlib_where *w, char *path, size_t path_n, char *why,
                     size_t why_n);

/* Open W's library (*SO, PATH as hzcu_dlib_open) and take its N functions, NAMES[i] into the
 * function pointer at SLOTS[i]: 0; or -1 with WHY saying what is missing ("SONAME not found
 * (set ENV to its directory): ...", or "PATH has no NAME"). */
int hzcu_dlib_take(const hzcu_dlib_where *w, const char *const *names, void *const *slots,
                   size_t n, void **so, char *path, size_t path_n, char *why, size_t why_n);

/* A library's load, done once: LOAD(WHY, N) runs on the first call and its answer (0, or -1
 * with the reason it wrote) is every later call's; WHY receives the reason ("" after a
 * load that worked). */
typedef struct hzcu_dlib_once {
    int tried, result;
    char why[1024];
} hzcu_dlib_once;
int hzcu_dlib_once_run(hzcu_dlib_once *once, int (*load)(char *why, size_t why_n), char *why,
                       size_t why_n);

#endif
