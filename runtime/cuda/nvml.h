/* runtime/cuda/nvml.h - the GPU's SM clock and power while the kernel profile times (NVML,
 * loaded with dlopen from the driver's libnvidia-ml.so.1): a card at its power limit runs
 * below its boost clock, so a rate is read beside the clock it ran at. */
#ifndef HZ_CUDA_NVML_H
#define HZ_CUDA_NVML_H

typedef struct hzcu_clocks hzcu_clocks;

/* A sampler for the GPU with PCI bus id BUS_ID (cudaDeviceGetPCIBusId's), or NULL with WHY
 * saying why (no driver library, no such device). */
hzcu_clocks *hzcu_clocks_open(const char *bus_id, char *why, size_t why_n);
/* Sample the SM clock and power every few milliseconds from now, on a thread of its own. */
void hzcu_clocks_start(hzcu_clocks *c);
/* Stop sampling: the mean SM clock (MHz) and power (W) since the start; 0 and 0 without a
 * sample. */
void hzcu_clocks_stop(hzcu_clocks *c, double *mhz, double *watts);
/* The enforced power limit in W (0 unknown). */
double hzcu_clocks_power_limit(const hzcu_clocks *c);
void hzcu_clocks_close(hzcu_clocks *c);

#endif
