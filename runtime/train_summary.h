/* runtime/train_summary.h - the end of a run's summary (train_summary.c): the profiled
 * steps' means with the predicted times beside them, and the memory planned beside
 * measured, the host's resident set with the process's own share. */
#ifndef HZ_TRAIN_SUMMARY_H
#define HZ_TRAIN_SUMMARY_H
#include "rt.h"

/* The process's resident memory by kind (/proc/self/status; VmRSS is their sum): what grows
 * after ready is either memory allocated (anonymous) or pages of code and libraries touched
 * (file-backed). */
typedef struct hz_rss_kinds {
    int64_t anon, file, shmem;
} hz_rss_kinds;
hz_rss_kinds hz_rss_kinds_now(void);

/* The mean of N profiled steps (SUM their totals) of STEP_S seconds a step: device span and
 * busy, PCIe per step, and on a device backend the predicted phases beside the measured. */
void hz_train_print_profile(const hz_plan *p, const hz_profile *sum, int64_t n, double step_s);

/* The host store and the host peak planned beside measured, printed and written to
 * MEM[0] and MEM[1] (for --metrics); on a device backend the peak with the process's own
 * share (READY: the resident set when the trainer was ready). */
void hz_train_print_memory(const hz_ctx *ctx, const hz_rss_kinds *ready, hz_mem_line mem[2]);

#endif
