/* runtime/train_check.c - what the trainer refuses before any work (train_check.h): a plan
 * for several GPUs on a backend that runs one, sampling on several hosts; an output path it
 * could not write at the end; a host without room for the plan. Each refusal is one message
 * saying what to do, and exit status 1. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt.h"
#include "train_check.h"

/* The plan splits the step over several GPUs, of which a backend without ranks runs one;
 * over several hosts, each host's trainer runs its share, and what needs the whole step's
 * logits on one host is refused (docs/plan.md "Several GPUs of one host", "Several
 * hosts"); that the hosts exist is hosts.c's to find. */
static void check_split(const hz_plan *p, const train_args *a)
{
    int64_t gpus = hz_gpus(&p->dims), hosts = hz_hosts(&p->dims);
    if (gpus > 1 && !hz_backend_impl.caps->ranks)
        fprintf(stderr, "train: error: this trainer's plan splits each step over %lld GPUs, "
                        "and the %s backend runs one GPU a process: build it again without "
                        "--gpus (and without plan.gpus) to train on one\n",
                (long long)gpus, hz_backend_impl.name);
    else if (hosts > 1 && (a->sample_every || a->logits))
        fprintf(stderr, "train: error: %s on a plan of %lld hosts: each host holds its share of "
                        "the step's logits; sample or dump them with a one-host trainer from "
                        "the run's checkpoint (--resume)\n",
                a->sample_every ? "--sample-every" : "--dump-logits", (long long)hosts);
    else
        return;
    exit(1);
}

/* Die unless FILE can be written: an existing file is opened for writing, unchanged; a
 * new one is created and removed again. */
static void probe_file(const char *flag, const char *path)
{
    int fd = open(path, O_WRONLY | O_NONBLOCK);
    int created = 0;
    if (fd < 0 && errno == ENOENT) {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0666);
        created = fd >= 0;
    }
    if (fd < 0) {
        fprintf(stderr, "train: error: %s %s: cannot write there: %s; pick a writable path "
                        "(checked before training, so no work is lost)\n",
                flag, path, strerror(errno));
        exit(1);
    }
    close(fd);
    if (created) unlink(path);
}

/* --out's directory is created now and must take a file. */
static void probe_out_dir(const char *dir)
{
    char probe[4200];
    int fd = -1;
    if (hz_mkdir_p(dir) == 0) {
        snprintf(probe, sizeof probe, "%s/.hzc-probe-%ld", dir, (long)getpid());
        fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0666);
    }
    if (fd < 0) {
        fprintf(stderr, "train: error: --out %s: cannot write checkpoints there: %s; pick a "
                        "writable directory (checked before training, so no work is lost)\n",
                dir, strerror(errno));
        exit(1);
    }
    close(fd);
    unlink(probe);
}

/* Every output path the flags name. */
static void probe_outputs(const train_args *a)
{
    if (a->probe_out) probe_file("-o", a->probe_out);
    if (a->out) probe_out_dir(a->out);
    if (a->save_raw) probe_file("--save-raw", a->save_raw);
    if (a->logits) probe_file("--dump-logits", a->logits);
    if (a->trace) probe_file("--trace", a->trace);
    if (a->metrics) probe_file("--metrics", a->metrics);
}

/* Refuse before pinning anything when the host cannot hold the plan. */
static void check_host_memory(const hz_plan *p)
{
    int64_t avail = hz_proc_bytes("/proc/meminfo", "MemAvailable:");
    if (avail > 0 && p->host_bytes > avail) {
        const double gib = 1024.0 * 1024.0 * 1024.0;
        fprintf(stderr,
                "train: error: the plan needs %.2f GiB of host memory (%.2f bytes per parameter) "
                "but %.2f GiB are available: free memory, or use a machine with more RAM; "
                "hzc plan SPEC --host-mem SIZE shows what fits\n",
                p->host_bytes / gib, (double)p->host_bytes / (double)p->params_n, avail / gib);
        exit(1);
    }
}

void hz_train_check(const hz_plan *p, const train_args *a)
{
    check_split(p, a);
    probe_outputs(a);
    check_host_memory(p);
}
