/* compiler/emit.c - the Lua bridge. The plan becomes one Lua table `plan` (arrays only,
 * so rendering is deterministic), templates/render.lua renders a template with it. */
#include "emit.h"
#include "yml.h"

#include "../runtime/kernel_order.h"
#include "timemodel.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ID_ENTRY(id, ...) "HZ_" #id,
static const char *const unit_ids[] = {HZ_UNIT_KINDS(ID_ENTRY)};
static const char *const tensor_ids[] = {HZ_TENSOR_KINDS(ID_ENTRY)};
static const char *const region_ids[] = {HZ_REGION_KINDS(ID_ENTRY)};
static const char *const stream_ids[] = {HZ_STREAM_KINDS(ID_ENTRY)};
static const char *const op_ids[] = {HZ_OP_KINDS(ID_ENTRY)};
static const char *const phase_ids[] = {HZ_PHASES(ID_ENTRY) HZ_GPUS_PHASES(ID_ENTRY)};

static void set_int(lua_State *L, const char *k, int64_t v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

static void set_num(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static void set_str(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

/* A Lua array of strings. */
static void set_names(lua_State *L, const char *k, const char *const *names, int n)
{
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, k);
}

static void push_dims(lua_State *L, const hz_dims *d)
{
    lua_newtable(L);
    set_int(L, "V", d->V);
    set_int(L, "C", d->C);
    set_int(L, "L", d->L);
    set_int(L, "NH", d->NH);
    set_int(L, "NKV", d->NKV);
    set_int(L, "HD", d->HD);
    set_int(L, "F", d->F);
    set_int(L, "T", d->T);
    set_int(L, "B", d->B);
    set_int(L, "n_micro", d->n_micro);
    set_int(L, "micro_tokens", d->micro_tokens);
    set_int(L, "step_tokens", d->step_tokens);
    set_int(L, "chunk_tokens", d->chunk_tokens);
    set_int(L, "gpus", hz_gpus(d));
    set_int(L, "hosts", hz_hosts(d));
    set_int(L, "gpu_n_micro", hz_gpu_n_micro(d));
    set_num(L, "eps", d->eps);
    set_num(L, "rope_theta", d->rope_theta);
    set_int(L, "rope_llama3", d->rope_llama3);
    set_num(L, "rope_factor", d->rope_factor);
    set_num(L, "rope_low_freq_factor", d->rope_low_freq_factor);
    set_num(L, "rope_high_freq_factor", d->rope_high_freq_factor);
    set_int(L, "rope_original_max_pos", d->rope_original_max_pos);
    set_int(L, "tied", d->tied);
    set_int(L, "qkv_bias", d->qkv_bias);
    set_int(L, "qk_norm", d->qk_norm);
    set_num(L, "norm_offset", d->norm_offset);
    set_int(L, "post_norms", d->post_norms);
    set_int(L, "geglu", d->geglu);
    set_num(L, "embed_scale", d->embed_scale);
    set_num(L, "attn_scale", d->attn_scale);
    set_num(L, "rope_local_theta", d->rope_local_theta);
    set_num(L, "rope_linear", d->rope_linear);
    set_int(L, "window", d->window);
    set_int(L, "window_n", d->window_n);
}

static void push_train(lua_State *L, const hz_train_defaults *t)
{
    lua_newtable(L);
    set_num(L, "lr", t->lr);
    set_num(L, "beta1", t->beta1);
    set_num(L, "beta2", t->beta2);
    set_num(L, "eps", t->eps);
    set_num(L, "weight_decay", t->weight_decay);
    set_num(L, "grad_clip", t->grad_clip);
    set_num(L, "min_lr_ratio", t->min_lr_ratio);
    set_int(L, "warmup_steps", t->warmup_steps);
    set_int(L, "decay_steps", t->decay_steps);
    set_int(L, "seed", t->seed);
}

static void push_plan(lua_State *L, const hzc_plan *pl, const char *spec_path)
{
    const hz_plan *p = &pl->p;
    lua_newtable(L);
    set_str(L, "spec", spec_path);
    set_str(L, "name", p->spec_name);
    set_str(L, "family", p->family);
    set_str(L, "version", HZ_VERSION);
    set_int(L, "params", p->params_n);
    set_int(L, "host_store_n", p->host_store_n);
    set_int(L, "host_grad_bf16", p->host_grad_bf16);
    set_int(L, "optimizer_state", p->optimizer_state);
    set_str(L, "optimizer_state_name", hz_optstate_names[p->optimizer_state]);
    set_int(L, "boundary_on_host", p->boundary_on_host);
    set_int(L, "host_bytes", p->host_bytes);
    set_int(L, "host_store_bytes", p->host_store_bytes);
    set_int(L, "host_extra_bytes", pl->host_extra_bytes);
    set_int(L, "gpu_bytes", p->gpu_bytes);
    set_int(L, "work_bytes", p->work_bytes);
    set_int(L, "resident_n", p->resident_n);
    set_int(L, "resident_g_n", p->resident_g_n);
    set_int(L, "saved_bytes", p->saved_bytes);
    set_int(L, "keep_n", p->keep_n);
    set_int(L, "mlp_out_n", p->mlp_out_n);
    set_int(L, "mlp_out_bytes", p->mlp_out_bytes);
    set_int(L, "hold_n", p->hold_n);
    set_int(L, "fetch_n", p->fetch_n);
    set_int(L, "n_wslots", pl->n_wslots);
    set_int(L, "n_gslots", pl->n_gslots);
    set_num(L, "flops_per_token", hz_flops_per_token(&p->dims));
    lua_newtable(L); /* the predicted step (compiler/timemodel.c) */
    int phase_n = hz_plan_phase_n(p); /* the several-GPU phases only in such a plan */
    lua_createtable(L, phase_n, 0);
    for (int k = 0; k < phase_n; k++) {
        lua_pushnumber(L, p->pred.phase_s[k]);
        lua_rawseti(L, -2, k + 1);
    }
    lua_setfield(L, -2, "phase_s");
    set_num(L, "step_s", p->pred.step_s);
    set_int(L, "critical", p->pred.critical);
    set_str(L, "ceilings", p->pred.ceilings ? p->pred.ceilings : "");
    set_str(L, "ceilings_gpu", p->pred.ceilings_gpu ? p->pred.ceilings_gpu : "");
    set_int(L, "process_host_bytes", p->pred.process_host_bytes);
    set_num(L, "gemm_tflops", p->pred.gemm_tflops);
    set_num(L, "hbm_gbps", p->pred.hbm_gbps);
    set_num(L, "h2d_gbps", p->pred.h2d_gbps);
    set_num(L, "d2h_gbps", p->pred.d2h_gbps);
    char crit[256];
    tm_critical_text(p, crit, sizeof crit);
    set_str(L, "critical_text", crit);
    lua_setfield(L, -2, "pred");
    set_names(L, "phase_ids", phase_ids, phase_n);
    set_names(L, "phase_names", hz_phase_names, phase_n);
    push_dims(L, &p->dims);
    lua_setfield(L, -2, "dims");
    push_train(L, &p->train);
    lua_setfield(L, -2, "train");
    set_names(L, "unit_ids", unit_ids, HZ_UNIT_KIND_N);
    set_names(L, "unit_names", hz_unit_names, HZ_UNIT_KIND_N);
    set_names(L, "tensor_ids", tensor_ids, HZ_TENSOR_KIND_N);
    set_names(L, "tensor_names", hz_tensor_names, HZ_TENSOR_KIND_N);
    set_names(L, "region_ids", region_ids, HZ_REGION_KIND_N);
    set_names(L, "region_names", hz_region_names, HZ_REGION_KIND_N);
    set_names(L, "region_what", hz_region_what, HZ_REGION_KIND_N);
    set_names(L, "stream_ids", stream_ids, HZ_STREAM_KIND_N);
    set_names(L, "stream_names", hz_stream_names, HZ_STREAM_KIND_N);
    set_names(L, "op_ids", op_ids, HZ_OP_KIND_N);
    set_names(L, "op_names", hz_op_names, HZ_OP_KIND_N);

    /* enum values are 0-based in C; the tables keep them as numbers, and the templates
     * index the *_ids arrays with value + 1. */
    lua_createtable(L, p->unit_n, 0);
    for (int i = 0; i < p->unit_n; i++) {
        const hz_unit *u = &p->units[i];
        lua_newtable(L);
        set_int(L, "kind", u->kind);
        set_int(L, "layer", u->layer);
        set_int(L, "first_tensor", u->first_tensor);
        set_int(L, "tensor_n", u->tensor_n);
        set_int(L, "host_n", u->host_n);
        set_int(L, "padded_n", u->padded_n);
        set_int(L, "params_n", u->params_n);
        set_int(L, "grad_region", u->grad_region);
        set_int(L, "span_n", u->span_n);
        set_int(L, "resident", u->resident);
        set_int(L, "res_n", u->res_n);
        set_int(L, "res_g_n", u->res_g_n);
        set_int(L, "keep", u->keep);
        set_int(L, "keep_slot", u->keep_slot);
        set_int(L, "held", u->held);
        set_int(L, "window", u->window);
        set_int(L, "hold_n", u->hold_n);
        set_int(L, "keep_mlp_out", u->keep_mlp_out);
        set_int(L, "mlp_out_slot", u->mlp_out_slot);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "units");

    lua_createtable(L, p->tensor_n, 0);
    for (int i = 0; i < p->tensor_n; i++) {
        const hz_tensor *t = &p->tensors[i];
        lua_newtable(L);
        set_int(L, "kind", t->kind);
        set_int(L, "layer", t->layer);
        set_int(L, "rows", t->rows);
        set_int(L, "cols", t->cols);
        set_int(L, "host_n", t->host_n);
        set_int(L, "slot_n", t->slot_n);
        set_int(L, "grad_n", t->grad_n);
        set_int(L, "store_grad", t->store_grad);
        set_int(L, "decay", t->decay);
        set_int(L, "res_n", t->res_n);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "tensors");

    lua_createtable(L, HZ_REGION_KIND_N, 0);
    for (int i = 0; i < HZ_REGION_KIND_N; i++) {
        const hz_region *r = &p->regions[i];
        lua_newtable(L);
        set_int(L, "kind", r->kind);
        set_int(L, "offset_bytes", r->offset_bytes);
        set_int(L, "bytes", r->bytes);
        set_int(L, "count", r->count);
        set_int(L, "slot_bytes", r->slot_bytes);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "regions");

    lua_createtable(L, p->op_n, 0);
    for (int i = 0; i < p->op_n; i++) {
        const hz_op *o = &p->ops[i];
        lua_newtable(L);
        set_int(L, "kind", o->kind);
        set_int(L, "stream", o->stream);
        set_int(L, "unit", o->unit);
        set_int(L, "micro", o->micro);
        set_int(L, "slot", o->slot);
        set_int(L, "gslot", o->gslot);
        set_int(L, "bnd", o->bnd);
        lua_createtable(L, HZ_OP_WAITS, 0);
        for (int w = 0; w < HZ_OP_WAITS; w++) {
            lua_pushinteger(L, o->wait[w]);
            lua_rawseti(L, -2, w + 1);
        }
        lua_setfield(L, -2, "wait");
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "ops");
}

/* The directory the kernel sources are named in, relative to hzc's root (compiler/main.c
 * passes ROOT/runtime/cuda): #line and the section comments of kernels.cu name the file a
 * person edits. */
#define KERNEL_DIR_NAME "runtime/cuda"

/* The .cu file names in DIR, in the kernel source order (runtime/kernel_order.h); malloc'd,
 * *n of them. NULL after printing the error (an unreadable directory, no .cu file, no memory). */
static char **kernel_source_names(const char *dir, int *n)
{
    DIR *dp = opendir(dir);
    if (!dp) {
        fprintf(stderr, "hzc: error: cannot open the kernel directory %s: %s\n", dir,
                strerror(errno));
        return NULL;
    }
    char **names = NULL;
    int cap = 0;
    *n = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(dp))) {
        if (!hz_kernel_source_name(e->d_name)) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = realloc(names, (size_t)cap * sizeof *names);
            if (!grown) goto oom;
            names = grown;
        }
        if (!(names[*n] = strdup(e->d_name))) goto oom;
        ++*n;
        errno = 0;
    }
    if (errno) {
        fprintf(stderr, "hzc: error: cannot list the kernel directory %s: %s\n", dir,
                strerror(errno));
        goto fail;
    }
    if (*n == 0) {
        fprintf(stderr, "hzc: error: no kernel sources (.cu files) in %s\n", dir);
        goto fail;
    }
    closedir(dp);
    qsort(names, (size_t)*n, sizeof *names, hz_kernel_source_cmp);
    return names;
oom:
    fprintf(stderr, "hzc: error: out of memory listing the kernel directory %s\n", dir);
fail:
    closedir(dp);
    for (int i = 0; i < *n; i++) free(names[i]);
    free(names);
    return NULL;
}

/* sources = { {name = "util.cu", path = "runtime/cuda/util.cu", text = ...}, ... } in the
 * kernel source order. */
static int push_sources(lua_State *L, const char *dir)
{
    int n = 0;
    char **names = kernel_source_names(dir, &n);
    if (!names) return -1;
    lua_createtable(L, n, 0);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        size_t len = 0;
        char *text = f ? yml_slurp(f, SIZE_MAX, &len) : NULL;
        if (f) fclose(f);
        if (!text) {
            fprintf(stderr, "hzc: error: cannot read %s\n", path);
            bad = 1;
        } else {
            lua_newtable(L);
            set_str(L, "name", names[i]);
            snprintf(path, sizeof path, KERNEL_DIR_NAME "/%s", names[i]);
            set_str(L, "path", path);
            lua_pushlstring(L, text, len);
            lua_setfield(L, -2, "text");
            lua_rawseti(L, -2, i + 1);
        }
        free(text);
        free(names[i]);
    }
    free(names);
    return bad ? -1 : 0;
}

/* Whether the output of TEMPLATE_NAME ("schedule.c.tmpl") is C or CUDA, which take #line
 * directives back to the template; JSON and other text have no such thing. */
static int takes_line_directives(const char *template_name)
{
    static const char *const exts[] = {".c.tmpl", ".h.tmpl", ".cu.tmpl", ".cuh.tmpl"};
    size_t len = strlen(template_name);
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        size_t n = strlen(exts[i]);
        if (len > n && strcmp(template_name + len - n, exts[i]) == 0) return 1;
    }
    return 0;
}

int emit_render(const char *templates_dir, const char *kernel_dir, const char *template_name,
                const char *spec_path, const hzc_plan *plan, const char *out_path)
{
    lua_State *L = luaL_newstate();
    if (!L) return -1;
    luaL_openlibs(L);
    char path[4096];
    snprintf(path, sizeof path, "%s/render.lua", templates_dir);
    int rc = -1;
    if (luaL_dofile(L, path) != LUA_OK) {
        fprintf(stderr, "hzc: error: %s\n", lua_tostring(L, -1));
        goto done;
    }
    lua_getfield(L, -1, "file");
    snprintf(path, sizeof path, "%s/%s", templates_dir, template_name);
    lua_pushstring(L, path);
    lua_newtable(L); /* the template's environment */
    push_plan(L, plan, spec_path);
    lua_setfield(L, -2, "plan");
    lua_pushstring(L, template_name);
    lua_setfield(L, -2, "template");
    if (kernel_dir) {
        if (push_sources(L, kernel_dir) != 0) goto done;
        lua_setfield(L, -2, "sources");
    }
    /* the name in Lua errors and #line: relative to hzc's root, as a person edits it */
    lua_pushfstring(L, "templates/%s", template_name);
    lua_pushboolean(L, takes_line_directives(template_name));
    if (lua_pcall(L, 4, 1, 0) != LUA_OK) {
        fprintf(stderr, "hzc: error: rendering %s: %s\n", template_name, lua_tostring(L, -1));
        goto done;
    }
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    FILE *out = strcmp(out_path, "-") == 0 ? stdout : fopen(out_path, "wb");
    if (!out) {
        fprintf(stderr, "hzc: error: cannot write %s\n", out_path);
        goto done;
    }
    int ok = fwrite(text, 1, len, out) == len;
    if (out != stdout) ok = (fclose(out) == 0) && ok;
    if (!ok) {
        fprintf(stderr, "hzc: error: writing %s failed\n", out_path);
        goto done;
    }
    rc = 0;
done:
    lua_close(L);
    return rc;
}
