// Canonical weights (core/model_weights.h) uploaded once to the device: matrices in the compute dtype, small vectors
// (norms, biases, conv taps, A = -exp(A_log), D) in fp32; MoE experts concatenated per block so a decode GEMV can
// index an expert by id on the device.
#pragma once
#include <vector>

#include "core/model_config.h"
#include "core/tensor.h"
#include "kernels/device.h"

namespace bmh::cuda {

struct DevLinear {
  DeviceBuffer w;     // [out, in] compute dtype (for experts: [E, out, in])
  DeviceBuffer b;     // [out] fp32 (experts: [E, out]); empty when the layer has no bias
  int out = 0, in = 0;
  const float* bias() const { return b.bytes() ? b.as<float>() : nullptr; }
};

struct DevBlock {
  DeviceBuffer norm_w, norm_b, mlp_norm_w, mlp_norm_b;  // fp32 [d]; biases empty unless norm_bias
  // Mamba
  DevLinear in_proj, x_proj, dt_proj, out_proj;         // dt_proj.b is the scan's delta_bias
  DeviceBuffer conv_w, conv_b, A, D;                    // fp32 [Di, K], [Di], [Di, N], [Di]
  DeviceBuffer dt_norm, b_norm, c_norm;                 // fp32 [R], [N], [N] (Jamba inner RMSNorms) or empty
  // Attention (qkv rows: GPT-NeoX per-head [q|k|v], or grouped [q heads | k heads | v heads])
  DevLinear qkv, dense;
  // Dense MLP or MoE experts (fc1 [E, F or 2F, d], fc2 [E, d, F] with E = 1 for a dense MLP)
  DevLinear fc1, fc2, router;
};

struct DevWeights {
  Dt dt = Dt::F32;
  DeviceBuffer embed, lm_head;   // [V, d]; lm_head empty when tied
  DeviceBuffer lm_head_b;        // [V] fp32 or empty
  DeviceBuffer final_norm_w, final_norm_b;
  std::vector<DevBlock> blocks;
  size_t bytes = 0;              // device bytes of all weights
  const void* head() const { return lm_head.bytes() ? lm_head.get() : embed.get(); }
};

// Errors name the missing canonical tensor or a shape that disagrees with the config.
DevWeights upload_weights(const ModelConfig& cfg, const TensorMap& canonical, Dt dt);

}  // namespace bmh::cuda
