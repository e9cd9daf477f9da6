/* runtime/cuda/cudnn_api.c - cuDNN loaded with dlopen, and the descriptor-building layer of
 * cudnn_api.h: each helper sets a descriptor's attributes and finalises it, recording the
 * first failure in the graph instead of stopping, because a graph cuDNN refuses is not an
 * error of the run (the trainer then uses hzc's own kernels). */
#ifdef HZ_HAVE_CUDNN
#include "cudnn_api.h"
#include "dlib.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hzdnn_lib hzdnn;

/* cuDNN 9's main library loads its sub-libraries (graph, engines) by soname; where it is
 * opened from a directory that is not on the loader's path, they are opened from there first
 * (global, so the main library's own dlopen finds them already loaded). Missing ones are
 * left to cuDNN to report when it needs them. */
static const char *const sublibs[] = {"libcudnn_graph.so.9", "libcudnn_engines_precompiled.so.9",
                                      "libcudnn_engines_runtime_compiled.so.9",
                                      "libcudnn_heuristic.so.9"};

/* Open libcudnn.so.9, take its functions, check its version (hzcu_dlib_once_run's LOAD). */
static int load_cudnn(char *why, size_t why_n)
{
    const hzcu_dlib_where where = {"libcudnn.so.9", "HZ_CUDNN_LIB",
#ifdef HZ_CUDNN_LIB_DIR
                                   HZ_CUDNN_LIB_DIR,
#else
                                   NULL,
#endif
                                   "nvidia.cudnn", sublibs, sizeof sublibs / sizeof *sublibs};
    hzdnn_lib lib = {0};
#define HZDNN_NAME(name) #name,
#define HZDNN_SLOT(name) &lib.name,
    static const char *const names[] = {HZDNN_FUNCS(HZDNN_NAME)};
    void *const slots[] = {HZDNN_FUNCS(HZDNN_SLOT)};
#undef HZDNN_NAME
#undef HZDNN_SLOT
    if (hzcu_dlib_take(&where, names, slots, sizeof names / sizeof *names, &lib.so, lib.path,
                       sizeof lib.path, why, why_n) != 0)
        return -1;
    lib.version = lib.cudnnGetVersion();
    if (lib.version / 10000 != 9) {
        snprintf(why, why_n, "%s is cuDNN %zu.%zu, this build speaks cuDNN 9's backend API",
                 lib.path, lib.version / 10000, lib.version / 100 % 100);
        return -1;
    }
    hzdnn = lib;
    return 0;
}

int hzdnn_load(char *why, size_t why_n)
{
    static hzcu_dlib_once once;
    return hzcu_dlib_once_run(&once, load_cudnn, why, why_n);
}

/* ---- the descriptor layer ---- */

void hzdnn_graph_init(hzdnn_graph *g)
{
    memset(g, 0, sizeof *g);
    g->next_virtual_uid = HZDNN_VIRTUAL_UID0;
}

void hzdnn_graph_free(hzdnn_graph *g)
{
    if (hzdnn.so)
        for (int i = g->desc_n - 1; i >= 0; i--) hzdnn.cudnnBackendDestroyDescriptor(g->desc[i]);
    g->desc_n = g->op_n = 0;
    g->opgraph = g->plan = NULL;
}

void hzdnn_status_text(cudnnStatus_t st, char *buf, size_t n)
{
    char last[400] = "";
    hzdnn.cudnnGetLastErrorString(last, sizeof last);
    snprintf(buf, n, "%s%s%s%s", hzdnn.cudnnGetErrorString(st), *last ? " [" : "", last,
             *last ? "]" : "");
}

/* Record the first failure: WHAT failed with status ST. */
static void fail(hzdnn_graph *g, const char *what, cudnnStatus_t st)
{
    if (g->failed) return;
    g->failed = 1;
    char text[480];
    hzdnn_status_text(st, text, sizeof text);
    snprintf(g->err, sizeof g->err, "%s: %s", what, text);
}

static cudnnBackendDescriptor_t create(hzdnn_graph *g, cudnnBackendDescriptorType_t type,
                                       const char *what)
{
    if (g->failed) return NULL;
    if (g->desc_n == HZDNN_MAX_DESC) {
        g->failed = 1;
        snprintf(g->err, sizeof g->err, "%s: more than %d descriptors (internal error)", what,
                 HZDNN_MAX_DESC);
        return NULL;
    }
    cudnnBackendDescriptor_t d = NULL;
    cudnnStatus_t st = hzdnn.cudnnBackendCreateDescriptor(type, &d);
    if (st != CUDNN_STATUS_SUCCESS) {
        fail(g, what, st);
        return NULL;
    }
    g->desc[g->desc_n++] = d;
    return d;
}

/* Set attribute NAME of D to N elements of TYPE at V; WHAT names the call for messages. */
static void set(hzdnn_graph *g, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                cudnnBackendAttributeType_t type, int64_t n, const void *v, const char *what)
{
    if (g->failed || !d) return;
    cudnnStatus_t st = hzdnn.cudnnBackendSetAttribute(d, name, type, n, v);
    if (st != CUDNN_STATUS_SUCCESS) {
        char m[96];
        snprintf(m, sizeof m, "%s: attribute %d", what, (int)name);
        fail(g, m, st);
    }
}

static void finalize(hzdnn_graph *g, cudnnBackendDescriptor_t d, const char *what)
{
    if (g->failed || !d) return;
    cudnnStatus_t st = hzdnn.cudnnBackendFinalize(d);
    if (st != CUDNN_STATUS_SUCCESS) {
        char m[96];
        snprintf(m, sizeof m, "finalising %s", what);
        fail(g, m, st);
    }
}

static void add_op(hzdnn_graph *g, cudnnBackendDescriptor_t op, const char *what)
{
    finalize(g, op, what);
    if (g->failed) return;
    if (g->op_n == HZDNN_MAX_OPS) {
        g->failed = 1;
        snprintf(g->err, sizeof g->err, "%s: more than %d operations (internal error)", what,
                 HZDNN_MAX_OPS);
        return;
    }
    g->ops[g->op_n++] = op;
}

cudnnBackendDescriptor_t hzdnn_tensor(hzdnn_graph *g, int64_t uid, cudnnDataType_t dt,
                                      const int64_t dim[4], const int64_t stride[4], int flags)
{
    cudnnBackendDescriptor_t t = create(g, CUDNN_BACKEND_TENSOR_DESCRIPTOR, "tensor");
    if (flags & HZDNN_F_VIRTUAL) uid = g->next_virtual_uid++;
    const int64_t align = 16;
    const bool virt = (flags & HZDNN_F_VIRTUAL) != 0, by_value = (flags & HZDNN_F_BY_VALUE) != 0;
    set(g, t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt, "tensor type");
    set(g, t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dim, "tensor dims");
    set(g, t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, stride, "tensor strides");
    set(g, t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor uid");
    set(g, t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "tensor alignment");
    set(g, t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt, "tensor virtual");
    if (by_value)
        set(g, t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value, "tensor by value");
    finalize(g, t, "a tensor");
    return g->failed ? NULL : t;
}

cudnnBackendDescriptor_t hzdnn_virtual(hzdnn_graph *g, cudnnDataType_t dt, const int64_t dim[4])
{
    const int64_t stride[4] = {dim[1] * dim[2] * dim[3], dim[2] * dim[3], dim[3], 1};
    return hzdnn_tensor(g, 0, dt, dim, stride, HZDNN_F_VIRTUAL);
}

cudnnBackendDescriptor_t hzdnn_scalar(hzdnn_graph *g, int64_t uid)
{
    const int64_t one[4] = {1, 1, 1, 1};
    return hzdnn_tensor(g, uid, CUDNN_DATA_FLOAT, one, one, HZDNN_F_BY_VALUE);
}

void hzdnn_matmul(hzdnn_graph *g, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
                  cudnnBackendDescriptor_t c)
{
    cudnnBackendDescriptor_t mm = create(g, CUDNN_BACKEND_MATMUL_DESCRIPTOR, "matmul");
    cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    set(g, mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, "matmul compute type");
    finalize(g, mm, "a matmul");
    cudnnBackendDescriptor_t op = create(g, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, "matmul op");
    set(g, op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a, "matmul A");
    set(g, op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b, "matmul B");
    set(g, op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c, "matmul C");
    set(g, op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &mm, "matmul desc");
    add_op(g, op, "a matmul operation");
}

/* The pointwise descriptor of MODE in PREC (AXIS >= 0: GEN_INDEX's dimension). */
static cudnnBackendDescriptor_t pw_desc(hzdnn_graph *g, cudnnPointwiseMode_t mode,
                                        cudnnDataType_t prec, int64_t axis)
{
    cudnnBackendDescriptor_t pw = create(g, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, "pointwise");
    set(g, pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, "pointwise mode");
    set(g, pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec, "pointwise precision");
    if (axis >= 0)
        set(g, pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, "pointwise axis");
    finalize(g, pw, "a pointwise descriptor");
    return pw;
}

static void pw_op(hzdnn_graph *g, cudnnBackendDescriptor_t pw, cudnnBackendDescriptor_t x,
                  cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t,
                  cudnnBackendDescriptor_t y)
{
    cudnnBackendDescriptor_t op =
        create(g, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, "pointwise op");
    set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw,
        "pointwise desc");
    set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x,
        "pointwise X");
    if (b)
        set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b,
            "pointwise B");
    if (t)
        set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t,
            "pointwise T");
    set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y,
        "pointwise Y");
    add_op(g, op, "a pointwise operation");
}

void hzdnn_pointwise(hzdnn_graph *g, cudnnPointwiseMode_t mode, cudnnDataType_t prec,
                     cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
                     cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y)
{
    pw_op(g, pw_desc(g, mode, prec, -1), x, b, t, y);
}

void hzdnn_pointwise_axis(hzdnn_graph *g, cudnnPointwiseMode_t mode, cudnnDataType_t prec,
                          int64_t axis, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
                          cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y)
{
    pw_op(g, pw_desc(g, mode, prec, axis), x, b, t, y);
}

void hzdnn_gen_index(hzdnn_graph *g, cudnnBackendDescriptor_t x, int64_t axis,
                     cudnnBackendDescriptor_t y)
{
    pw_op(g, pw_desc(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, axis), x, NULL, NULL, y);
}

void hzdnn_reduction(hzdnn_graph *g, cudnnReduceTensorOp_t op_kind, cudnnBackendDescriptor_t x,
                     cudnnBackendDescriptor_t y)
{
    cudnnBackendDescriptor_t red = create(g, CUDNN_BACKEND_REDUCTION_DESCRIPTOR, "reduction");
    cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    set(g, red, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &op_kind,
        "reduction operator");
    set(g, red, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, "reduction type");
    finalize(g, red, "a reduction descriptor");
    cudnnBackendDescriptor_t op =
        create(g, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, "reduction op");
    set(g, op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x,
        "reduction X");
    set(g, op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y,
        "reduction Y");
    set(g, op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &red,
        "reduction desc");
    add_op(g, op, "a reduction operation");
}

void hzdnn_reshape(hzdnn_graph *g, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y)
{
    cudnnBackendDescriptor_t op = create(g, CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, "reshape");
    set(g, op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "reshape X");
    set(g, op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "reshape Y");
    add_op(g, op, "a reshape operation");
}

/* The first configuration heuristics MODE offers that finalises as a plan; 0 when found. */
static int plan_from(hzdnn_graph *g, cudnnHandle_t handle, cudnnBackendHeurMode_t mode)
{
    cudnnBackendDescriptor_t heur = create(g, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "heuristics");
    set(g, heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
        &g->opgraph, "heuristics graph");
    set(g, heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "heuristics mode");
    finalize(g, heur, "the heuristics");
    if (g->failed) return -1;
    enum { MAX_CFG = 8 };
    cudnnBackendDescriptor_t cfg[MAX_CFG];
    for (int i = 0; i < MAX_CFG; i++) cfg[i] = create(g, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "config");
    if (g->failed) return -1;
    int64_t n = 0;
    cudnnStatus_t st = hzdnn.cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, MAX_CFG, &n, cfg);
    if (st != CUDNN_STATUS_SUCCESS) {
        fail(g, "reading the heuristics' engine configurations", st);
        return -1;
    }
    cudnnStatus_t last = CUDNN_STATUS_NOT_SUPPORTED;
    for (int64_t i = 0; i < n; i++) {
        cudnnBackendDescriptor_t plan = create(g, CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, "plan");
        set(g, plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle, "plan handle");
        set(g, plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
            &cfg[i], "plan config");
        if (g->failed) return -1;
        last = hzdnn.cudnnBackendFinalize(plan);
        if (last == CUDNN_STATUS_SUCCESS) {
            g->plan = plan;
            return 0;
        }
    }
    char m[96];
    snprintf(m, sizeof m, "no engine of %lld offered finalises a plan", (long long)n);
    fail(g, m, last);
    return -1;
}

int hzdnn_finalize(hzdnn_graph *g, cudnnHandle_t handle)
{
    g->opgraph = create(g, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "operation graph");
    set(g, g->opgraph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, g->op_n,
        g->ops, "graph operations");
    set(g, g->opgraph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle,
        "graph handle");
    finalize(g, g->opgraph, "the operation graph");
    if (g->failed) return -1;
    if (plan_from(g, handle, CUDNN_HEUR_MODE_A) != 0) {
        /* keep heuristics A's reason unless the fallback list finds an engine */
        char first[sizeof g->err];
        snprintf(first, sizeof first, "%s", g->err);
        g->failed = 0;
        if (plan_from(g, handle, CUDNN_HEUR_MODE_FALLBACK) != 0) {
            snprintf(g->err, sizeof g->err, "%s", first);
            g->failed = 1;
            return -1;
        }
    }
    int64_t n = 0;
    cudnnStatus_t st = hzdnn.cudnnBackendGetAttribute(g->plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                                      CUDNN_TYPE_INT64, 1, &n, &g->workspace_bytes);
    if (st != CUDNN_STATUS_SUCCESS) {
        fail(g, "reading the plan's workspace size", st);
        return -1;
    }
    return 0;
}

cudnnStatus_t hzdnn_execute(const hzdnn_graph *g, cudnnHandle_t handle, int n,
                            const int64_t *uids, void *const *ptrs, void *ws)
{
    cudnnBackendDescriptor_t vp = NULL;
    cudnnStatus_t st = hzdnn.cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    st = hzdnn.cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
    if (st == CUDNN_STATUS_SUCCESS)
        st = hzdnn.cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS,
                                            CUDNN_TYPE_VOID_PTR, n, ptrs);
    if (st == CUDNN_STATUS_SUCCESS)
        st = hzdnn.cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE,
                                            CUDNN_TYPE_VOID_PTR, 1, &ws);
    if (st == CUDNN_STATUS_SUCCESS) st = hzdnn.cudnnBackendFinalize(vp);
    if (st == CUDNN_STATUS_SUCCESS) st = hzdnn.cudnnBackendExecute(handle, g->plan, vp);
    hzdnn.cudnnBackendDestroyDescriptor(vp);
    return st;
}
#else
/* built without cuDNN's headers: nothing here (ISO C wants a declaration in every file) */
typedef int hzdnn_not_built;
#endif
