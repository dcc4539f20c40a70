// Canonical weight names shared by the reference and the CUDA backend. Each family's checkpoint keys are
// mapped onto these once at load time, with every shape checked against the config.
//   embed.weight [V, d]                         final_norm.weight [d] (+ .bias)
//   lm_head.weight [V, d] (absent when tied)    lm_head.bias [V] (Zyphra add_bias_linear)
//   blocks.{i}.norm.weight/.bias                norm before the mixer
//   blocks.{i}.mlp_norm.weight/.bias            norm before the MLP / MoE
//   blocks.{i}.mamba.{in_proj.weight [2Di, d], in_proj.bias, conv1d.weight [Di, K], conv1d.bias [Di],
//                     x_proj.weight [R+2N, Di], dt_proj.weight [Di, R], dt_proj.bias [Di], A_log [Di, N],
//                     D [Di], out_proj.weight [d, Di], out_proj.bias}
//   blocks.{i}.mamba.{dt_norm,b_norm,c_norm}.weight [R], [N], [N]   (Jamba inner RMSNorms)
//   blocks.{i}.attn.{qkv.weight [3d, d] (GPT-NeoX per-head q|k|v), qkv.bias, dense.weight [d, d], dense.bias}
//     grouped (Mixtral/Jamba): qkv.weight [(H + 2 Hkv) hd, d] = [q_proj; k_proj; v_proj], dense [d, H hd] = o_proj
//   Mixtral/Jamba SwiGLU MLPs and experts: fc1.weight [2F, d] = [w1; w3] (gate_proj; up_proj), fc2 = w2 (down_proj)
//   blocks.{i}.mlp.{fc1.weight [F or 2F, d], fc1.bias, fc2.weight [d, F], fc2.bias}
//   blocks.{i}.moe.router.weight [E, d], .router.bias [E], blocks.{i}.moe.experts.{e}.fc1.weight ... as mlp
#pragma once
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/model_config.h"

namespace bmh {

struct WeightSpec {
  std::string name;
  Shape shape;
};

// Every canonical tensor the config needs, in a stable order.
std::vector<WeightSpec> expected_weights(const ModelConfig& cfg);

// Renames a family's checkpoint to canonical names and checks that every expected tensor is present with the
// expected shape and a float dtype; errors name the checkpoint file, its key and both shapes. Keys the family
// is known to carry but we do not use (e.g. rotary inv_freq buffers) are dropped.
TensorMap canonicalize_weights(const ModelConfig& cfg, const Checkpoint& ckpt);

// Parameter counts: total, and active per token (one expert per MoE layer for top-1; embedding counted once
// when tied).
struct ParamCount {
  int64_t total = 0;
  int64_t active = 0;
  int64_t embedding = 0;
};
ParamCount count_parameters(const ModelConfig& cfg);

}  // namespace bmh
