// How each family names its tensors: canonical name (core/model_weights.h) -> checkpoint key.
#pragma once
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/model_config.h"

namespace bmh {

struct WeightNaming {
  std::string family;
  std::string source;   // checkpoint directory/file for messages
  std::string prefix;   // "model." for Zyphra's {"model": state_dict}
  const ModelConfig* cfg = nullptr;

  std::string key(const std::string& canonical) const;
  // The checkpoint tensors a canonical tensor is made of, concatenated along dim 0 in this order, with the rows
  // each contributes: one entry for most; Mixtral/Jamba keep q/k/v and an expert's gate/up projections apart
  // (fused at load into attn.qkv and fc1). rows = 0 means "all of the canonical shape".
  struct Part {
    std::string key;
    int64_t rows = 0;
  };
  std::vector<Part> parts(const std::string& canonical) const;
  // conv1d weights are stored [Di, 1, K]; everything else must match exactly.
  bool shape_matches(const std::string& canonical, const Shape& stored, const Shape& expected) const;
  // Buffers and tied copies a family's checkpoints carry that no computation reads.
  bool droppable(const std::string& key) const;
};

WeightNaming weight_naming(const ModelConfig& cfg, const Checkpoint& ckpt);

}  // namespace bmh
