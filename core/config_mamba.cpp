// Dense Mamba configs in the two layouts that exist: state-spaces/mamba (mamba_ssm/models/config_mamba.py,
// read by models/mixer_seq_simple.py) and transformers (models/mamba/configuration_mamba.py).
#include "core/config_parsers.h"

namespace bmh {

static void finish_dense_mamba(ModelConfig& cfg, int n_layers, const MambaSpec& m, double eps) {
  for (int i = 0; i < n_layers; ++i) {
    BlockConfig b;
    b.mixer = MixerKind::Mamba;
    b.mamba = m;
    cfg.blocks.push_back(b);
  }
  cfg.norm = cfg.final_norm = NormKind::RMSNorm;
  cfg.norm_bias = cfg.final_norm_bias = false;
  cfg.norm_eps = cfg.final_norm_eps = eps;
  cfg.lm_head_bias = false;
}

ModelConfig parse_mamba_ssm_config(const ConfigJson& c) {
  static const std::set<std::string> honoured = {"d_model", "n_layer", "vocab_size", "ssm_cfg", "rms_norm",
                                                 "pad_vocab_size_multiple", "tie_embeddings", "d_intermediate",
                                                 "attn_layer_idx", "attn_cfg"};
  // residual_in_fp32 / fused_add_norm change only where the sum is rounded; we always keep it in fp32.
  static const std::set<std::string> inert = {"residual_in_fp32", "fused_add_norm", "architectures",
                                              "torch_dtype", "transformers_version"};
  c.check_keys(honoured, inert, "state-spaces mamba");
  if (c.get_or<int>("d_intermediate", 0) != 0)
    fail(c.path, ": d_intermediate > 0 (an MLP after each Mamba block) is not supported");
  if (c.has("attn_layer_idx") && !c.j.at("attn_layer_idx").empty())
    fail(c.path, ": attn_layer_idx (hybrid attention layers) is not supported");

  ModelConfig cfg;
  cfg.family = "mamba-ssm";
  cfg.d_model = c.get<int>("d_model");
  const int n_layers = c.get<int>("n_layer");
  int vocab = c.get<int>("vocab_size");
  const int multiple = c.get_or<int>("pad_vocab_size_multiple", 8);
  if (multiple > 0 && vocab % multiple) vocab += multiple - vocab % multiple;  // MambaLMHeadModel.__init__
  cfg.vocab_size = vocab;
  cfg.tie_embeddings = c.get_or<bool>("tie_embeddings", true);
  if (!c.get_or<bool>("rms_norm", true))
    fail(c.path, ": rms_norm=false (LayerNorm Mamba) is not supported");

  ConfigJson ssm{c.path + " ssm_cfg", c.has("ssm_cfg") ? c.j.at("ssm_cfg") : nlohmann::json::object()};
  // Mamba (mamba_simple.py) constructor arguments; dt_* only initialise weights.
  static const std::set<std::string> ssm_honoured = {"d_state", "d_conv", "expand", "dt_rank", "bias",
                                                     "conv_bias", "layer"};
  static const std::set<std::string> ssm_inert = {"dt_min", "dt_max", "dt_init", "dt_scale", "dt_init_floor",
                                                  "use_fast_path"};
  ssm.check_keys(ssm_honoured, ssm_inert, "state-spaces mamba ssm_cfg");
  if (ssm.get_or<std::string>("layer", "Mamba1") != "Mamba1")
    fail(c.path, ": ssm_cfg.layer '", ssm.get<std::string>("layer"), "' is not supported (Mamba1 only)");
  int dt_rank = 0;
  if (ssm.has("dt_rank") && !ssm.j.at("dt_rank").is_string()) dt_rank = ssm.get<int>("dt_rank");
  MambaSpec m = mamba_spec(cfg.d_model, ssm.get_or<int>("d_state", 16), ssm.get_or<int>("d_conv", 4),
                           ssm.get_or<int>("expand", 2), dt_rank, ssm.get_or<bool>("bias", false),
                           ssm.get_or<bool>("conv_bias", true));
  finish_dense_mamba(cfg, n_layers, m, 1e-5);  // MixerModel norm_epsilon default
  return cfg;
}

ModelConfig parse_hf_mamba_config(const ConfigJson& c) {
  static const std::set<std::string> honoured = {
      "hidden_size", "state_size", "num_hidden_layers", "layer_norm_epsilon", "expand", "conv_kernel",
      "use_bias", "use_conv_bias", "hidden_act", "time_step_rank", "vocab_size", "tie_word_embeddings",
      "intermediate_size", "model_type"};
  static const std::set<std::string> inert = {
      "architectures", "bos_token_id", "eos_token_id", "pad_token_id", "dtype", "torch_dtype",
      "transformers_version", "initializer_range", "rescale_prenorm_residual", "residual_in_fp32",
      "time_step_floor", "time_step_init_scheme", "time_step_max", "time_step_min", "time_step_scale",
      "use_cache", "use_mambapy", "use_associative_scan", "output_hidden_states", "return_dict"};
  c.check_keys(honoured, inert, "transformers mamba");
  ModelConfig cfg;
  cfg.family = "hf-mamba";
  cfg.d_model = c.get<int>("hidden_size");
  cfg.vocab_size = c.get<int>("vocab_size");
  cfg.tie_embeddings = c.get_or<bool>("tie_word_embeddings", true);
  if (c.get_or<std::string>("hidden_act", "silu") != "silu")
    fail(c.path, ": hidden_act '", c.get<std::string>("hidden_act"), "' is not supported (silu only)");
  int dt_rank = 0;
  if (c.has("time_step_rank") && !c.j.at("time_step_rank").is_string()) dt_rank = c.get<int>("time_step_rank");
  const int expand = c.get_or<int>("expand", 2);
  MambaSpec m = mamba_spec(cfg.d_model, c.get_or<int>("state_size", 16), c.get_or<int>("conv_kernel", 4), expand,
                           dt_rank, c.get_or<bool>("use_bias", false), c.get_or<bool>("use_conv_bias", true));
  if (c.has("intermediate_size") && c.get<int>("intermediate_size") != m.d_inner)
    fail(c.path, ": intermediate_size ", c.get<int>("intermediate_size"), " != expand * hidden_size = ", m.d_inner);
  finish_dense_mamba(cfg, c.get<int>("num_hidden_layers"), m, c.get_or<double>("layer_norm_epsilon", 1e-5));
  return cfg;
}

}  // namespace bmh
