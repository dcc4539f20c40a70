// The reference backend's TrainableModel (core/trainable.h): owns the parameters in fp32 or fp64 and computes
// the loss and every parameter's exact gradient (reference/backward_ops.h) at the current parameters.
#pragma once
#include <memory>
#include <string>

#include "core/model_config.h"
#include "core/tensor.h"
#include "core/trainable.h"

namespace bmh::ref {

// canonical: every tensor of expected_weights(cfg), any float dtype (copied and converted); dtype fp32 | fp64.
std::unique_ptr<TrainableModel> make_reference_trainable(const ModelConfig& cfg, const TensorMap& canonical,
                                                         const std::string& dtype);

}  // namespace bmh::ref
