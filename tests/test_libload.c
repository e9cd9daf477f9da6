/* tests/test_libload.c - the vendor libraries the cuda trainer opens at run time
 * (runtime/cuda/dlib.h): NCCL 2 and cuDNN 9 load where configure found their headers (this
 * machine's toolkit or python's wheels; no GPU needed to load them), report where they came
 * from and their version, and a second load gives the first answer; the directory named by
 * the environment variable is tried first; a library that is nowhere says what it looked
 * for. Built only with the CUDA toolkit; a library configure did not find, or this machine
 * cannot load (both are optional at run time), is skipped, visibly. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda/cudnn_api.h"
#include "cuda/dlib.h"
#include "cuda/nccl_api.h"
#include "test.h"

/* A library that exists nowhere: NULL, and the reason names what was looked for. */
static void check_missing(void)
{
    const hzcu_dlib_where w = {"libhz_nowhere.so.7", "HZ_TEST_NOWHERE", "/nonexistent/lib",
                               "hz_no_such_module", NULL, 0};
    setenv("HZ_TEST_NOWHERE", "/nonexistent/env", 1);
    char path[600] = "", why[256] = "";
    void *so = hzcu_dlib_open(&w, path, sizeof path, why, sizeof why);
    CHECK(so == NULL && strstr(why, "/nonexistent/env/libhz_nowhere.so.7") && !*path,
          "a library that is nowhere: not opened, the first place tried named (%s)", why);
}

#ifdef HZ_HAVE_NCCL
static void check_nccl(void)
{
    char why[1024] = "";
    int rc = hznccl_load(why, sizeof why);
    if (rc != 0 && strstr(why, "not found")) { /* optional at run time: a machine may lack it */
        printf("skip    NCCL: %s\n", why);
        return;
    }
    CHECK(rc == 0 && hznccl.version / 10000 == 2 && hznccl.ncclAllReduce && hznccl.ncclReduce &&
              hznccl.ncclCommInitAll && *hznccl.path,
          "NCCL loads: version %d from %s (%s)", hznccl.version, hznccl.path, why);
    char again[1024] = "x";
    CHECK(hznccl_load(again, sizeof again) == rc && !strcmp(again, why),
          "a second load gives the first answer");
    CHECK(!strcmp(hznccl.ncclGetErrorString(ncclInvalidArgument),
                  hznccl.ncclGetErrorString(ncclInvalidArgument)) &&
              strlen(hznccl.ncclGetErrorString(ncclInvalidArgument)) > 0,
          "its functions are callable without a GPU: \"%s\"",
          hznccl.ncclGetErrorString(ncclInvalidArgument));
}

/* The environment's directory first: a directory holding only a link to the library. */
static void check_env_first(void)
{
    if (!hznccl.so) return; /* not loaded here: said above */
    Dl_info info;
    void *fn;
    memcpy(&fn, &hznccl.ncclGetVersion, sizeof fn);
    if (!dladdr(fn, &info) || !info.dli_fname) {
        CHECK(0, "the loaded NCCL's file is known (dladdr)");
        return;
    }
    char real[600], dir[] = "/tmp/hz_libload.XXXXXX", link[700];
    snprintf(real, sizeof real, "%s", info.dli_fname);
    if (!mkdtemp(dir)) return;
    snprintf(link, sizeof link, "%s/libnccl.so.2", dir);
    CHECK(symlink(real, link) == 0, "a link to %s in %s", real, dir);
    const hzcu_dlib_where w = {"libnccl.so.2", "HZ_TEST_NCCL_DIR", NULL, NULL, NULL, 0};
    setenv("HZ_TEST_NCCL_DIR", dir, 1);
    char path[600] = "", why[256] = "";
    void *so = hzcu_dlib_open(&w, path, sizeof path, why, sizeof why);
    CHECK(so != NULL && !strcmp(path, link), "the environment's directory is tried first: %s",
          path);
    unlink(link);
    rmdir(dir);
}
#endif

#ifdef HZ_HAVE_CUDNN
static void check_cudnn(void)
{
    char why[1024] = "";
    int rc = hzdnn_load(why, sizeof why);
    if (rc != 0 && strstr(why, "not found")) {
        printf("skip    cuDNN: %s\n", why);
        return;
    }
    CHECK(rc == 0 && hzdnn.version / 10000 == 9 && hzdnn.cudnnBackendExecute && *hzdnn.path,
          "cuDNN loads: version %zu from %s (%s)", hzdnn.version, hzdnn.path, why);
}
#endif

int main(void)
{
    check_missing();
#ifdef HZ_HAVE_NCCL
    check_nccl();
    check_env_first();
#else
    printf("skip    NCCL: configure found no nccl.h\n");
#endif
#ifdef HZ_HAVE_CUDNN
    check_cudnn();
#else
    printf("skip    cuDNN: configure found no cuDNN headers\n");
#endif
    TEST_END();
}
