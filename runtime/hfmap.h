/* runtime/hfmap.h - the plan's tensors as Hugging Face transformers names them: loading a
 * checkpoint directory (model.safetensors or shards; for Gemma 3 also the text part of a
 * Gemma3ForConditionalGeneration checkpoint) into the host store's split fp32 master,
 * saving the working bf16 weights as a checkpoint transformers loads directly, and the
 * matching config.json. The table of names is docs/plan.md's. */
#ifndef HZ_HFMAP_H
#define HZ_HFMAP_H
#include <stdint.h>

#include "rt.h"

#define HZ_HF_ERR_BYTES 2048   /* size of the err buffer hz_hf_load and hz_hf_save write */
#define HZ_HF_MAX_PARTS 3      /* wqkv and bqkv stack three HF tensors */
#define HZ_HF_NAME_BYTES 80

/* One Hugging Face tensor inside a plan tensor: rows [row0, row0 + rows) of it.
 * ndim is 1 for norms and biases (shape [rows]), else 2 (shape [rows, cols]). */
typedef struct hz_hf_part {
    char name[HZ_HF_NAME_BYTES];
    int64_t row0, rows, cols;
    int ndim;
} hz_hf_part;

/* The HF tensors that make up plan tensor T, in row order; returns how many (0 for the tied
 * lm_head, which is the embedding's store and has no tensor of its own). */
int hz_hf_parts(const hz_plan *p, const hz_tensor *t, hz_hf_part parts[HZ_HF_MAX_PARTS]);

/* Load the checkpoint at DIR (a directory with model.safetensors or
 * model.safetensors.index.json and its shards, or one .safetensors file) into S: every
 * tensor of the plan must be there with its shape (BF16, F16 or F32; converted exactly to
 * the fp32 master, split into w and lo); a checkpoint tensor the plan lacks is an error too,
 * except rotary_emb.inv_freq buffers, for a tied plan lm_head.weight (transformers
 * ties it to the embedding on load), and for Gemma 3 a multimodal checkpoint's vision tower
 * and projector. The error lists up to 10 missing, unexpected and
 * mis-shaped tensors each, then how many more. THREADS workers convert (<= 0: one per
 * core). Adam moments and gradients are left alone. Returns 0, or -1 with a message in
 * err (HZ_HF_ERR_BYTES); the store is unchanged when the checkpoint does not match. */
int hz_hf_load(hz_store *s, const hz_plan *p, const char *dir, int threads, char *err);

/* hz_hf_load with its phase times: opening and matching the files, then reading and
 * converting BYTES bytes of FILES files on THREADS threads. */
typedef struct hz_hf_load_times {
    double open_s, read_s;
    int64_t bytes;
    int files, threads;
} hz_hf_load_times;
int hz_hf_load_timed(hz_store *s, const hz_plan *p, const char *dir, int threads,
                     hz_hf_load_times *times, char *err);

/* Save the working weights (bf16 w) of S into DIR (created if needed) as transformers'
 * save_pretrained lays them out: model.safetensors, or shards of at most max_shard_bytes
 * (<= 0: 5 GB) with model.safetensors.index.json; no lm_head.weight for a tied plan. Then
 * config.json holding CONFIG_JSON_TEXT (NULL: none written). Every file is written via a
 * temporary name, fsync'd and renamed. Returns 0, or -1 with a message in err. */
int hz_hf_save(const hz_store *s, const hz_plan *p, const char *dir, const char *config_json_text,
               int64_t max_shard_bytes, char *err);

/* A transformers config.json (malloc'd text, caller frees) for the plan's model as FAMILY
 * ("llama", "qwen2", "mistral", "qwen3" or "gemma3"), or NULL for another family
 * (hfconfig.c). A gemma3 model is written as Gemma3ForCausalLM with its layer_types. A model with
 * per-head q/k norms is written as Qwen3ForCausalLM (NULL when it also has q/k/v biases: no
 * transformers class computes that); else one with q/k/v biases as Qwen2ForCausalLM whatever
 * its family (transformers' Llama attention_bias would give o_proj a bias too; Mistral has
 * none), and a qwen2 or qwen3 without either as LlamaForCausalLM: the same computation.
 * max_position_embeddings is the sequence length, or original_max_position * factor with
 * llama3 rope scaling when larger; sliding_window is null (hzc attends to the whole
 * sequence). */
char *hz_hf_config_json(const hz_plan *p, const char *family);

#endif
