// The harness's own config.json ("model_type": "bmh"): a ModelConfig written out field by field, for models no
// family's layout can hold (the paper's transformer baselines: GPT-NeoX attention in BlackMamba's RMSNorm block
// list, with or without switch MLPs). Its weights are safetensors under canonical names (core/model_weights.h).
// Every ModelConfig field that changes the computation is written (train/family_layout.cpp compares configs
// through this JSON); the fields added with Mixtral/Jamba (grouped heads, sliding window, renormalisation, Mamba
// inner norms) are optional on reading, with the defaults the older files meant.
#include "core/config_parsers.h"

namespace bmh {

namespace {

using json = nlohmann::json;

NormKind norm_of(const ConfigJson& c, const std::string& key) {
  const std::string s = c.get<std::string>(key);
  if (s == "rmsnorm") return NormKind::RMSNorm;
  if (s == "layernorm") return NormKind::LayerNorm;
  fail(c.path, ": ", key, " '", s, "' is not rmsnorm or layernorm");
}

template <class E>
E enum_of(const ConfigJson& c, const std::string& key, std::initializer_list<E> values) {
  const std::string s = c.get<std::string>(key);
  std::string known;
  for (E v : values) {
    if (s == to_string(v)) return v;
    known += std::string(known.empty() ? "" : ", ") + to_string(v);
  }
  fail(c.path, ": ", key, " '", s, "' is not one of ", known);
}

}  // namespace

ModelConfig parse_bmh_config(const ConfigJson& c) {
  c.check_keys({"model_type", "d_model", "vocab_size", "max_seq_len", "norm", "norm_bias", "norm_eps", "final_norm",
                "final_norm_bias", "final_norm_eps", "tie_embeddings", "lm_head_bias", "blocks"},
               {"name", "torch_dtype"}, "bmh");
  ModelConfig cfg;
  cfg.family = "bmh";
  cfg.d_model = c.get<int>("d_model");
  cfg.vocab_size = c.get<int>("vocab_size");
  cfg.max_seq_len = c.get_or<int>("max_seq_len", 2048);
  cfg.norm = norm_of(c, "norm");
  cfg.norm_bias = c.get<bool>("norm_bias");
  cfg.norm_eps = c.get<double>("norm_eps");
  cfg.final_norm = norm_of(c, "final_norm");
  cfg.final_norm_bias = c.get<bool>("final_norm_bias");
  cfg.final_norm_eps = c.get<double>("final_norm_eps");
  cfg.tie_embeddings = c.get<bool>("tie_embeddings");
  cfg.lm_head_bias = c.get<bool>("lm_head_bias");
  if (cfg.d_model <= 0 || cfg.vocab_size <= 0) fail(c.path, ": d_model and vocab_size must be positive");
  const json& blocks = c.j.at("blocks");
  if (!blocks.is_array() || blocks.empty()) fail(c.path, ": blocks must be a non-empty list");
  for (size_t i = 0; i < blocks.size(); ++i) {
    const std::string where = c.path + " blocks[" + std::to_string(i) + "]";
    ConfigJson b{where, blocks[i]};
    b.check_keys({"mixer", "mlp", "parallel", "mamba", "attention", "ffn"}, {}, "bmh block");
    BlockConfig bc;
    bc.mixer = enum_of(b, "mixer", {MixerKind::None, MixerKind::Mamba, MixerKind::Attention});
    bc.mlp = enum_of(b, "mlp", {MlpKind::None, MlpKind::Dense, MlpKind::Moe});
    bc.parallel = b.get_or<bool>("parallel", false);
    if (bc.mixer == MixerKind::Mamba) {
      ConfigJson m{where + " mamba", b.j.at("mamba")};
      m.check_keys({"d_inner", "d_state", "d_conv", "dt_rank", "in_proj_bias", "out_proj_bias", "conv_bias",
                    "inner_norms", "inner_norm_eps"}, {}, "bmh mamba");
      bc.mamba = {m.get<int>("d_inner"), m.get<int>("d_state"), m.get<int>("d_conv"), m.get<int>("dt_rank"),
                  m.get<bool>("in_proj_bias"), m.get<bool>("out_proj_bias"), m.get<bool>("conv_bias")};
      bc.mamba.inner_norms = m.get_or<bool>("inner_norms", false);
      bc.mamba.inner_norm_eps = m.get_or<double>("inner_norm_eps", bc.mamba.inner_norm_eps);
    } else if (bc.mixer == MixerKind::Attention) {
      ConfigJson a{where + " attention", b.j.at("attention")};
      a.check_keys({"n_heads", "head_dim", "rotary_dim", "rope_theta", "qkv_bias", "out_bias", "n_kv_heads",
                    "grouped_qkv", "sliding_window"}, {}, "bmh attention");
      bc.attn = {a.get<int>("n_heads"), a.get<int>("head_dim"), a.get<int>("rotary_dim"), a.get<double>("rope_theta"),
                 a.get<bool>("qkv_bias"), a.get<bool>("out_bias")};
      bc.attn.n_kv_heads = a.get_or<int>("n_kv_heads", 0);
      bc.attn.grouped_qkv = a.get_or<bool>("grouped_qkv", false);
      bc.attn.sliding_window = a.get_or<int>("sliding_window", 0);
      if (bc.attn.n_kv_heads < 0 || (bc.attn.n_kv_heads > 0 && bc.attn.n_heads % bc.attn.n_kv_heads) ||
          bc.attn.sliding_window < 0)
        fail(where, ": n_kv_heads ", bc.attn.n_kv_heads, " must divide n_heads ", bc.attn.n_heads,
             " and sliding_window ", bc.attn.sliding_window, " be >= 0");
      if (bc.attn.n_heads * bc.attn.head_dim != cfg.d_model)
        fail(where, ": n_heads * head_dim = ", bc.attn.n_heads * bc.attn.head_dim, " != d_model ", cfg.d_model);
    }
    if (bc.mlp != MlpKind::None) {
      ConfigJson f{where + " ffn", b.j.at("ffn")};
      f.check_keys({"d_ff", "gated", "act", "bias", "n_experts", "top_k", "router", "router_bias", "renormalize"}, {},
                   "bmh ffn");
      bc.ffn.d_ff = f.get<int>("d_ff");
      bc.ffn.gated = f.get<bool>("gated");
      const std::string act = f.get<std::string>("act");
      if (!activation_from_string(act, &bc.ffn.act)) fail(where, ": unknown act '", act, "'");
      bc.ffn.bias = f.get<bool>("bias");
      if (bc.mlp == MlpKind::Moe) {
        bc.ffn.n_experts = f.get<int>("n_experts");
        bc.ffn.top_k = f.get<int>("top_k");
        bc.ffn.router = enum_of(f, "router", {RouterKind::SigmoidTop1, RouterKind::SoftmaxTopK});
        bc.ffn.router_bias = f.get<bool>("router_bias");
        bc.ffn.renormalize = f.get_or<bool>("renormalize", false);
        if (bc.ffn.n_experts < 1 || bc.ffn.top_k < 1 || bc.ffn.top_k > bc.ffn.n_experts)
          fail(where, ": n_experts ", bc.ffn.n_experts, ", top_k ", bc.ffn.top_k);
      }
    }
    cfg.blocks.push_back(bc);
  }
  return cfg;
}

json bmh_config_json(const ModelConfig& cfg) {
  json j = {{"model_type", "bmh"}, {"name", cfg.name}, {"d_model", cfg.d_model}, {"vocab_size", cfg.vocab_size},
            {"max_seq_len", cfg.max_seq_len}, {"norm", to_string(cfg.norm)}, {"norm_bias", cfg.norm_bias},
            {"norm_eps", cfg.norm_eps}, {"final_norm", to_string(cfg.final_norm)},
            {"final_norm_bias", cfg.final_norm_bias}, {"final_norm_eps", cfg.final_norm_eps},
            {"tie_embeddings", cfg.tie_embeddings}, {"lm_head_bias", cfg.lm_head_bias}};
  json blocks = json::array();
  for (const auto& b : cfg.blocks) {
    json o = {{"mixer", to_string(b.mixer)}, {"mlp", to_string(b.mlp)}, {"parallel", b.parallel}};
    if (b.mixer == MixerKind::Mamba) {
      const MambaSpec& m = b.mamba;
      o["mamba"] = {{"d_inner", m.d_inner}, {"d_state", m.d_state}, {"d_conv", m.d_conv}, {"dt_rank", m.dt_rank},
                    {"in_proj_bias", m.in_proj_bias}, {"out_proj_bias", m.out_proj_bias}, {"conv_bias", m.conv_bias},
                    {"inner_norms", m.inner_norms}};
      if (m.inner_norms) o["mamba"]["inner_norm_eps"] = m.inner_norm_eps;  // unused otherwise
    } else if (b.mixer == MixerKind::Attention) {
      const AttentionSpec& a = b.attn;
      o["attention"] = {{"n_heads", a.n_heads}, {"head_dim", a.head_dim}, {"rotary_dim", a.rotary_dim},
                        {"rope_theta", a.rope_theta}, {"qkv_bias", a.qkv_bias}, {"out_bias", a.out_bias},
                        {"n_kv_heads", a.kv_heads()}, {"grouped_qkv", a.grouped_qkv},
                        {"sliding_window", a.sliding_window}};
    }
    if (b.mlp != MlpKind::None) {
      const MlpSpec& f = b.ffn;
      o["ffn"] = {{"d_ff", f.d_ff}, {"gated", f.gated}, {"act", to_string(f.act)}, {"bias", f.bias}};
      if (b.mlp == MlpKind::Moe) {
        o["ffn"]["n_experts"] = f.n_experts;
        o["ffn"]["top_k"] = f.top_k;
        o["ffn"]["router"] = to_string(f.router);
        o["ffn"]["router_bias"] = f.router_bias;
        o["ffn"]["renormalize"] = f.renormalize;
      }
    }
    blocks.push_back(o);
  }
  j["blocks"] = blocks;
  return j;
}

}  // namespace bmh
