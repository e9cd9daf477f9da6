/* compiler/emit.h - the Lua bridge: renders templates/ with the plan as a Lua table. */
#ifndef HZC_EMIT_H
#define HZC_EMIT_H
#include "plan.h"

/* Render TEMPLATE (a file name under templates_dir) for the plan of SPEC_PATH and
 * write it to OUT_PATH ("-" = stdout). kernel_dir: ROOT/runtime/cuda, whose *.cu files the
 * kernels template concatenates (util.cu first, then by name: runtime/kernel_order.h).
 * C and CUDA output (a TEMPLATE named *.c.tmpl, *.h.tmpl, *.cu.tmpl, *.cuh.tmpl) gets #line
 * directives naming templates/TEMPLATE and runtime/cuda/NAME.cu. Returns 0 or prints the
 * error and returns -1. */
int emit_render(const char *templates_dir, const char *kernel_dir, const char *template_name,
                const char *spec_path, const hzc_plan *plan, const char *out_path);

#endif
