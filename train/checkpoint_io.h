// Training checkpoints on disk (layout and atomicity: train/trainer.h).
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "core/model_config.h"
#include "core/tensor.h"

namespace bmh::train {

// <out>/checkpoint: written to <out>/checkpoint.tmp.<pid>/ and swapped in by two renames.
void save_checkpoint(const std::string& out_dir, const ModelConfig& cfg, const TensorMap& params,
                     const TensorMap& optimizer_state, const nlohmann::json& trainer_state);
// Removes temp directories of killed writers and recovers checkpoint.prev when the swap was cut short;
// returns whether <out>/checkpoint/trainer_state.json exists.
bool recover_checkpoint(const std::string& out_dir);
std::string checkpoint_dir(const std::string& out_dir);
nlohmann::json read_trainer_state(const std::string& out_dir);
TensorMap read_optimizer_state(const std::string& out_dir);

}  // namespace bmh::train
