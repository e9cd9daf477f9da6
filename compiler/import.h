/* compiler/import.h - hzc import: a Hugging Face transformers config.json (LlamaForCausalLM,
 * Qwen2ForCausalLM, MistralForCausalLM, Qwen3ForCausalLM; transformers 4 and 5 layouts) to a model
 * description (docs/spec.md) with shape and training defaults chosen for the model's size. */
#ifndef HZC_IMPORT_H
#define HZC_IMPORT_H
#include <stddef.h>
#include <stdio.h>

/* Read HF_DIR/config.json (HF_DIR may also be the config file itself) and write the spec to
 * OUT_YAML via OUT_YAML.tmp and a rename, after checking the written text with spec_load.
 * The spec's name is OUT_YAML's base name less .yaml/.yml. Every problem is reported to
 * err as "CONFIG: error: message" naming the key at fault. Returns the number of errors
 * (0 = success; nothing is written otherwise). */
int import_hf_config(const char *hf_dir, const char *out_yaml, FILE *err);

/* The conversion alone: config.json TEXT (LEN bytes; SRC names it in messages and in the
 * YAML's header comment) to the YAML text (malloc'd) of a spec named NAME (letters, digits,
 * '.', '_', '-'; anything else becomes '_'). Returns NULL after reporting every problem to
 * err; *errors_n (may be NULL) gets their count. */
char *import_config_yaml(const char *text, size_t len, const char *src, const char *name,
                         FILE *err, int *errors_n);

#endif
