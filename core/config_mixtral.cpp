// transformers Mixtral configs (models/mixtral/configuration_mixtral.py, read by modeling_mixtral.py): every
// layer is RMSNorm -> grouped-query attention with full RoPE -> RMSNorm -> softmax top-k MoE of SwiGLU experts,
// the k weights renormalised to sum to 1 (MixtralSparseMoeBlock). Both spellings of the rotary base exist:
// `rope_theta` (the Hub's Mixtral-8x7B config) and `rope_parameters` {rope_theta, rope_type} (transformers 5.x).
#include "core/config_parsers.h"

namespace bmh {

ModelConfig parse_mixtral_config(const ConfigJson& c) {
  static const std::set<std::string> honoured = {
      "hidden_size", "num_attention_heads", "num_key_value_heads", "num_hidden_layers", "intermediate_size",
      "hidden_act", "head_dim", "rope_theta", "rope_parameters", "rope_scaling", "sliding_window",
      "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings", "vocab_size", "num_local_experts",
      "num_experts_per_tok", "model_type"};
  // Router jitter and the auxiliary loss act only in training (MixtralSparseMoeBlock: `if self.training`).
  static const std::set<std::string> inert = {
      "architectures", "attention_dropout", "initializer_range", "bos_token_id", "eos_token_id", "pad_token_id",
      "dtype", "torch_dtype", "transformers_version", "use_cache", "output_router_logits", "router_aux_loss_coef",
      "router_jitter_noise", "_name_or_path", "return_dict", "output_hidden_states"};
  c.check_keys(honoured, inert, "transformers mixtral");
  if (c.has("rope_scaling")) fail(c.path, ": rope_scaling is not supported");

  ModelConfig cfg;
  cfg.family = "hf-mixtral";
  cfg.d_model = c.get<int>("hidden_size");
  cfg.vocab_size = c.get<int>("vocab_size");
  cfg.max_seq_len = c.get_or<int>("max_position_embeddings", 4096 * 32);
  cfg.tie_embeddings = c.get_or<bool>("tie_word_embeddings", false);
  cfg.norm = cfg.final_norm = NormKind::RMSNorm;
  cfg.norm_bias = cfg.final_norm_bias = false;
  cfg.norm_eps = cfg.final_norm_eps = c.get_or<double>("rms_norm_eps", 1e-5);
  cfg.lm_head_bias = false;

  double theta = c.get_or<double>("rope_theta", 1e6);
  if (c.has("rope_parameters")) {
    ConfigJson rp{c.path + " rope_parameters", c.j.at("rope_parameters")};
    rp.check_keys({"rope_theta", "rope_type"}, {}, "mixtral rope_parameters");
    if (rp.get_or<std::string>("rope_type", "default") != "default")
      fail(c.path, ": rope_parameters.rope_type '", rp.get<std::string>("rope_type"), "' is not supported");
    theta = rp.get_or<double>("rope_theta", theta);
  }
  AttentionSpec a;
  a.n_heads = c.get<int>("num_attention_heads");
  a.n_kv_heads = c.get_or<int>("num_key_value_heads", a.n_heads);
  if (a.n_heads <= 0 || a.n_kv_heads <= 0 || a.n_heads % a.n_kv_heads)
    fail(c.path, ": num_attention_heads ", a.n_heads, " is not a multiple of num_key_value_heads ", a.n_kv_heads);
  // MixtralAttention: head_dim = config.head_dim or hidden_size // num_attention_heads.
  a.head_dim = c.get_or<int>("head_dim", 0);
  if (a.head_dim == 0) {
    if (cfg.d_model % a.n_heads)
      fail(c.path, ": hidden_size ", cfg.d_model, " is not divisible by num_attention_heads ", a.n_heads);
    a.head_dim = cfg.d_model / a.n_heads;
  }
  if (a.head_dim % 2) fail(c.path, ": head_dim ", a.head_dim, " is odd; RoPE rotates pairs");
  a.rotary_dim = a.head_dim;  // full RoPE (partial_rotary_factor 1)
  a.rope_theta = theta;
  a.grouped_qkv = true;
  a.qkv_bias = a.out_bias = false;
  a.sliding_window = c.get_or<int>("sliding_window", 0);
  if (a.sliding_window < 0) fail(c.path, ": sliding_window ", a.sliding_window, " is negative");

  MlpSpec ffn;
  ffn.d_ff = c.get<int>("intermediate_size");
  ffn.gated = true;  // w2(act(w1 x) * w3 x), MixtralBlockSparseTop2MLP; fc1 = [w1; w3]
  ffn.bias = false;
  std::string act = c.get_or<std::string>("hidden_act", "silu");
  if (!activation_from_string(act, &ffn.act)) fail(c.path, ": hidden_act '", act, "' is not supported");
  ffn.n_experts = c.get_or<int>("num_local_experts", 8);
  ffn.top_k = c.get_or<int>("num_experts_per_tok", 2);
  if (ffn.n_experts < 1 || ffn.top_k < 1 || ffn.top_k > ffn.n_experts)
    fail(c.path, ": num_experts_per_tok ", ffn.top_k, " must be in [1, num_local_experts = ", ffn.n_experts, "]");
  ffn.router = RouterKind::SoftmaxTopK;
  ffn.renormalize = true;
  ffn.router_bias = false;  // gate = nn.Linear(hidden, num_experts, bias=False)

  for (int i = 0, n = c.get<int>("num_hidden_layers"); i < n; ++i) {
    BlockConfig b;
    b.mixer = MixerKind::Attention;
    b.mlp = MlpKind::Moe;
    b.attn = a;
    b.ffn = ffn;
    cfg.blocks.push_back(b);
  }
  return cfg;
}

}  // namespace bmh
