// transformers GPT-NeoX configs (models/gpt_neox/configuration_gpt_neox.py), in both spellings that exist:
// the Hub's Pythia configs (rotary_pct, rotary_emb_base) and transformers 5.x (rope_parameters
// {partial_rotary_factor, rope_theta}, attention_bias).
#include "core/config_parsers.h"

namespace bmh {

ModelConfig parse_gpt_neox_config(const ConfigJson& c) {
  static const std::set<std::string> honoured = {
      "hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size", "hidden_act",
      "rotary_pct", "rotary_emb_base", "rope_theta", "rope_parameters", "rope_scaling", "attention_bias",
      "max_position_embeddings", "layer_norm_eps", "use_parallel_residual", "tie_word_embeddings", "vocab_size",
      "model_type"};
  static const std::set<std::string> inert = {
      "architectures", "attention_dropout", "hidden_dropout", "classifier_dropout", "initializer_range",
      "bos_token_id", "eos_token_id", "pad_token_id", "dtype", "torch_dtype", "transformers_version", "use_cache",
      "is_decoder", "gradient_checkpointing", "output_hidden_states", "return_dict", "_name_or_path"};
  c.check_keys(honoured, inert, "transformers gpt_neox");
  if (c.has("rope_scaling")) fail(c.path, ": rope_scaling is not supported");

  ModelConfig cfg;
  cfg.family = "hf-gpt-neox";
  cfg.d_model = c.get_int("hidden_size", 1, kMaxConfigWidth);
  cfg.vocab_size = c.get_int("vocab_size", 1, kMaxConfigVocab);
  cfg.max_seq_len = c.get_int_or("max_position_embeddings", 2048, 1, kMaxConfigSeqLen);
  cfg.tie_embeddings = c.get_or<bool>("tie_word_embeddings", false);
  cfg.norm = cfg.final_norm = NormKind::LayerNorm;
  cfg.norm_bias = cfg.final_norm_bias = true;
  cfg.norm_eps = cfg.final_norm_eps = c.get_real_or("layer_norm_eps", 1e-5, kMinEps, kMaxEps);
  cfg.lm_head_bias = false;

  // The rotary fraction must lie in [0, 1]: above 1 the rotation would run past the head (heap corruption in
  // the reference before this check), below 0 it would silently disable rotary.
  double partial = c.get_real_or("rotary_pct", 0.25, 0.0, 1.0);
  double theta = c.get_real_or("rotary_emb_base", 10000.0, 1e-6, 1e12);
  theta = c.get_real_or("rope_theta", theta, 1e-6, 1e12);
  if (c.has("rope_parameters")) {
    if (!c.j.at("rope_parameters").is_object()) fail(c.path, ": rope_parameters is not an object");
    ConfigJson rp{c.path + " rope_parameters", c.j.at("rope_parameters")};
    rp.check_keys({"partial_rotary_factor", "rope_theta", "rope_type"}, {}, "gpt_neox rope_parameters");
    if (rp.get_or<std::string>("rope_type", "default") != "default")
      fail(c.path, ": rope_parameters.rope_type '", rp.get<std::string>("rope_type"), "' is not supported");
    partial = rp.get_real_or("partial_rotary_factor", partial, 0.0, 1.0);
    theta = rp.get_real_or("rope_theta", theta, 1e-6, 1e12);
  }
  AttentionSpec a;
  a.n_heads = c.get_int("num_attention_heads", 1, kMaxConfigWidth);
  if (cfg.d_model % a.n_heads)
    fail(c.path, ": hidden_size ", cfg.d_model, " is not divisible by num_attention_heads ", a.n_heads);
  a.head_dim = cfg.d_model / a.n_heads;
  a.rotary_dim = int(a.head_dim * partial);  // GPTNeoXRotaryEmbedding: int(head_size * rotary_pct)
  // rotate_half splits the rotated dims in two equal halves; torch fails on an odd count, so do we.
  if (a.rotary_dim % 2)
    fail(c.path, ": rotary dimension int(head_dim ", a.head_dim, " * rotary fraction ", partial, ") = ", a.rotary_dim,
         " is odd; rotate_half needs an even count");
  a.rope_theta = theta;
  a.qkv_bias = a.out_bias = c.get_or<bool>("attention_bias", true);

  MlpSpec ffn;
  ffn.d_ff = c.get_int("intermediate_size", 1, kMaxConfigFfn);
  ffn.gated = false;
  ffn.bias = true;
  std::string act = c.get_or<std::string>("hidden_act", "gelu");
  if (!activation_from_string(act, &ffn.act)) fail(c.path, ": hidden_act '", act, "' is not supported");

  const bool parallel = c.get_or<bool>("use_parallel_residual", true);
  for (int i = 0, n = c.get_int("num_hidden_layers", 1, kMaxConfigLayers); i < n; ++i) {
    BlockConfig b;
    b.mixer = MixerKind::Attention;
    b.mlp = MlpKind::Dense;
    b.parallel = parallel;
    b.attn = a;
    b.ffn = ffn;
    cfg.blocks.push_back(b);
  }
  return cfg;
}

}  // namespace bmh
