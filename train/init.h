// Random initialisation by each family's own rules, so a model trained here starts where the official training
// code starts it:
//  * Mamba mixers (state-spaces mamba_ssm/modules/mamba_simple.py Mamba.__init__, identical in Zyphra
//    BlackMamba mamba_layer.py MambaLayer.__init__): dt_proj.weight U(+-dt_rank^-0.5 * dt_scale); dt_proj.bias
//    the inverse softplus of dt = exp(U(log dt_min, log dt_max)) clamped at dt_init_floor; A_log = log(1..N) per
//    channel (S4D real); D = 1; conv1d as torch.nn.Conv1d's default (weight and bias U(+-1/sqrt(K)), fan-in K
//    for a depthwise kernel); in_proj/x_proj as nn.Linear's default U(+-1/sqrt(fan_in)), linear biases 0.
//    Then the GPT-2 residual rescaling of _init_weights (mamba_ssm models/mixer_seq_simple.py, Zyphra
//    mamba_model.py): out_proj.weight re-drawn U(+-1/sqrt(fan_in)) and divided by sqrt(n_residuals * n_layer)
//    (n_residuals = 1 without MLPs). In Zyphra's code the experts' "linear_fc2.weight" does not match the
//    "fc2.weight" it looks for, so only out_proj is rescaled there.
//  * Zyphra's other modules (switch_mlp.py router, mlp.py experts, mamba_model.py embedding): nn.Linear's default
//    U(+-1/sqrt(fan_in)) with the bias zeroed by _init_weights, embedding N(0, initializer_range = 0.02), norms
//    weight 1 (ops/triton/layernorm.py RMSNorm; final nn.LayerNorm weight 1, bias 0).
//  * GPT-NeoX (transformers models/gpt_neox/modeling_gpt_neox.py GPTNeoXPreTrainedModel._init_weights) and the
//    harness's "bmh" transformers built from it: every Linear weight and the embedding N(0, initializer_range),
//    biases 0, LayerNorm/RMSNorm weight 1 and bias 0 (Mamba mixers in a bmh config follow the Mamba rules above).
// transformers' Mamba (models/mamba/modeling_mamba.py MambaPreTrainedModel._init_weights) ports the same Mamba rules
// (dt, A_log, D, out_proj rescaled by sqrt(num_hidden_layers)), so hf-mamba uses them too.
//  * Mixtral (transformers modeling_mixtral.py, PreTrainedModel._init_weights): every Linear weight and the
//    embedding N(0, initializer_range), RMSNorm weight 1: the GPT-NeoX rule.
//  * Jamba (modeling_jamba.py JambaPreTrainedModel._init_weights): every nn.Linear and nn.Conv1d weight inside the
//    Mamba mixers too N(0, initializer_range) with zero biases (so dt_proj.bias = 0, not the inverse-softplus
//    draw), embedding N(0, initializer_range), RMSNorms (dt/B/C included) 1, A_log = log(1..N), D = 1.
// Each tensor draws from its own generator seeded by (seed, name), so the values do not depend on the order or
// the thread that draws them.
#pragma once
#include <cstdint>
#include <string>

#include "core/model_config.h"
#include "core/tensor.h"

namespace bmh::train {

struct InitOptions {
  double initializer_range = 0.02;     // embedding (all families), every Linear (GPT-NeoX)
  double dt_min = 0.001, dt_max = 0.1, dt_init_floor = 1e-4, dt_scale = 1.0;  // mamba_simple.py defaults
};

// Canonical weights (core/model_weights.h) of cfg, F32 or F64, initialised by the rules of `family` (as
// train/family_layout.h layout_family picks it).
TensorMap init_weights(const ModelConfig& cfg, const std::string& family, uint64_t seed, DType dtype,
                       const InitOptions& opt = {});

}  // namespace bmh::train
