/* runtime/hosts.h - one training run over several hosts (docs/plan.md "Several hosts"): a
 * trainer process on each, started with torchrun's conventions (RANK, WORLD_SIZE,
 * MASTER_ADDR, MASTER_PORT; one process a host, so LOCAL_RANK is 0 or unset), which meet at
 * host 0 over TCP (a connection from every other host, the star this file owns). Over it the
 * hosts check that they run the same plan from the same step, sum their loss and (the cpu
 * backend) their gradients, and pass host 0's bytes to the others (NCCL's unique id). Every
 * sum is made once, on host 0, in host order, and its bits sent to every host, so all hosts
 * hold the same result. A host that stops closes its connection, and the others stop saying
 * which. hosts.c. */
#ifndef HZ_HOSTS_H
#define HZ_HOSTS_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hz.h"

typedef struct hz_hostlink {
    int n, rank; /* hosts in the run (1: alone), this one's (0: where they meet) */
    int *fd;     /* host 0: fd[h] the connection of host h (1..n-1); others: fd[0], host 0's */
} hz_hostlink;

/* Join the run PLANNED_HOSTS hosts make (the plan's hz_hosts), from the environment; with
 * one host (and no WORLD_SIZE above 1) only fills H as alone. Host 0 waits for the others,
 * the others connect (each for up to HZ_HOSTS_TIMEOUT seconds, default 300). Returns 0, or
 * -1 having said on stderr what is wrong and what to do. */
int hz_hosts_join(hz_hostlink *h, int64_t planned_hosts);

/* Every host gives N values; 0 when all hosts' equal host 0's, else -1, having said on
 * stderr (each host) which host differs in WHAT[i] and both values. */
int hz_hosts_agree(hz_hostlink *h, const int64_t *v, int n, const char *const *what);

/* V (N doubles or floats) becomes the sum over the hosts, added in host order on host 0
 * and the same bits on every host. */
void hz_hosts_sum_f64(hz_hostlink *h, double *v, int64_t n);
void hz_hosts_sum_f32(hz_hostlink *h, float *v, int64_t n);

/* Host 0's N bytes at BUF to every host. */
void hz_hosts_bcast(hz_hostlink *h, void *buf, size_t n);

void hz_hosts_close(hz_hostlink *h);

/* What the hosts compare to know they run the same trainer: a digest of P's shape (dims),
 * its op list and its store's size (no pointers, so the same in every process). */
uint64_t hz_plan_digest(const hz_plan *p);

#endif
