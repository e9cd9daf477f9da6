/* compiler/plan_sched.c - the planner's step schedule (contract in plan.h plan_schedule): the
 * op list of one step with its streams, weight and gradient slots, host boundary buffers,
 * the held units' gradient fetches and the events each op waits on. */
#include "plan.h"

#include <stdlib.h>
#include <string.h>

typedef struct sched {
    hzc_plan *pl;
    int cap;
    int slot_next, gslot_next;
    int *slot_last_use;   /* per weight slot: last op reading it */
    int *gslot_last_store;/* per grad slot: last STORE_G that emptied it */
    int buf_last[2][HZ_STREAM_KIND_N]; /* host boundaries: per GPU buffer and stream, the
                                        * last op that used it */
} sched;



static int emit(sched *s, int kind, int stream, int unit, int micro, int slot, int gslot)
{
    hzc_plan *pl = s->pl;
    if (pl->p.op_n == s->cap) {
        s->cap *= 2;
        pl->ops = realloc(pl->ops, (size_t)s->cap * sizeof(hz_op));
        if (!pl->ops) exit(1);
    }
    hz_op *o = &pl->ops[pl->p.op_n];
    *o = (hz_op){kind, stream, unit, micro, slot, gslot, -1, {-1, -1, -1}};
    return pl->p.op_n++;
}

static void add_wait(hzc_plan *pl, int op, int on)
{
    if (on < 0) return;
    hz_op *o = &pl->ops[op];
    for (int i = 0; i < HZ_OP_WAITS; i++) {
        if (o->wait[i] == on) return;
        if (o->wait[i] < 0) {
            o->wait[i] = on;
            return;
        }
    }
    abort(); /* planner bug: more waits than HZ_OP_WAITS */
}

/* Host boundaries: op OP uses buffer B; a writer first waits for the buffer's last users
 * on the other streams (its own stream is in order). */
static void use_buffer(sched *s, int op, int b, int writes)
{
    hzc_plan *pl = s->pl;
    if (!pl->p.boundary_on_host) return;
    int stream = pl->ops[op].stream;
    if (writes)
        for (int k = 0; k < HZ_STREAM_KIND_N; k++)
            if (k != stream) add_wait(pl, op, s->buf_last[b][k]);
    s->buf_last[b][stream] = op;
}

/* LOAD_W of unit u into the next weight slot; returns the op index. */
static int load_weights(sched *s, int u, int *slot_out)
{
    int slot = s->slot_next;
    s->slot_next = (s->slot_next + 1) % s->pl->n_wslots;
    int op = emit(s, HZ_LOAD_W, HZ_H2D, u, -1, slot, -1);
    add_wait(s->pl, op, s->slot_last_use[slot]);
    *slot_out = slot;
    return op;
}

void plan_schedule(hzc_plan *pl, int clip)
{
    sched s = {.pl = pl, .cap = 64};
    /* the schedule of one GPU: its share of the step's micro-batches */
    int n_micro = (int)hz_gpu_n_micro(&pl->p.dims), L = (int)pl->p.dims.L;
    int head = L + 1, store_head = -1, store_last = -1, held_n = 0, any_held = 0;
    int *store_of = plan_xcalloc((size_t)pl->p.unit_n, sizeof(int));
    int *fetch_of = plan_xcalloc((size_t)pl->p.unit_n, sizeof(int));
    int *held = plan_xcalloc((size_t)pl->p.unit_n, sizeof(int)); /* the held units, forward order */
    for (int u = 0; u < pl->p.unit_n; u++) {
        fetch_of[u] = -1;
        if (pl->units[u].held) held[held_n++] = u;
    }
    any_held = held_n > 0;
    pl->ops = plan_xcalloc((size_t)s.cap, sizeof(hz_op));
    s.slot_last_use = plan_xcalloc((size_t)pl->n_wslots, sizeof(int));
    s.gslot_last_store = plan_xcalloc((size_t)pl->n_gslots, sizeof(int));
    for (int i = 0; i < pl->n_wslots; i++) s.slot_last_use[i] = -1;
    for (int i = 0; i < pl->n_gslots; i++) s.gslot_last_store[i] = -1;
    for (int b = 0; b < 2; b++)
        for (int k = 0; k < HZ_STREAM_KIND_N; k++) s.buf_last[b][k] = -1;

    /* Held units: the previous step's gradients go to the host staging slots (k % 2 for
     * the k-th held unit) in forward order, two ahead of the weights: the first two before
     * anything, held unit k just after the weights of held unit k - 2 (issuing those waited
     * for its update, which has emptied the slot). */
    for (int k = 0; k < held_n && k < 2; k++)
        fetch_of[held[k]] = emit(&s, HZ_FETCH_G, HZ_D2H, held[k], -1, -1, k % 2);
    /* forward: embed, blocks, then the head's loss (forward + backward). Unit u writes
     * boundary u and reads boundary u - 1; with host boundaries, boundary j < L then goes
     * to the host (the head's input, boundary L, stays for the loss). */
    for (int u = 0, k = 0; u < pl->p.unit_n; u++) {
        int slot = -1, load = -1, last = -1;
        if (!pl->units[u].resident) load = load_weights(&s, u, &slot);
        if (k < held_n && held[k] == u) {
            if (k + 2 < held_n)
                fetch_of[held[k + 2]] = emit(&s, HZ_FETCH_G, HZ_D2H, held[k + 2], -1, -1, k % 2);
            k++;
        }
        for (int m = 0; m < n_micro; m++) {
            last = emit(&s, u == head ? HZ_LOSS : HZ_FWD, HZ_COMPUTE, u, m, slot, -1);
            if (m == 0) add_wait(pl, last, load);
            if (m == 0 && u == head) { /* the loss overwrites the head's held gradients */
                add_wait(pl, last, fetch_of[u]);
                if (pl->p.dims.tied) add_wait(pl, last, fetch_of[0]); /* the embedding's too */
            }
            if (u > 0) use_buffer(&s, last, (u - 1) % 2, 0);
            if (u < head) use_buffer(&s, last, u % 2, 1);
        }
        if (slot >= 0) s.slot_last_use[slot] = last;
        if (pl->p.boundary_on_host && u < L) {
            int st = emit(&s, HZ_STORE_B, HZ_D2H, u, -1, -1, -1);
            pl->ops[st].bnd = u;
            add_wait(pl, st, last);
            use_buffer(&s, st, u % 2, 0);
        }
        if (u == head) {
            store_head = emit(&s, HZ_STORE_G, HZ_D2H, u, -1, -1, -1);
            add_wait(pl, store_head, last);
            store_of[u] = store_head;
        }
    }
    /* backward: blocks in reverse, recomputed from their boundaries, then the embedding */
    for (int u = L; u >= 0; u--) {
        int slot = -1, load = -1, gslot = -1, last = -1;
        int load_b = -1, resident = pl->units[u].resident;
        if (u > 0) {
            if (!resident) load = load_weights(&s, u, &slot);
            if (!resident && !pl->units[u].held) { /* a held unit accumulates in GHOLD */
                gslot = s.gslot_next;
                s.gslot_next = (s.gslot_next + 1) % pl->n_gslots;
            }
            /* block u - 1 reads boundary u - 1; the last block's is still on the GPU */
            if (pl->p.boundary_on_host && u < L) {
                load_b = emit(&s, HZ_LOAD_B, HZ_H2D, u, -1, -1, -1);
                pl->ops[load_b].bnd = u - 1;
                use_buffer(&s, load_b, (u - 1) % 2, 1);
            }
        }
        for (int m = 0; m < n_micro; m++) {
            last = emit(&s, HZ_BWD, HZ_COMPUTE, u, m, slot, gslot);
            if (u > 0) use_buffer(&s, last, (u - 1) % 2, 0);
            if (m > 0) continue;
            add_wait(pl, last, load);
            add_wait(pl, last, load_b);
            if (gslot >= 0) add_wait(pl, last, s.gslot_last_store[gslot]);
            add_wait(pl, last, fetch_of[u]); /* a held unit's: fetched before it is overwritten */
            if (u == 0 && !pl->p.dims.tied && !resident && !pl->units[u].held)
                add_wait(pl, last, store_head); /* GHEAD reuse */
        }
        if (slot >= 0) s.slot_last_use[slot] = last;
        store_last = emit(&s, HZ_STORE_G, HZ_D2H, u, -1, -1, gslot);
        add_wait(pl, store_last, last);
        store_of[u] = store_last;
        if (gslot >= 0) s.gslot_last_store[gslot] = store_last;
    }
    /* optimizer on the host. With clipping every update waits for the global norm (the
     * last store_g), so they run in forward order, overlapping the next step's forward.
     * Without, each unit updates as soon as its gradients are home, in the order they
     * arrive (head, blocks in reverse, embedding): the updates overlap this backward.
     * A held unit's update waits for its FETCH_G, which the next step issues in forward
     * order: a plan with held units updates in forward order. Resident units update on the
     * GPU (compute stream), issued once the step's norm is known (runtime/exec.c). */
    int forward_order = clip || any_held;
    for (int k = 0; k < pl->p.unit_n; k++) {
        int u = forward_order ? k : (k == 0 ? head : head - k);
        int stream = pl->units[u].resident ? HZ_COMPUTE : HZ_HOST;
        int op = emit(&s, HZ_OPT, stream, u, -1, -1, -1);
        add_wait(pl, op, clip ? store_last : store_of[u]);
        add_wait(pl, op, fetch_of[u]);
    }
    free(store_of);
    free(fetch_of);
    free(held);
    free(s.slot_last_use);
    free(s.gslot_last_store);
}

