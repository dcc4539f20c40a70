// Zyphra BlackMamba config.json, read as Zyphra's MambaModel.from_pretrained reads it (mamba_model.py): only
// the eleven keys below; every other field takes its mamba_config.py default (rms_norm=True, conv_bias=True,
// layernorm_epsilon=1e-5, dt_rank="auto", activation_func=F.gelu, routing_mode="sinkhorn" i.e. sigmoid).
#include <cmath>

#include "core/config_parsers.h"

namespace bmh {

MambaSpec mamba_spec(int d_model, int d_state, int d_conv, int expand, int dt_rank, bool proj_bias, bool conv_bias) {
  MambaSpec m;
  m.d_inner = expand * d_model;  // callers bound both (kMaxConfigExpand * kMaxConfigWidth fits an int)
  m.d_state = d_state;
  m.d_conv = d_conv;
  m.dt_rank = dt_rank > 0 ? dt_rank : int(std::ceil(d_model / 16.0));  // "auto" (mamba_layer.py)
  m.in_proj_bias = proj_bias;
  m.out_proj_bias = proj_bias;
  m.conv_bias = conv_bias;
  return m;
}

BlockConfig zyphra_block(const std::string& e, int index, const MambaSpec& mamba, const MlpSpec& ffn,
                         const std::string& where) {
  // create_block reads e[0] == 'r' (Mamba, plus a parallel MLP/MoE when longer), e[0] == '1' (dense MLP),
  // otherwise a SwitchMLP with int(e[-1]) experts. It would silently turn "16" into a dense layer and "12"
  // into 2 experts, so anything but the one-digit forms is refused.
  auto bad = [&]() {
    fail(where, ": mamba_moe_layers[", index, "] = \"", e,
         "\" is not a BlackMamba layer (expected \"r\", \"1\", \"2\"..\"9\", or \"r1\"..\"r9\")");
  };
  BlockConfig b;
  b.mamba = mamba;
  b.ffn = ffn;
  std::string rest = e;
  if (!e.empty() && e[0] == 'r') {
    b.mixer = MixerKind::Mamba;
    rest = e.substr(1);
    if (rest.empty()) return b;
    b.parallel = true;  // MambaBlockParallelMoe: mixer(norm(x)) + moe(norm_moe(x))
  }
  if (rest.size() != 1 || rest[0] < '1' || rest[0] > '9') bad();
  int n = rest[0] - '0';
  if (n == 1) {
    b.mlp = MlpKind::Dense;
  } else {
    b.mlp = MlpKind::Moe;
    b.ffn.n_experts = n;
    b.ffn.top_k = 1;
    b.ffn.router = RouterKind::SigmoidTop1;
    b.ffn.router_bias = true;
  }
  return b;
}

ModelConfig parse_zyphra_config(const ConfigJson& c) {
  // Keys from_pretrained reads; the rest of the JSON never reaches MambaConfig.
  static const std::set<std::string> honoured = {
      "num_layers", "hidden_size", "state_size", "conv_dimension", "vocab_size", "expansion_factor",
      "mamba_moe_layers", "ffn_hidden_size", "add_bias_linear", "swiglu", "max_sequence_length"};
  // MambaConfig fields that released configs or save_pretrained may carry; from_pretrained never reads them
  // ("bias" is overwritten by add_bias_linear).
  static const std::set<std::string> inert = {
      "bias", "base_model_type", "conv_bias", "use_fast_path", "dt_rank", "dt_min", "dt_max", "dt_init",
      "dt_scale", "dt_init_floor", "rms_norm", "fused_add_norm", "residual_in_fp32", "hidden_dropout",
      "gated_linear_unit", "routing_mode", "device", "fp32_residual_connection", "layernorm_epsilon",
      "layernorm_zero_centered_gamma", "num_moe_experts", "init_method_std", "apply_query_key_layer_scaling",
      "attention_softmax_in_fp32", "bias_gelu_fusion", "persist_layer_norm", "bias_dropout_fusion",
      "architectures", "model_type", "torch_dtype", "transformers_version"};
  ModelConfig cfg;
  // from_pretrained never looks at any other key, so neither do we; `bmh info` lists what was ignored.
  for (auto it = c.j.begin(); it != c.j.end(); ++it)
    if (!honoured.count(it.key())) cfg.ignored_keys.push_back(it.key() + (inert.count(it.key()) ? "" : " (unknown)"));

  cfg.family = "zyphra-blackmamba";
  // Bounded before anything is sized from them (mamba_spec multiplies expansion_factor by hidden_size).
  const int n_layers = c.get_int("num_layers", 1, kMaxConfigLayers);
  cfg.d_model = c.get_int("hidden_size", 1, kMaxConfigWidth);
  cfg.vocab_size = c.get_int("vocab_size", 1, kMaxConfigVocab);
  cfg.max_seq_len = c.get_int("max_sequence_length", 1, kMaxConfigSeqLen);
  const bool bias = c.get<bool>("add_bias_linear");
  MambaSpec mamba = mamba_spec(cfg.d_model, c.get_int("state_size", 1, kMaxConfigState),
                               c.get_int("conv_dimension", 1, kMaxConfigConv),
                               c.get_int("expansion_factor", 1, kMaxConfigExpand), 0, bias, /*conv_bias=*/true);
  MlpSpec ffn;
  ffn.d_ff = c.get_int("ffn_hidden_size", 1, kMaxConfigFfn);
  ffn.gated = c.get<bool>("swiglu");    // gated_linear_unit = swiglu
  ffn.act = Activation::GeluErf;        // activation_func = F.gelu, also inside the glu
  ffn.bias = bias;

  if (!c.has("mamba_moe_layers")) fail(c.path, ": required field 'mamba_moe_layers' is missing");
  const auto& layers = c.j.at("mamba_moe_layers");
  if (!layers.is_array() && !layers.is_string())
    fail(c.path, ": mamba_moe_layers must be a list of strings");
  std::vector<std::string> entries;
  if (layers.is_array()) {
    for (size_t i = 0; i < layers.size(); ++i) {
      if (!layers[i].is_string()) fail(c.path, ": mamba_moe_layers[", i, "] is not a string");
      entries.push_back(layers[i].get<std::string>());
    }
  }
  // An empty list means every layer is a Mamba block (create_block: `not config.mamba_moe_layers`).
  if (!entries.empty() && int64_t(entries.size()) < n_layers)
    fail(c.path, ": mamba_moe_layers has ", entries.size(), " entries but num_layers is ", n_layers);
  for (int i = 0; i < n_layers; ++i)
    cfg.blocks.push_back(entries.empty() ? zyphra_block("r", i, mamba, ffn, c.path)
                                         : zyphra_block(entries[i], i, mamba, ffn, c.path));

  cfg.norm = NormKind::RMSNorm;          // rms_norm=True: Triton RMSNorm, weight only
  cfg.norm_bias = false;
  cfg.norm_eps = 1e-5;
  cfg.final_norm = NormKind::LayerNorm;  // MambaDecoder.final_layernorm = nn.LayerNorm(bias=True)
  cfg.final_norm_bias = true;
  cfg.final_norm_eps = 1e-5;
  cfg.tie_embeddings = true;             // output_layer.weight = embedding.word_embeddings.weight
  cfg.lm_head_bias = bias;               // output_layer = Linear(bias=add_bias_linear)
  return cfg;
}

}  // namespace bmh
