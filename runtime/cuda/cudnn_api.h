/* runtime/cuda/cudnn_api.h - cuDNN 9's backend API, loaded at run time: the library found and
 * opened with dlopen (never linked, so a trainer runs where there is no cuDNN), the handful of
 * functions it exports, and a small layer that builds backend descriptors (tensors,
 * operations, an operation graph, its execution plan) so that a graph reads top to bottom.
 * Only built where configure found cuDNN's headers (HZ_HAVE_CUDNN); the attention graphs
 * that use it are runtime/cuda/cudnn_attention.c. */
#ifndef HZ_CUDA_CUDNN_API_H
#define HZ_CUDA_CUDNN_API_H
#ifdef HZ_HAVE_CUDNN
#include <stddef.h>
#include <stdint.h>

#include <cudnn_graph.h>

/* X(name): the functions taken from the library, with the header's own types. */
#define HZDNN_FUNCS(X)                                                                            \
    X(cudnnGetVersion)                                                                            \
    X(cudnnGetErrorString)                                                                        \
    X(cudnnGetLastErrorString)                                                                    \
    X(cudnnCreate)                                                                                \
    X(cudnnDestroy)                                                                               \
    X(cudnnSetStream)                                                                             \
    X(cudnnBackendCreateDescriptor)                                                               \
    X(cudnnBackendDestroyDescriptor)                                                              \
    X(cudnnBackendSetAttribute)                                                                   \
    X(cudnnBackendGetAttribute)                                                                   \
    X(cudnnBackendFinalize)                                                                       \
    X(cudnnBackendExecute)

#define HZDNN_FIELD(name) __typeof__(name) *name;
typedef struct hzdnn_lib {
    void *so;       /* libcudnn.so.9, NULL until loaded */
    size_t version; /* cudnnGetVersion(): major * 10000 + minor * 100 + patch */
    char path[600]; /* where it was loaded from, for the start-up line */
    HZDNN_FUNCS(HZDNN_FIELD)
} hzdnn_lib;
#undef HZDNN_FIELD

/* The library, once loaded (its fields are NULL before). */
extern hzdnn_lib hzdnn;

/* Load libcudnn.so.9 (once; later calls return the first answer): from the directory
 * $HZ_CUDNN_LIB, then by soname (LD_LIBRARY_PATH, the system), then from the directory
 * configure found, then from python3's nvidia-cudnn wheel. 0 when loaded with every function
 * and major version 9; else -1 with the reason in WHY. */
int hzdnn_load(char *why, size_t why_n);

/* ---- building one graph ----
 * Every helper records the first failure (the call, the attribute, cuDNN's error string) in
 * the graph and does nothing once one is recorded, so a graph is written as a straight list
 * of calls and checked once at hzdnn_finalize. Descriptors stay alive with the graph (the
 * execution plan refers to them) until hzdnn_graph_free. */
#define HZDNN_MAX_DESC 160
#define HZDNN_MAX_OPS 48

typedef struct hzdnn_graph {
    cudnnBackendDescriptor_t desc[HZDNN_MAX_DESC]; /* everything created, to destroy */
    int desc_n;
    cudnnBackendDescriptor_t ops[HZDNN_MAX_OPS];
    int op_n;
    int64_t next_virtual_uid; /* uids of virtual tensors: from HZDNN_VIRTUAL_UID0 */
    cudnnBackendDescriptor_t opgraph, plan;
    int64_t workspace_bytes; /* the plan's CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE */
    int failed;
    char err[640];
} hzdnn_graph;

#define HZDNN_VIRTUAL_UID0 1000

/* a tensor of 4 dims: F_VIRTUAL (an intermediate the engine keeps to itself; its uid is
 * assigned), F_BY_VALUE (a host scalar passed in the variant pack), else a device tensor */
enum { HZDNN_F_DEVICE = 0, HZDNN_F_VIRTUAL = 1, HZDNN_F_BY_VALUE = 2 };

void hzdnn_graph_init(hzdnn_graph *g);
void hzdnn_graph_free(hzdnn_graph *g);
/* A tensor of dims DIM and strides STRIDE (in elements) of type DT; UID for a device or
 * by-value tensor (ignored when virtual). NULL once the graph has failed. */
cudnnBackendDescriptor_t hzdnn_tensor(hzdnn_graph *g, int64_t uid, cudnnDataType_t dt,
                                      const int64_t dim[4], const int64_t stride[4], int flags);
/* A virtual tensor of type DT and dims DIM, packed row-major. */
cudnnBackendDescriptor_t hzdnn_virtual(hzdnn_graph *g, cudnnDataType_t dt, const int64_t dim[4]);
/* A by-value fp32 scalar (dims 1,1,1,1). */
cudnnBackendDescriptor_t hzdnn_scalar(hzdnn_graph *g, int64_t uid);
/* C = A B, batched over the two leading dims (fp32 accumulation). */
void hzdnn_matmul(hzdnn_graph *g, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
                  cudnnBackendDescriptor_t c);
/* Y = MODE(X [, B [, T]]) computed in PREC; B and T NULL where the mode takes fewer inputs
 * (BINARY_SELECT: Y = T ? X : B). */
void hzdnn_pointwise(hzdnn_graph *g, cudnnPointwiseMode_t mode, cudnnDataType_t prec,
                     cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
                     cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y);
/* The same with the descriptor's AXIS set (the broadcast axis of an index arithmetic). */
void hzdnn_pointwise_axis(hzdnn_graph *g, cudnnPointwiseMode_t mode, cudnnDataType_t prec,
                          int64_t axis, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
                          cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y);
/* Y = the index along dimension AXIS of each element of X (CUDNN_POINTWISE_GEN_INDEX). */
void hzdnn_gen_index(hzdnn_graph *g, cudnnBackendDescriptor_t x, int64_t axis,
                     cudnnBackendDescriptor_t y);
/* Y = X reduced by OP over the dims where Y is smaller. */
void hzdnn_reduction(hzdnn_graph *g, cudnnReduceTensorOp_t op, cudnnBackendDescriptor_t x,
                     cudnnBackendDescriptor_t y);
/* Y = X seen with Y's dims and strides (no data moves). */
void hzdnn_reshape(hzdnn_graph *g, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y);
/* The operation graph on HANDLE, heuristics (mode A, then fallback), and the first engine
 * configuration that finalises as an execution plan. 0 on success (workspace_bytes set),
 * else -1 with the reason in g->err. */
int hzdnn_finalize(hzdnn_graph *g, cudnnHandle_t handle);
/* The text of status ST for a message: cuDNN's name for it and, where cuDNN logged one, its
 * own account of the last failure on this thread (which descriptor, which check). */
void hzdnn_status_text(cudnnStatus_t st, char *buf, size_t n);
/* Run the graph's plan with the N tensors UIDS at PTRS (device pointers, or host pointers
 * of by-value scalars) and workspace WS (workspace_bytes). CUDNN_STATUS_SUCCESS or the
 * failure, whose text is hzdnn.cudnnGetErrorString. */
cudnnStatus_t hzdnn_execute(const hzdnn_graph *g, cudnnHandle_t handle, int n,
                            const int64_t *uids, void *const *ptrs, void *ws);

#endif
#endif
