/* compiler/plan_svg.h - hzc plan --svg (plan_svg.c): the plan as an SVG picture: host store,
 * GPU arena to scale, and one step's predicted timeline by stream. */
#ifndef HZC_PLAN_SVG_H
#define HZC_PLAN_SVG_H
#include <stdio.h>

#include "plan.h"
#include "timemodel.h"

/* Write the picture of PL (predicted with C) to PATH; 0, or 1 after saying why on ERR. */
int plan_svg(const hzc_plan *pl, const tm_ceilings *c, const char *path, FILE *err);

#endif
