/* runtime/cuda/dlib.c - opening a vendor library at run time (dlib.h). */
#include "dlib.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* W's library in directory DIR (after its sub-libraries), or NULL. */
static void *open_in(const hzcu_dlib_where *w, const char *dir, char *path, size_t path_n,
                     char *why, size_t why_n)
{
    char p[600];
    if (!dir || !*dir) return NULL;
    for (size_t i = 0; i < w->sublib_n; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, w->sublibs[i]);
        dlopen(p, RTLD_LAZY | RTLD_GLOBAL); /* a missing one is the library's to report */
    }
    snprintf(p, sizeof p, "%s/%s", dir, w->soname);
    void *so = dlopen(p, RTLD_LAZY | RTLD_GLOBAL);
    if (so) snprintf(path, path_n, "%s", p);
    else if (!*why) snprintf(why, why_n, "%s", dlerror());
    return so;
}

/* The lib/ directory of python3's wheel MODULE (a package with an __init__.py or a
 * namespace package without __file__); 0, or -1 when python3 has no such module. */
static int python_lib(const char *module, char *dir, size_t n)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import os, %s as m; "
             "print(os.path.dirname(m.__file__) if m.__file__ else list(m.__path__)[0])'"
             " 2>/dev/null",
             module);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    char line[512] = "";
    int ok = fgets(line, sizeof line, f) != NULL;
    pclose(f);
    line[strcspn(line, "\n")] = 0;
    if (!ok || !*line) return -1;
    snprintf(dir, n, "%s/lib", line);
    return 0;
}

void *hzcu_dlib_open(const hzcu_dlib_where *w, char *path, size_t path_n, char *why,
                     size_t why_n)
{
    why[0] = 0;
    void *so = open_in(w, w->env ? getenv(w->env) : NULL, path, path_n, why, why_n);
    if (!so && (so = dlopen(w->soname, RTLD_LAZY | RTLD_GLOBAL)) != NULL)
        snprintf(path, path_n, "%s (the loader's path)", w->soname);
    if (!so) so = open_in(w, w->built_dir, path, path_n, why, why_n);
    char dir[560];
    if (!so && w->py_module && python_lib(w->py_module, dir, sizeof dir) == 0)
        so = open_in(w, dir, path, path_n, why, why_n);
    return so;
}

int hzcu_dlib_once_run(hzcu_dlib_once *once, int (*load)(char *why, size_t why_n), char *why,
                       size_t why_n)
{
    if (!once->tried) {
        once->tried = 1;
        once->why[0] = 0;
        once->result = load(once->why, sizeof once->why);
        if (once->result == 0) once->why[0] = 0;
    }
    snprintf(why, why_n, "%s", once->why);
    return once->result;
}

int hzcu_dlib_take(const hzcu_dlib_where *w, const char *const *names, void *const *slots,
                   size_t n, void **so, char *path, size_t path_n, char *why, size_t why_n)
{
    char tail[256];
    *so = hzcu_dlib_open(w, path, path_n, tail, sizeof tail);
    if (!*so) {
        snprintf(why, why_n, "%s not found (set %s to its directory)%s%s", w->soname, w->env,
                 *tail ? ": " : "", tail);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        void *sym = dlsym(*so, names[i]);
        if (!sym) {
            snprintf(why, why_n, "%s has no %s", path, names[i]);
            return -1;
        }
        memcpy(slots[i], &sym, sizeof sym); /* object to function pointer: POSIX allows it */
    }
    return 0;
}
