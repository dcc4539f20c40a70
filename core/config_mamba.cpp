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
  if (c.get_int_or("d_intermediate", 0, 0, kMaxConfigFfn) != 0)
    fail(c.path, ": d_intermediate > 0 (an MLP after each Mamba block) is not supported");
  if (c.has("attn_layer_idx") && !c.j.at("attn_layer_idx").empty())
    fail(c.path, ": attn_layer_idx (hybrid attention layers) is not supported");

  ModelConfig cfg;
  cfg.family = "mamba-ssm";
  cfg.d_model = c.get_int("d_model", 1, kMaxConfigWidth);
  const int n_layers = c.get_int("n_layer", 1, kMaxConfigLayers);
  int vocab = c.get_int("vocab_size", 1, kMaxConfigVocab);
  const int multiple = c.get_int_or("pad_vocab_size_multiple", 8, 0, 1 << 16);
  if (multiple > 0 && vocab % multiple) vocab += multiple - vocab % multiple;  // MambaLMHeadModel.__init__
  cfg.vocab_size = vocab;
  cfg.tie_embeddings = c.get_or<bool>("tie_embeddings", true);
  if (!c.get_or<bool>("rms_norm", true))
    fail(c.path, ": rms_norm=false (LayerNorm Mamba) is not supported");

  if (c.has("ssm_cfg") && !c.j.at("ssm_cfg").is_object()) fail(c.path, ": ssm_cfg is not an object");
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
  if (ssm.has("dt_rank") && !ssm.j.at("dt_rank").is_string()) dt_rank = ssm.get_int("dt_rank", 1, kMaxConfigWidth);
  MambaSpec m = mamba_spec(cfg.d_model, ssm.get_int_or("d_state", 16, 1, kMaxConfigState),
                           ssm.get_int_or("d_conv", 4, 1, kMaxConfigConv), ssm.get_int_or("expand", 2, 1, kMaxConfigExpand),
                           dt_rank, ssm.get_or<bool>("bias", false),
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
  cfg.d_model = c.get_int("hidden_size", 1, kMaxConfigWidth);
  cfg.vocab_size = c.get_int("vocab_size", 1, kMaxConfigVocab);
  cfg.tie_embeddings = c.get_or<bool>("tie_word_embeddings", true);
  if (c.get_or<std::string>("hidden_act", "silu") != "silu")
    fail(c.path, ": hidden_act '", c.get<std::string>("hidden_act"), "' is not supported (silu only)");
  int dt_rank = 0;
  if (c.has("time_step_rank") && !c.j.at("time_step_rank").is_string())
    dt_rank = c.get_int("time_step_rank", 1, kMaxConfigWidth);
  const int expand = c.get_int_or("expand", 2, 1, kMaxConfigExpand);
  MambaSpec m = mamba_spec(cfg.d_model, c.get_int_or("state_size", 16, 1, kMaxConfigState),
                           c.get_int_or("conv_kernel", 4, 1, kMaxConfigConv), expand,
                           dt_rank, c.get_or<bool>("use_bias", false), c.get_or<bool>("use_conv_bias", true));
  if (c.has("intermediate_size") && c.get<int64_t>("intermediate_size") != m.d_inner)
    fail(c.path, ": intermediate_size ", c.get<int64_t>("intermediate_size"), " != expand * hidden_size = ", m.d_inner);
  finish_dense_mamba(cfg, c.get_int("num_hidden_layers", 1, kMaxConfigLayers), m,
                     c.get_real_or("layer_norm_epsilon", 1e-5, kMinEps, kMaxEps));
  return cfg;
}

}  // namespace bmh
