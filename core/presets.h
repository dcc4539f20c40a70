// Published model shapes with seeded random weights, so benchmarks and the default experiment run without
// downloads. Weights use canonical names (core/model_weights.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/model_config.h"
#include "core/tensor.h"

namespace bmh {

std::vector<std::string> preset_names();
ModelConfig preset_config(const std::string& name);   // error lists the known names
// Seeded weights of cfg's shapes (each tensor its own SplitMix stream from seed and its name). chunk_elements: the
// slice one thread generates at a time; the values do not depend on it.
TensorMap random_weights(const ModelConfig& cfg, uint64_t seed, DType dtype = DType::F32,
                         int64_t chunk_elements = int64_t(1) << 20);

}  // namespace bmh
