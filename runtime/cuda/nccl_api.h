/* runtime/cuda/nccl_api.h - NCCL, loaded at run time: libnccl.so.2 found and opened with
 * dlopen (never linked, so a trainer that runs one GPU needs no NCCL; dlib.h says where it
 * is looked for: HZ_NCCL_LIB, the soname, configure's directory, python's nvidia-nccl
 * wheel), and the functions the several-GPU step needs (docs/plan.md "Several GPUs of one
 * host"): a communicator of the process's GPUs, the reduce to GPU 0 of a streamed unit's
 * gradients and the all-reduce of a resident one's; with several hosts a communicator of
 * their GPUs 0 (its id passed over the hosts' link) and the broadcast of a resident unit's
 * total to a host's other GPUs. Only built where configure found
 * nccl.h (HZ_HAVE_NCCL). */
#ifndef HZ_CUDA_NCCL_API_H
#define HZ_CUDA_NCCL_API_H
#ifdef HZ_HAVE_NCCL
#include <stddef.h>

#include <nccl.h>

/* X(name): the functions taken from the library, with the header's own types. */
#define HZNCCL_FUNCS(X)  \
    X(ncclGetVersion)    \
    X(ncclGetErrorString) \
    X(ncclCommInitAll)   \
    X(ncclGetUniqueId)   \
    X(ncclCommInitRank)  \
    X(ncclBroadcast)     \
    X(ncclCommDestroy)   \
    X(ncclGroupStart)    \
    X(ncclGroupEnd)      \
    X(ncclReduce)        \
    X(ncclAllReduce)

#define HZNCCL_FIELD(name) __typeof__(name) *name;
typedef struct hznccl_lib {
    void *so;       /* libnccl.so.2, NULL until loaded */
    int version;    /* ncclGetVersion(): major * 10000 + minor * 100 + patch (2.18 and on) */
    char path[600]; /* where it was loaded from, for the start-up line */
    HZNCCL_FUNCS(HZNCCL_FIELD)
} hznccl_lib;
#undef HZNCCL_FIELD

/* The library, once loaded (its fields are NULL before). */
extern hznccl_lib hznccl;

/* Load NCCL 2 once: 0, or -1 with the reason in WHY (later calls give the first answer). */
int hznccl_load(char *why, size_t why_n);

#endif
#endif
