/* runtime/cuda/nvml.c - the SM clock and power sampler (nvml.h). NVML comes with the driver,
 * not the toolkit, so the few functions used are declared here as the driver exports them. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "dlib.h"
#include "nvml.h"

#define SAMPLE_NS 5000000L /* every 5 ms */
#define NVML_CLOCK_SM 1

typedef struct nvml_device *nvml_device;
typedef struct nvml_funcs {
    int (*nvmlInit_v2)(void);
    int (*nvmlDeviceGetHandleByPciBusId_v2)(const char *, nvml_device *);
    int (*nvmlDeviceGetClockInfo)(nvml_device, int, unsigned *);
    int (*nvmlDeviceGetPowerUsage)(nvml_device, unsigned *);
    int (*nvmlDeviceGetEnforcedPowerLimit)(nvml_device, unsigned *);
} nvml_funcs;

struct hzcu_clocks {
    nvml_funcs f;
    nvml_device dev;
    unsigned limit_mw;
    pthread_t thread;
    pthread_mutex_t mu;
    int running, stop;
    double mhz_sum, w_sum;
    long n;
};

hzcu_clocks *hzcu_clocks_open(const char *bus_id, char *why, size_t why_n)
{
    const hzcu_dlib_where where = {"libnvidia-ml.so.1", "HZ_NVML_LIB", NULL, NULL, NULL, 0};
    static const char *const names[] = {"nvmlInit_v2", "nvmlDeviceGetHandleByPciBusId_v2",
                                        "nvmlDeviceGetClockInfo", "nvmlDeviceGetPowerUsage",
                                        "nvmlDeviceGetEnforcedPowerLimit"};
    hzcu_clocks *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(why, why_n, "out of host memory");
        return NULL;
    }
    void *const slots[] = {&c->f.nvmlInit_v2, &c->f.nvmlDeviceGetHandleByPciBusId_v2,
                           &c->f.nvmlDeviceGetClockInfo, &c->f.nvmlDeviceGetPowerUsage,
                           &c->f.nvmlDeviceGetEnforcedPowerLimit};
    void *so = NULL;
    char path[512];
    int r = -1;
    if (hzcu_dlib_take(&where, names, slots, sizeof names / sizeof *names, &so, path,
                       sizeof path, why, why_n) != 0)
        goto fail;
    if ((r = c->f.nvmlInit_v2()) != 0) {
        snprintf(why, why_n, "%s: nvmlInit failed (%d)", path, r);
        goto fail;
    }
    if ((r = c->f.nvmlDeviceGetHandleByPciBusId_v2(bus_id, &c->dev)) != 0) {
        snprintf(why, why_n, "%s: no device at PCI %s (%d)", path, bus_id, r);
        goto fail;
    }
    if (c->f.nvmlDeviceGetEnforcedPowerLimit(c->dev, &c->limit_mw) != 0) c->limit_mw = 0;
    pthread_mutex_init(&c->mu, NULL);
    return c;
fail:
    free(c);
    return NULL;
}

static void *sample(void *arg)
{
    hzcu_clocks *c = arg;
    struct timespec ts = {0, SAMPLE_NS};
    for (;;) {
        unsigned mhz = 0, mw = 0;
        int ok = c->f.nvmlDeviceGetClockInfo(c->dev, NVML_CLOCK_SM, &mhz) == 0 &&
                 c->f.nvmlDeviceGetPowerUsage(c->dev, &mw) == 0;
        pthread_mutex_lock(&c->mu);
        int stop = c->stop;
        if (ok && !stop) c->mhz_sum += mhz, c->w_sum += mw * 1e-3, c->n++;
        pthread_mutex_unlock(&c->mu);
        if (stop) return NULL;
        nanosleep(&ts, NULL);
    }
}

void hzcu_clocks_start(hzcu_clocks *c)
{
    if (!c || c->running) return;
    c->mhz_sum = c->w_sum = 0.0;
    c->n = 0;
    c->stop = 0;
    c->running = pthread_create(&c->thread, NULL, sample, c) == 0;
}

void hzcu_clocks_stop(hzcu_clocks *c, double *mhz, double *watts)
{
    *mhz = *watts = 0.0;
    if (!c || !c->running) return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    c->running = 0;
    if (c->n > 0) *mhz = c->mhz_sum / (double)c->n, *watts = c->w_sum / (double)c->n;
}

double hzcu_clocks_power_limit(const hzcu_clocks *c) { return c ? c->limit_mw * 1e-3 : 0.0; }

void hzcu_clocks_close(hzcu_clocks *c)
{
    if (!c) return;
    if (c->running) {
        double a, b;
        hzcu_clocks_stop(c, &a, &b);
    }
    pthread_mutex_destroy(&c->mu);
    free(c); /* NVML stays initialised: the driver's library is shared by the process */
}
