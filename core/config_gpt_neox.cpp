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
  cfg.d_model = c.get<int>("hidden_size");
  cfg.vocab_size = c.get<int>("vocab_size");
  cfg.max_seq_len = c.get_or<int>("max_position_embeddings", 2048);
  cfg.tie_embeddings = c.get_or<bool>("tie_word_embeddings", false);
  cfg.norm = cfg.final_norm = NormKind::LayerNorm;
  cfg.norm_bias = cfg.final_norm_bias = true;
  cfg.norm_eps = cfg.final_norm_eps = c.get_or<double>("layer_norm_eps", 1e-5);
  cfg.lm_head_bias = false;

  double partial = c.get_or<double>("rotary_pct", 0.25);
  double theta = c.get_or<double>("rotary_emb_base", 10000.0);
  theta = c.get_or<double>("rope_theta", theta);
  if (c.has("rope_parameters")) {
    ConfigJson rp{c.path + " rope_parameters", c.j.at("rope_parameters")};
    rp.check_keys({"partial_rotary_factor", "rope_theta", "rope_type"}, {}, "gpt_neox rope_parameters");
    if (rp.get_or<std::string>("rope_type", "default") != "default")
      fail(c.path, ": rope_parameters.rope_type '", rp.get<std::string>("rope_type"), "' is not supported");
    partial = rp.get_or<double>("partial_rotary_factor", partial);
    theta = rp.get_or<double>("rope_theta", theta);
  }
  AttentionSpec a;
  a.n_heads = c.get<int>("num_attention_heads");
  if (a.n_heads <= 0 || cfg.d_model % a.n_heads)
    fail(c.path, ": hidden_size ", cfg.d_model, " is not divisible by num_attention_heads ", a.n_heads);
  a.head_dim = cfg.d_model / a.n_heads;
  a.rotary_dim = int(a.head_dim * partial);  // GPTNeoXRotaryEmbedding: int(head_size * rotary_pct)
  a.rope_theta = theta;
  a.qkv_bias = a.out_bias = c.get_or<bool>("attention_bias", true);

  MlpSpec ffn;
  ffn.d_ff = c.get<int>("intermediate_size");
  ffn.gated = false;
  ffn.bias = true;
  std::string act = c.get_or<std::string>("hidden_act", "gelu");
  if (!activation_from_string(act, &ffn.act)) fail(c.path, ": hidden_act '", act, "' is not supported");

  const bool parallel = c.get_or<bool>("use_parallel_residual", true);
  for (int i = 0, n = c.get<int>("num_hidden_layers"); i < n; ++i) {
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
