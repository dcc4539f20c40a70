// transformers Jamba configs (models/jamba/configuration_jamba.py, read by modeling_jamba.py). Layer i is
// attention when i % attn_layer_period == attn_layer_offset, else Mamba (layers_block_type), and its
// feed-forward is a top-k MoE of num_experts SwiGLU experts when i % expert_layer_period == expert_layer_offset
// and num_experts > 1, else one dense SwiGLU MLP (layers_num_experts; JambaAttentionDecoderLayer picks
// JambaSparseMoeBlock only if num_experts > 1). The router's k weights are NOT renormalised (JambaSparseMoeBlock),
// attention has no positional encoding, the Mamba mixer RMSNorms dt, B and C (JambaMambaMixer).
#include <cmath>

#include "core/config_parsers.h"

namespace bmh {

ModelConfig parse_jamba_config(const ConfigJson& c) {
  static const std::set<std::string> honoured = {
      "hidden_size", "num_attention_heads", "num_key_value_heads", "num_hidden_layers", "intermediate_size",
      "hidden_act", "rms_norm_eps", "tie_word_embeddings", "vocab_size", "num_experts", "num_experts_per_tok",
      "expert_layer_period", "expert_layer_offset", "attn_layer_period", "attn_layer_offset", "mamba_d_state",
      "mamba_d_conv", "mamba_expand", "mamba_dt_rank", "mamba_conv_bias", "mamba_proj_bias", "sliding_window",
      "max_position_embeddings", "model_type"};
  // use_mamba_kernels / use_mambapy / use_associative_scan choose how the same scan is computed.
  static const std::set<std::string> inert = {
      "architectures", "attention_dropout", "initializer_range", "bos_token_id", "eos_token_id", "pad_token_id",
      "dtype", "torch_dtype", "transformers_version", "use_cache", "output_router_logits", "router_aux_loss_coef",
      "num_logits_to_keep", "use_mamba_kernels", "use_mambapy", "use_associative_scan", "_name_or_path",
      "return_dict", "output_hidden_states"};
  c.check_keys(honoured, inert, "transformers jamba");
  // JambaAttention (eager/sdpa) ignores sliding_window; only its flash-attention path applies it, so which
  // semantics a checkpoint means is ambiguous: refuse rather than guess.
  if (c.has("sliding_window"))
    fail(c.path, ": sliding_window = ", c.j.at("sliding_window").dump(),
         " is not supported for jamba (only transformers' flash-attention path applies it)");

  ModelConfig cfg;
  cfg.family = "hf-jamba";
  cfg.d_model = c.get<int>("hidden_size");
  cfg.vocab_size = c.get<int>("vocab_size");
  cfg.max_seq_len = c.get_or<int>("max_position_embeddings", 262144);
  cfg.tie_embeddings = c.get_or<bool>("tie_word_embeddings", false);
  cfg.norm = cfg.final_norm = NormKind::RMSNorm;
  cfg.norm_bias = cfg.final_norm_bias = false;
  cfg.norm_eps = cfg.final_norm_eps = c.get_or<double>("rms_norm_eps", 1e-6);
  cfg.lm_head_bias = false;

  // The Mamba mixer's conv and gate use ACT2FN[hidden_act]; our mixer implements SiLU there.
  const std::string act = c.get_or<std::string>("hidden_act", "silu");
  Activation ffn_act;
  if (!activation_from_string(act, &ffn_act) || ffn_act != Activation::Silu)
    fail(c.path, ": hidden_act '", act, "' is not supported for jamba (its Mamba mixer needs silu)");

  const int d = cfg.d_model;
  AttentionSpec a;
  a.n_heads = c.get<int>("num_attention_heads");
  a.n_kv_heads = c.get_or<int>("num_key_value_heads", a.n_heads);
  if (a.n_heads <= 0 || a.n_kv_heads <= 0 || a.n_heads % a.n_kv_heads || d % a.n_heads)
    fail(c.path, ": num_attention_heads ", a.n_heads, " / num_key_value_heads ", a.n_kv_heads,
         " do not divide hidden_size ", d, " into grouped heads");
  a.head_dim = d / a.n_heads;
  a.rotary_dim = 0;  // JambaAttention: no positional encoding
  a.grouped_qkv = true;

  const int expand = c.get_or<int>("mamba_expand", 2);
  int dt_rank = int(std::ceil(d / 16.0));  // "auto"
  if (c.has("mamba_dt_rank") && !c.j.at("mamba_dt_rank").is_string()) dt_rank = c.get<int>("mamba_dt_rank");
  else if (c.has("mamba_dt_rank") && c.j.at("mamba_dt_rank").get<std::string>() != "auto")
    fail(c.path, ": mamba_dt_rank '", c.j.at("mamba_dt_rank").get<std::string>(), "' is neither an integer nor \"auto\"");
  const bool proj_bias = c.get_or<bool>("mamba_proj_bias", false);
  MambaSpec m = mamba_spec(d, c.get_or<int>("mamba_d_state", 16), c.get_or<int>("mamba_d_conv", 4), expand, dt_rank,
                           proj_bias, c.get_or<bool>("mamba_conv_bias", true));
  m.inner_norms = true;
  m.inner_norm_eps = cfg.norm_eps;

  MlpSpec ffn;
  ffn.d_ff = c.get<int>("intermediate_size");
  ffn.gated = true;  // down(act(gate x) * up x), JambaMLP; fc1 = [gate_proj; up_proj]
  ffn.act = ffn_act;
  const int n_experts = c.get_or<int>("num_experts", 16);
  const int top_k = c.get_or<int>("num_experts_per_tok", 2);
  const int ap = c.get_or<int>("attn_layer_period", 8), ao = c.get_or<int>("attn_layer_offset", 4);
  const int ep = c.get_or<int>("expert_layer_period", 2), eo = c.get_or<int>("expert_layer_offset", 1);
  if (ap < 1 || ao < 0 || ao >= ap) fail(c.path, ": attn_layer_offset ", ao, " must be in [0, attn_layer_period ", ap, ")");
  if (ep < 1 || eo < 0 || eo >= ep) fail(c.path, ": expert_layer_offset ", eo, " must be in [0, expert_layer_period ", ep, ")");
  if (n_experts > 1 && (top_k < 1 || top_k > n_experts))
    fail(c.path, ": num_experts_per_tok ", top_k, " must be in [1, num_experts = ", n_experts, "]");

  for (int i = 0, n = c.get<int>("num_hidden_layers"); i < n; ++i) {
    BlockConfig b;
    if (i % ap == ao) {
      b.mixer = MixerKind::Attention;
      b.attn = a;
    } else {
      b.mixer = MixerKind::Mamba;
      b.mamba = m;
    }
    b.ffn = ffn;
    if (i % ep == eo && n_experts > 1) {
      b.mlp = MlpKind::Moe;
      b.ffn.n_experts = n_experts;
      b.ffn.top_k = top_k;
      b.ffn.router = RouterKind::SoftmaxTopK;
      b.ffn.renormalize = false;
      b.ffn.router_bias = false;  // router = nn.Linear(hidden, num_experts, bias=False)
    } else {
      b.mlp = MlpKind::Dense;
    }
    cfg.blocks.push_back(b);
  }
  return cfg;
}

}  // namespace bmh
