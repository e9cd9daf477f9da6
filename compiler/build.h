/* compiler/build.h - hzc build: write a plan's generated sources and link its trainer. */
#ifndef HZC_BUILD_H
#define HZC_BUILD_H
#include "plan.h"

/* Render PL (planned from SPEC_PATH) into OUT_DIR/generated/{schedule.c,kernels.cu,plan.json}
 * with ROOT's templates and kernel sources, then compile and link OUT_DIR/train against
 * ROOT/build/libhzrt_BACKEND.a (BACKEND NULL: cuda where that library exists, else cpu),
 * echoing each command. 0, or 1 after saying why on stderr. */
int build_trainer(const char *spec_path, const char *out_dir, const char *backend,
                  const hzc_plan *pl, const char *root);

#endif
