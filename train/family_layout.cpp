// Family layouts, written (see train/family_layout.h). Config keys are the ones each family's parser in core/
// honours, which are those the official loaders read: Zyphra mamba_model.py from_pretrained, state-spaces
// mamba_ssm/models/config_mamba.py, transformers configuration_mamba.py, configuration_gpt_neox.py,
// configuration_mixtral.py and configuration_jamba.py (written as transformers 5.x writes them: the fixtures'
// config.json from save_pretrained are the model for the key set).
#include "train/family_layout.h"

#include <cstring>

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

// Rows [row0, row0 + n) of a 2-D tensor, copied.
Tensor rows_of(const Tensor& t, int64_t row0, int64_t n) {
  const size_t row_bytes = t.nbytes() / size_t(t.dim(0));
  Tensor o = Tensor::zeros(t.dtype(), {n, t.dim(1)});
  std::memcpy(o.raw_mut(), static_cast<const char*>(t.raw()) + size_t(row0) * row_bytes, size_t(n) * row_bytes);
  return o;
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

// transformers MixtralConfig. sliding_window null = none (MixtralConfig's default); the rotary base as 5.x's
// rope_parameters (configuration_mixtral.py); output_router_logits false as save_pretrained leaves it.
json mixtral_json(const ModelConfig& cfg) {
  const BlockConfig& b = cfg.blocks.at(0);
  json j = {{"model_type", "mixtral"}, {"architectures", {"MixtralForCausalLM"}}, {"hidden_size", cfg.d_model},
            {"num_attention_heads", b.attn.n_heads}, {"num_key_value_heads", b.attn.kv_heads()},
            {"head_dim", b.attn.head_dim}, {"num_hidden_layers", cfg.n_blocks()},
            {"intermediate_size", b.ffn.d_ff}, {"hidden_act", to_string(b.ffn.act)},
            {"rope_parameters", {{"rope_theta", b.attn.rope_theta}, {"rope_type", "default"}}},
            {"max_position_embeddings", cfg.max_seq_len}, {"rms_norm_eps", cfg.norm_eps},
            {"tie_word_embeddings", cfg.tie_embeddings}, {"vocab_size", cfg.vocab_size},
            {"num_local_experts", b.ffn.n_experts}, {"num_experts_per_tok", b.ffn.top_k},
            {"sliding_window", nullptr}, {"router_aux_loss_coef", 0.02}, {"output_router_logits", false},
            {"router_jitter_noise", 0.0}, {"attention_dropout", 0.0}, {"initializer_range", 0.02},
            {"dtype", "float32"}};
  if (b.attn.sliding_window > 0) j["sliding_window"] = b.attn.sliding_window;
  return j;
}

// The (period, offset) with i % period == offset exactly for the blocks where pred holds, the longest period
// up to n that does (so a 4-layer model with attention at layer 2 keeps period 4, offset 2, as configs write it;
// a shorter period describing the same layers would be equivalent); period n+1 with offset n when it holds
// nowhere. Fails when no such pair exists (checked again by the round trip).
std::pair<int, int> period_offset(const ModelConfig& cfg, bool (*pred)(const BlockConfig&), const char* what) {
  const int n = cfg.n_blocks();
  for (int p = n; p >= 1; --p)
    for (int o = 0; o < p; ++o) {
      bool ok = true;
      for (int i = 0; i < n && ok; ++i) ok = pred(cfg.blocks[size_t(i)]) == (i % p == o);
      if (ok) return {p, o};
    }
  bool none = true;
  for (const auto& b : cfg.blocks) none = none && !pred(b);
  if (none) return {n + 1, n};
  fail("the ", what, " layers do not repeat with a period and offset");
}

// transformers JambaConfig. use_mamba_kernels false: JambaMambaMixer then runs its slow (pure PyTorch) path,
// which needs no mamba_ssm/causal_conv1d kernels (the fast path refuses to run without them).
json jamba_json(const ModelConfig& cfg) {
  const BlockConfig* a = first_with(cfg, [](const BlockConfig& b) { return b.mixer == MixerKind::Attention; });
  const BlockConfig* m = first_with(cfg, [](const BlockConfig& b) { return b.mixer == MixerKind::Mamba; });
  const BlockConfig* e = first_with(cfg, [](const BlockConfig& b) { return b.mlp == MlpKind::Moe; });
  if (!m) fail(cfg.name, ": a Jamba config needs Mamba blocks");
  const auto [ap, ao] = period_offset(cfg, [](const BlockConfig& b) { return b.mixer == MixerKind::Attention; }, "attention");
  const auto [ep, eo] = period_offset(cfg, [](const BlockConfig& b) { return b.mlp == MlpKind::Moe; }, "MoE");
  const MambaSpec& s = m->mamba;
  const BlockConfig& f = *first_with(cfg, [](const BlockConfig& b) { return b.mlp != MlpKind::None; });
  return {{"model_type", "jamba"}, {"architectures", {"JambaForCausalLM"}}, {"hidden_size", cfg.d_model},
          {"num_attention_heads", a ? a->attn.n_heads : 1}, {"num_key_value_heads", a ? a->attn.kv_heads() : 1},
          {"num_hidden_layers", cfg.n_blocks()}, {"intermediate_size", f.ffn.d_ff},
          {"hidden_act", to_string(f.ffn.act)}, {"rms_norm_eps", cfg.norm_eps},
          {"tie_word_embeddings", cfg.tie_embeddings}, {"vocab_size", cfg.vocab_size},
          {"num_experts", e ? e->ffn.n_experts : 1}, {"num_experts_per_tok", e ? e->ffn.top_k : 1},
          {"expert_layer_period", ep}, {"expert_layer_offset", eo}, {"attn_layer_period", ap},
          {"attn_layer_offset", ao}, {"mamba_d_state", s.d_state}, {"mamba_d_conv", s.d_conv},
          {"mamba_expand", s.d_inner / cfg.d_model}, {"mamba_dt_rank", s.dt_rank}, {"mamba_conv_bias", s.conv_bias},
          {"mamba_proj_bias", s.in_proj_bias}, {"max_position_embeddings", cfg.max_seq_len},
          {"use_mamba_kernels", false}, {"router_aux_loss_coef", 0.02}, {"output_router_logits", false},
          {"attention_dropout", 0.0}, {"initializer_range", 0.02}, {"dtype", "float32"}};
}

ModelConfig parse_back(const json& j, const std::string& family) {
  ConfigJson c{"config.json (" + family + ")", j};
  if (family == "zyphra-blackmamba") return parse_zyphra_config(c);
  if (family == "mamba-ssm") return parse_mamba_ssm_config(c);
  if (family == "hf-mamba") return parse_hf_mamba_config(c);
  if (family == "hf-gpt-neox") return parse_gpt_neox_config(c);
  if (family == "hf-mixtral") return parse_mixtral_config(c);
  if (family == "hf-jamba") return parse_jamba_config(c);
  if (family == "bmh") return parse_bmh_config(c);
  fail("unknown model family '", family,
       "' (zyphra-blackmamba, mamba-ssm, hf-mamba, hf-gpt-neox, hf-mixtral, hf-jamba, bmh)");
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
    else if (family == "hf-mixtral") j = mixtral_json(cfg);
    else if (family == "hf-jamba") j = jamba_json(cfg);
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
  for (const char* f : {"zyphra-blackmamba", "mamba-ssm", "hf-gpt-neox", "hf-mixtral", "hf-jamba"}) {
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
  const bool torch_layout =
      family == "zyphra-blackmamba" || family == "mamba-ssm" || family == "hf-mamba" || family == "hf-jamba";
  TensorMap out;
  for (const WeightSpec& w : expected_weights(cfg)) {
    auto it = canonical.find(w.name);
    if (it == canonical.end()) fail(dir, ": no tensor '", w.name, "' to save");
    Tensor t = it->second;
    if (t.shape() != w.shape) fail(dir, ": tensor '", w.name, "' is ", t.describe(), ", expected ", shape_str(w.shape));
    // torch.nn.Conv1d keeps its depthwise weight as [Di, 1, K].
    if (torch_layout && w.name.size() > 20 && w.name.substr(w.name.size() - 20) == ".mamba.conv1d.weight")
      t = t.reshaped({w.shape[0], 1, w.shape[1]});
    // Mixtral/Jamba keep q/k/v and an expert's w1/w3 (gate/up) apart on disk: split the fused rows back.
    const std::vector<WeightNaming::Part> parts = naming.parts(w.name);
    if (parts.size() == 1) {
      out[parts[0].key] = t;
      continue;
    }
    int64_t row = 0;
    for (const WeightNaming::Part& p : parts) {
      out[p.key] = rows_of(t, row, p.rows);
      row += p.rows;
    }
    if (row != w.shape[0]) fail(dir, ": tensor '", w.name, "' has ", w.shape[0], " rows, its parts ", row);
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
