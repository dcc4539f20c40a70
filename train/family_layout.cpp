// Family layouts, written (see train/family_layout.h). Config keys are the ones each family's parser in core/
// honours, which are those the official loaders read: Zyphra mamba_model.py from_pretrained, state-spaces
// mamba_ssm/models/config_mamba.py, transformers configuration_mamba.py and configuration_gpt_neox.py.
#include "train/family_layout.h"

#include "core/checkpoint.h"
#include "core/config_parsers.h"
#include "core/error.h"
#include "core/model_weights.h"
#include "core/weight_names.h"

namespace bmh::train {

namespace {

using json = nlohmann::json;

// Zyphra mamba_moe_layers entry of a block (core/config_zyphra.cpp zyphra_block, inverted).
std::string zyphra_entry(const BlockConfig& b) {
  std::string mlp = b.mlp == MlpKind::None ? "" : b.mlp == MlpKind::Dense ? "1" : std::to_string(b.ffn.n_experts);
  if (b.mixer == MixerKind::Mamba) return "r" + mlp;
  return mlp;
}

const BlockConfig* first_with(const ModelConfig& cfg, bool (*pred)(const BlockConfig&)) {
  for (const auto& b : cfg.blocks)
    if (pred(b)) return &b;
  return nullptr;
}

json zyphra_json(const ModelConfig& cfg) {
  const BlockConfig* m = first_with(cfg, [](const BlockConfig& b) { return b.mixer == MixerKind::Mamba; });
  const BlockConfig* f = first_with(cfg, [](const BlockConfig& b) { return b.mlp != MlpKind::None; });
  if (!m) fail(cfg.name, ": a Zyphra BlackMamba config needs Mamba blocks");
  json layers = json::array();
  for (const auto& b : cfg.blocks) layers.push_back(zyphra_entry(b));
  return {{"num_layers", cfg.n_blocks()}, {"hidden_size", cfg.d_model}, {"state_size", m->mamba.d_state},
          {"conv_dimension", m->mamba.d_conv}, {"vocab_size", cfg.vocab_size},
          {"expansion_factor", m->mamba.d_inner / cfg.d_model}, {"mamba_moe_layers", layers},
          {"ffn_hidden_size", f ? f->ffn.d_ff : 4 * cfg.d_model}, {"add_bias_linear", cfg.lm_head_bias},
          {"swiglu", f ? f->ffn.gated : false}, {"max_sequence_length", cfg.max_seq_len}};
}

json mamba_ssm_json(const ModelConfig& cfg) {
  const MambaSpec& m = cfg.blocks.at(0).mamba;
  return {{"d_model", cfg.d_model}, {"n_layer", cfg.n_blocks()}, {"vocab_size", cfg.vocab_size},
          {"ssm_cfg", {{"d_state", m.d_state}, {"d_conv", m.d_conv}, {"expand", m.d_inner / cfg.d_model},
                       {"dt_rank", m.dt_rank}, {"bias", m.in_proj_bias}, {"conv_bias", m.conv_bias}}},
          {"rms_norm", true}, {"residual_in_fp32", true}, {"fused_add_norm", true}, {"pad_vocab_size_multiple", 8},
          {"tie_embeddings", cfg.tie_embeddings}};
}

json hf_mamba_json(const ModelConfig& cfg) {
  const MambaSpec& m = cfg.blocks.at(0).mamba;
  return {{"model_type", "mamba"}, {"architectures", {"MambaForCausalLM"}}, {"hidden_size", cfg.d_model},
          {"state_size", m.d_state}, {"num_hidden_layers", cfg.n_blocks()}, {"layer_norm_epsilon", cfg.norm_eps},
          {"expand", m.d_inner / cfg.d_model}, {"conv_kernel", m.d_conv}, {"use_bias", m.in_proj_bias},
          {"use_conv_bias", m.conv_bias}, {"hidden_act", "silu"}, {"time_step_rank", m.dt_rank},
          {"vocab_size", cfg.vocab_size}, {"tie_word_embeddings", cfg.tie_embeddings},
          {"intermediate_size", m.d_inner}};
}

json gpt_neox_json(const ModelConfig& cfg) {
  const BlockConfig& b = cfg.blocks.at(0);
  const Activation act = b.ffn.act;
  const char* hidden_act = act == Activation::GeluTanh ? "gelu_new" : to_string(act);
  return {{"model_type", "gpt_neox"}, {"architectures", {"GPTNeoXForCausalLM"}}, {"hidden_size", cfg.d_model},
          {"num_attention_heads", b.attn.n_heads}, {"num_hidden_layers", cfg.n_blocks()},
          {"intermediate_size", b.ffn.d_ff}, {"hidden_act", hidden_act},
          {"rotary_pct", double(b.attn.rotary_dim) / b.attn.head_dim}, {"rotary_emb_base", b.attn.rope_theta},
          {"attention_bias", b.attn.qkv_bias}, {"max_position_embeddings", cfg.max_seq_len},
          {"layer_norm_eps", cfg.norm_eps}, {"use_parallel_residual", b.parallel},
          {"tie_word_embeddings", cfg.tie_embeddings}, {"vocab_size", cfg.vocab_size}, {"initializer_range", 0.02}};
}

ModelConfig parse_back(const json& j, const std::string& family) {
  ConfigJson c{"config.json (" + family + ")", j};
  if (family == "zyphra-blackmamba") return parse_zyphra_config(c);
  if (family == "mamba-ssm") return parse_mamba_ssm_config(c);
  if (family == "hf-mamba") return parse_hf_mamba_config(c);
  if (family == "hf-gpt-neox") return parse_gpt_neox_config(c);
  if (family == "bmh") return parse_bmh_config(c);
  fail("unknown model family '", family, "' (zyphra-blackmamba, mamba-ssm, hf-mamba, hf-gpt-neox, bmh)");
}

json comparable(const ModelConfig& cfg) {
  json j = bmh_config_json(cfg);
  j.erase("name");
  j.erase("max_seq_len");  // no Mamba config carries it; nothing Mamba computes depends on it
  return j;
}

}  // namespace

json family_config_json(const ModelConfig& cfg, const std::string& family) {
  json j;
  try {
    if (family == "zyphra-blackmamba") j = zyphra_json(cfg);
    else if (family == "mamba-ssm") j = mamba_ssm_json(cfg);
    else if (family == "hf-mamba") j = hf_mamba_json(cfg);
    else if (family == "hf-gpt-neox") j = gpt_neox_json(cfg);
    else if (family == "bmh") j = bmh_config_json(cfg);
    else fail("unknown model family '", family, "'");
    if (comparable(parse_back(j, family)) != comparable(cfg)) fail("the config does not round-trip");
  } catch (const Error& e) {
    fail(cfg.name, ": cannot be saved in the ", family, " layout: ", e.what());
  }
  return j;
}

std::string layout_family(const ModelConfig& cfg) {
  if (cfg.family != "preset" && !cfg.family.empty()) return cfg.family;
  for (const char* f : {"zyphra-blackmamba", "mamba-ssm", "hf-gpt-neox"}) {
    try {
      family_config_json(cfg, f);
      return f;
    } catch (const Error&) {
    }
  }
  return "bmh";
}

void write_model_dir(const std::string& dir, const ModelConfig& cfg, const TensorMap& canonical) {
  const std::string family = layout_family(cfg);
  const json config = family_config_json(cfg, family);
  ModelConfig named = cfg;
  named.family = family;
  WeightNaming naming;
  naming.family = family;
  naming.source = dir;
  naming.cfg = &named;
  const bool torch_layout = family == "zyphra-blackmamba" || family == "mamba-ssm" || family == "hf-mamba";
  TensorMap out;
  for (const WeightSpec& w : expected_weights(cfg)) {
    auto it = canonical.find(w.name);
    if (it == canonical.end()) fail(dir, ": no tensor '", w.name, "' to save");
    Tensor t = it->second;
    if (t.shape() != w.shape) fail(dir, ": tensor '", w.name, "' is ", t.describe(), ", expected ", shape_str(w.shape));
    // torch.nn.Conv1d keeps its depthwise weight as [Di, 1, K].
    if (torch_layout && w.name.size() > 20 && w.name.substr(w.name.size() - 20) == ".mamba.conv1d.weight")
      t = t.reshaped({w.shape[0], 1, w.shape[1]});
    out[naming.key(w.name)] = t;
  }
  // mamba_ssm's state dict carries the tied head too (MambaLMHeadModel.tie_weights): one shared storage.
  if (family == "mamba-ssm" && cfg.tie_embeddings) out["lm_head.weight"] = out.at(naming.key("embed.weight"));
  if (family == "zyphra-blackmamba") write_torch_zip(dir + "/pytorch_model.bin", out, "model");
  else if (family == "mamba-ssm") write_torch_zip(dir + "/pytorch_model.bin", out);
  else write_safetensors(dir + "/model.safetensors", out, {{"format", "pt"}});
  std::string text = config.dump(2) + "\n";
  FILE* f = std::fopen((dir + "/config.json").c_str(), "w");
  if (!f || std::fwrite(text.data(), 1, text.size(), f) != text.size()) fail("cannot write ", dir, "/config.json");
  std::fclose(f);
}

}  // namespace bmh::train
