// A model saved in its family's own on-disk layout, so every bmh command and the family's own PyTorch loader read
// it: Zyphra BlackMamba ({"model": state_dict} torch zip + config.json), state-spaces mamba (plain state dict
// torch zip), transformers Mamba / GPT-NeoX (model.safetensors + config.json), and the harness's own "bmh" layout
// (canonical-name safetensors + a config.json holding the ModelConfig) for models no family can express.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "core/model_config.h"
#include "core/tensor.h"

namespace bmh::train {

// The family config.json for cfg in `family` ("zyphra-blackmamba", "mamba-ssm", "hf-mamba", "hf-gpt-neox",
// "bmh"); fails when that family's config cannot express cfg (checked by parsing it back).
nlohmann::json family_config_json(const ModelConfig& cfg, const std::string& family);

// The family a config is saved as: its own when it was read from one; for presets, the first of Zyphra,
// state-spaces mamba, GPT-NeoX and bmh whose config.json reproduces it exactly.
std::string layout_family(const ModelConfig& cfg);

// Writes config.json and the weights (canonical names, core/model_weights.h) into the existing directory dir.
void write_model_dir(const std::string& dir, const ModelConfig& cfg, const TensorMap& canonical);

}  // namespace bmh::train
