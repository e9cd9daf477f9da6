/* tests/fuzz/fuzz_import.c - fuzz target: hzc import's conversion of config.json text to a
 * model description. Every input must give errors or YAML, and the YAML must pass spec_load
 * (import applies the spec's rules itself; a spec_load error is a bug and aborts). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "import.h"
#include "spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    static char yaml_path[64];
    if (!devnull) {
        devnull = fopen("/dev/null", "w");
        snprintf(yaml_path, sizeof yaml_path, "/tmp/hz_fuzz_import.%d.yaml", (int)getpid());
    }
    int errors_n = 0;
    char *yaml = import_config_yaml((const char *)data, size, "fuzz/config.json", "fuzz", devnull,
                                    &errors_n);
    if (!yaml) {
        if (errors_n == 0) abort(); /* no YAML must mean a reported error */
        return 0;
    }
    FILE *f = fopen(yaml_path, "w");
    if (!f) abort();
    fputs(yaml, f);
    fclose(f);
    hzc_spec spec;
    int spec_errors = spec_load(yaml_path, &spec, stderr);
    if (spec_errors) {
        fprintf(stderr, "import wrote a spec that spec_load refuses:\n%s", yaml);
        abort();
    }
    unlink(yaml_path);
    free(yaml);
    return 0;
}
