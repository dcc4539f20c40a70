// Builds a LanguageModel from a checkpoint directory or a preset, on the chosen backend and dtype, and prints
// (on request) exactly what it loaded, llama.cpp style.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/language_model.h"
#include "core/model_config.h"
#include "core/trainable.h"

namespace bmh {

struct ModelSpec {
  std::string dir;              // checkpoint directory (config.json + weights) ...
  std::string preset;           // ... or a preset name (seeded random weights)
  uint64_t seed = 0;            // preset weight seed
  std::string backend = "cpu";  // cpu | cuda
  std::string dtype = "fp32";   // cpu: fp32 | fp64; cuda: fp32 | bf16 | fp16
  ConfigOptions config;         // --expert-act etc.
  std::string router_precision = "fp32";  // fp32 | model | bf16 | fp16 (core/router.h)
  bool verbose = false;         // print every tensor
};

std::unique_ptr<LanguageModel> load_model(const ModelSpec& spec);
// "name (family, cpu fp32)" one-liner for progress output.
std::string model_label(const ModelSpec& spec);

// A trainable copy of canonical weights (core/model_weights.h canonicalize_weights, or presets'
// random_weights): backend "cpu" (the Eigen reference), dtype "fp32" | "fp64". Errors name what is missing.
std::unique_ptr<TrainableModel> make_trainable(const ModelConfig& cfg, const TensorMap& canonical_weights,
                                               const std::string& backend, const std::string& dtype);
// The config and canonical weights a spec names (checkpoint directory, or preset with seeded F32 weights and
// --expert-act applied), as load_model reads them; for make_trainable.
void load_config_and_weights(const ModelSpec& spec, ModelConfig* cfg, TensorMap* weights);

}  // namespace bmh
