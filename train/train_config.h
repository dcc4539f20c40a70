// What one training run is: the model (preset, family config.json, or checkpoint to continue from), data,
// batch, optimizer, schedule, budget, routing and logging. Read from a JSON object (bmh train --config-json,
// the runner's "train" section merged with a model entry) with every key checked, or filled from flags.
//
//   {"preset": "tiny-blackmamba-50k", "vocab_size": 256, "seed": 1, "dtype": "fp32",
//    "data": {"text": ["data/text/tinyshakespeare.input.txt"], "tokenizer": "bytes", "val_fraction": 0.1},
//    "seq_len": 64, "batch": 8, "accum": 1, "steps": 300,            // or "flops": 2e12 (training FLOPs budget)
//    "lr": 3e-3, "min_lr": 3e-4, "warmup": 20, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8,
//    "grad_clip": 1.0, "routing": "sinkhorn", "sinkhorn_init": "zyphra", "aux_loss_coef": 0.02,
//    "log_every": 10, "eval_every": 50, "eval_batches": 4, "checkpoint_every": 100}
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "core/model_config.h"
#include "core/tensor.h"
#include "train/data.h"
#include "train/optimizer.h"

namespace bmh::train {

struct TrainConfig {
  std::string preset;           // a preset's shape ...
  std::string config;           // ... or a family config.json (file or directory) ...
  std::string init_from;        // ... or a checkpoint directory whose weights are the start
  int vocab_size = 0;           // preset/config: replaces the vocabulary (e.g. 256 for bytes)
  uint64_t seed = 0;            // initialisation and batch order
  std::string backend = "cpu", dtype = "fp32";
  DataSpec data;
  int seq_len = 64, batch = 8, accum = 1;
  int64_t steps = 0;            // optimizer steps ...
  double flops = 0;             // ... or a training-FLOPs budget (steps = ceil(flops / FLOPs per step))
  AdamWConfig opt;
  std::string routing = "sinkhorn", sinkhorn_init = "zyphra";
  // Switch load-balancing loss weight (core/trainable.h RoutingHook::aux_loss_coef); < 0 (unset): 0.02 when the
  // model has a softmax top-k MoE block (Mixtral/Jamba; Mixtral-8x7B's config.json router_aux_loss_coef, which
  // MixtralForCausalLM adds as loss += coef * aux_loss), else 0 (BlackMamba's Sinkhorn/top-1 training has none).
  double aux_loss_coef = -1;
  int log_every = 10, eval_every = 50, eval_batches = 4;
  int64_t checkpoint_every = 0; // 0: only at the end
  nlohmann::json json;          // as given, for results.json and the resume fingerprint
};

// Parses and checks a JSON object (`where` names it in errors); relative data paths resolve against `base`.
TrainConfig train_config_from_json(const nlohmann::json& j, const std::string& where, const std::string& base = "");

// The load-balancing coefficient a run uses: c.aux_loss_coef, or its default for cfg when unset.
double aux_loss_coef_for(const TrainConfig& c, const ModelConfig& cfg);

// The model a config describes: its ModelConfig (family set to the layout it is saved in) and starting weights
// (family initialisation, or the checkpoint's), in the training dtype.
struct ModelStart {
  ModelConfig cfg;
  std::string family;
  TensorMap weights;
};
ModelConfig resolve_model_config(const TrainConfig& c);
ModelStart resolve_model(const TrainConfig& c);

}  // namespace bmh::train
