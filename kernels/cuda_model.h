// The CUDA backend as a bmh::LanguageModel: canonical weights (core/model_weights.h) uploaded once in the chosen
// dtype, residual stream in fp32, cuBLAS GEMMs with fp32 accumulation, batch-1 decode through a captured CUDA graph.
// Declared for every build; defined only where CUDA builds (BMH_HAVE_CUDA), so callers guard with that macro.
#pragma once
#include <memory>
#include <string>

#include "core/language_model.h"
#include "core/model_config.h"
#include "core/tensor.h"

namespace bmh {

// dtype: "fp32" | "bf16" | "fp16". Errors (bmh::Error) name an unknown dtype, a missing weight, no CUDA device, or
// an out-of-memory upload with the bytes asked and free.
std::unique_ptr<LanguageModel> make_cuda_model(const ModelConfig& cfg, const TensorMap& canonical_weights,
                                               const std::string& dtype);

}  // namespace bmh
