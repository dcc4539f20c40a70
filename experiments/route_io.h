// Tensor files of the forward/generate commands. Routes as tensors, with the fixtures' names: route.{i}.expert int64 [B,T], route.{i}.prob float32 [B,T],
// route.{i}.router_logits float32 [B,T,E], i = the block's index in the family's layer list. Top-k blocks (k > 1):
// route.{i}.expert int64 [B,T,k] and route.{i}.weight float32 [B,T,k], slots in descending weight.
#pragma once
#include <utility>
#include <vector>

#include "core/checkpoint.h"
#include "core/language_model.h"
#include "core/tensor.h"

namespace bmh {

// Reads input_ids from a safetensors file (before the model loads, so a bad file fails fast).
Tensor read_input_ids(const std::string& path);
// The checks of read_input_ids on a file already read (path names it in errors).
Tensor input_ids_of(const Checkpoint& in, const std::string& path);

void add_routes(TensorMap& out, const std::vector<RouteRecord>& routes, int64_t B, int64_t T);
// Reads route.{i}.expert for every MoE block of cfg from a safetensors file (e.g. a fixture's expected.safetensors):
// [B, T] for top-1 blocks, [B, T, k] for top-k; every id checked against the block's experts.
std::vector<std::pair<int, std::vector<int64_t>>> read_forced_routes(const std::string& path, const ModelConfig& cfg);
std::vector<std::pair<int, std::vector<int64_t>>> forced_routes_of(const Checkpoint& ck, const std::string& path,
                                                                   const ModelConfig& cfg);

}  // namespace bmh
