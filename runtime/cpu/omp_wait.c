/* runtime/cpu/omp_wait.c - how the cpu ops' OpenMP threads wait between parallel regions.
 * libgomp's default lets a thread that has finished its share spin 300,000 rounds before
 * it sleeps. With the machine's cores busy with other work, those spins take the cores
 * that the team's last threads (and the host optimizer's pool) need: the tiny demo's step
 * went from 0.3 s to several seconds under load. Short spins keep the idle machine's speed
 * and sleep soon enough under load (bench/NOTES.md, "OpenMP wait policy").
 *
 * libgomp reads its wait settings once, in its own constructor, which runs after libc's and
 * before the program's; it has no call to change them afterwards, and environ is not yet
 * set in a .preinit_array function. So a program with these objects, started with neither
 * OMP_WAIT_POLICY nor GOMP_SPINCOUNT set, sets GOMP_SPINCOUNT and executes itself again
 * before main (once: the new image finds the variable set). Either variable set by the user
 * wins; where the program cannot execute itself again it runs on with libgomp's defaults
 * (and says so in the trainer's report). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "ops.h"

#define OMP_SPINCOUNT "1000"   /* rounds a waiting thread spins before it sleeps */

/* Whether executing /proc/self/exe starts this program again: not when the dynamic loader
 * was run as the command (ld.so PROGRAM: no interpreter was loaded, AT_BASE is 0, and
 * /proc/self/exe is the loader), nor under valgrind (its preload library in LD_PRELOAD;
 * /proc/self/exe is its tool, and the new image would run outside it). */
static int can_restart(void)
{
    const char *preload = getenv("LD_PRELOAD");
    return getauxval(AT_BASE) != 0 && !(preload && strstr(preload, "vgpreload"));
}

/* An .init_array entry: glibc passes it main's arguments. Only the main thread exists, and
 * no OpenMP region has run yet. */
static void omp_wait_restart(int argc, char **argv, char **envp)
{
    (void)argc;
    (void)envp;
    if (getenv("GOMP_SPINCOUNT") || getenv("OMP_WAIT_POLICY") || !argv || !argv[0] ||
        !can_restart())
        return;
    if (setenv("GOMP_SPINCOUNT", OMP_SPINCOUNT, 1) != 0) return;
    execv("/proc/self/exe", argv);
    unsetenv("GOMP_SPINCOUNT");   /* not executed again: libgomp's defaults stay */
}

__attribute__((section(".init_array"), used)) static void (*const omp_wait_entry)(int, char **,
                                                                                  char **) =
    omp_wait_restart;

void cpu_omp_wait(char *buf, size_t cap)
{
    const char *spin = getenv("GOMP_SPINCOUNT"), *policy = getenv("OMP_WAIT_POLICY");
    if (spin)
        snprintf(buf, cap, "GOMP_SPINCOUNT=%s", spin);
    else if (policy)
        snprintf(buf, cap, "OMP_WAIT_POLICY=%s", policy);
    else
        snprintf(buf, cap, "libgomp's default (300,000 spins before sleeping)");
}
