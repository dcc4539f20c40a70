#include "core/weight_names.h"

#include <regex>

#include "core/error.h"

namespace bmh {

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

// Splits "blocks.{i}.rest" into i and rest; returns false for non-block names.
bool split_block(const std::string& c, int* index, std::string* rest) {
  if (!starts_with(c, "blocks.")) return false;
  size_t dot = c.find('.', 7);
  *index = std::stoi(c.substr(7, dot - 7));
  *rest = c.substr(dot + 1);
  return true;
}

std::string replace_prefix(const std::string& s, const std::string& from, const std::string& to) {
  return starts_with(s, from) ? to + s.substr(from.size()) : s;
}

// Zyphra (mamba_block.py, switch_mlp.py, mlp.py): decoder.layers.{i}.{norm,norm_moe,mixer,moe}.
std::string zyphra_key(const ModelConfig& cfg, const std::string& c) {
  if (c == "embed.weight") return "embedding.word_embeddings.weight";
  if (starts_with(c, "final_norm.")) return "decoder.final_layernorm." + c.substr(11);
  if (c == "lm_head.bias") return "output_layer.bias";
  int i;
  std::string r;
  if (!split_block(c, &i, &r)) return c;
  const BlockConfig& b = cfg.blocks[i];
  const std::string L = "decoder.layers." + std::to_string(i) + ".";
  // A block with an MLP and no mixer keeps its MLP under "mixer" and its norm under "norm" (MoEBlock); the
  // parallel block keeps them under "moe" and "norm_moe" (MambaBlockParallelMoe).
  const std::string mlp_module = b.mixer == MixerKind::None ? "mixer." : "moe.";
  const std::string mlp_norm = b.mixer == MixerKind::None ? "norm." : "norm_moe.";
  if (starts_with(r, "norm.")) return L + r;
  if (starts_with(r, "mlp_norm.")) return L + mlp_norm + r.substr(9);
  if (starts_with(r, "mamba.")) return L + "mixer." + r.substr(6);
  std::string m = r;
  m = replace_prefix(m, "mlp.", "");
  m = replace_prefix(m, "moe.experts.", "local_experts.");
  m = replace_prefix(m, "moe.router.", "router.");
  static const std::regex fc(R"(fc([12])\.)");
  m = std::regex_replace(m, fc, "linear_fc$1.");
  return L + mlp_module + m;
}

// state-spaces (mixer_seq_simple.py) and transformers (modeling_mamba.py) dense Mamba.
std::string mamba_key(const std::string& c, const std::string& embed) {
  if (c == "embed.weight") return embed;
  if (starts_with(c, "final_norm.")) return "backbone.norm_f." + c.substr(11);
  if (c == "lm_head.weight") return c;
  int i;
  std::string r;
  if (!split_block(c, &i, &r)) return c;
  const std::string L = "backbone.layers." + std::to_string(i) + ".";
  if (starts_with(r, "mamba.")) return L + "mixer." + r.substr(6);
  return L + r;  // norm.weight
}

// transformers GPT-NeoX (modeling_gpt_neox.py).
std::string neox_key(const std::string& c) {
  if (c == "embed.weight") return "gpt_neox.embed_in.weight";
  if (starts_with(c, "final_norm.")) return "gpt_neox.final_layer_norm." + c.substr(11);
  if (c == "lm_head.weight") return "embed_out.weight";
  int i;
  std::string r;
  if (!split_block(c, &i, &r)) return c;
  const std::string L = "gpt_neox.layers." + std::to_string(i) + ".";
  r = replace_prefix(r, "norm.", "input_layernorm.");
  r = replace_prefix(r, "mlp_norm.", "post_attention_layernorm.");
  r = replace_prefix(r, "attn.qkv.", "attention.query_key_value.");
  r = replace_prefix(r, "attn.dense.", "attention.dense.");
  r = replace_prefix(r, "mlp.fc1.", "mlp.dense_h_to_4h.");
  r = replace_prefix(r, "mlp.fc2.", "mlp.dense_4h_to_h.");
  return L + r;
}

// transformers Mixtral (modeling_mixtral.py) and Jamba (modeling_jamba.py): model.layers.{i}.*; q/k/v and the
// experts' w1/w3 (gate_proj/up_proj) stay separate on disk and are fused by parts() below.
std::string llama_like_key(const ModelConfig& cfg, const std::string& c) {
  const bool jamba = cfg.family == "hf-jamba";
  if (c == "embed.weight") return "model.embed_tokens.weight";
  if (starts_with(c, "final_norm.")) return (jamba ? "model.final_layernorm." : "model.norm.") + c.substr(11);
  if (c == "lm_head.weight") return c;
  int i;
  std::string r;
  if (!split_block(c, &i, &r)) return c;
  const std::string L = "model.layers." + std::to_string(i) + ".";
  const std::string ff = jamba ? "feed_forward." : "block_sparse_moe.";
  r = replace_prefix(r, "norm.", "input_layernorm.");
  r = replace_prefix(r, "mlp_norm.", jamba ? "pre_ff_layernorm." : "post_attention_layernorm.");
  r = replace_prefix(r, "attn.dense.", "self_attn.o_proj.");
  r = replace_prefix(r, "mamba.dt_norm.", "mamba.dt_layernorm.");
  r = replace_prefix(r, "mamba.b_norm.", "mamba.b_layernorm.");
  r = replace_prefix(r, "mamba.c_norm.", "mamba.c_layernorm.");
  r = replace_prefix(r, "moe.router.", jamba ? "feed_forward.router." : "block_sparse_moe.gate.");
  r = replace_prefix(r, "moe.experts.", ff + "experts.");
  r = replace_prefix(r, "mlp.", "feed_forward.");
  static const std::regex fc2(R"(\.fc2\.)");
  r = std::regex_replace(r, fc2, jamba ? ".down_proj." : ".w2.");
  return L + r;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::vector<WeightNaming::Part> WeightNaming::parts(const std::string& c) const {
  if (family != "hf-mixtral" && family != "hf-jamba") return {{key(c), 0}};
  int i;
  std::string r;
  if (!split_block(c, &i, &r)) return {{key(c), 0}};
  const BlockConfig& b = cfg->blocks[i];
  const std::string stem = key(c);  // ...attn.qkv.weight or ...fc1.weight, renamed up to the fused part
  if (r == "attn.qkv.weight") {
    const std::string L = prefix + "model.layers." + std::to_string(i) + ".self_attn.";
    const int64_t q = int64_t(b.attn.n_heads) * b.attn.head_dim, kv = int64_t(b.attn.kv_heads()) * b.attn.head_dim;
    return {{L + "q_proj.weight", q}, {L + "k_proj.weight", kv}, {L + "v_proj.weight", kv}};
  }
  if (ends_with(r, "fc1.weight")) {
    const std::string base = stem.substr(0, stem.size() - std::string("fc1.weight").size());
    const bool jamba = family == "hf-jamba";
    return {{base + (jamba ? "gate_proj.weight" : "w1.weight"), b.ffn.d_ff},
            {base + (jamba ? "up_proj.weight" : "w3.weight"), b.ffn.d_ff}};
  }
  return {{stem, 0}};
}

std::string WeightNaming::key(const std::string& c) const {
  std::string k;
  if (family == "zyphra-blackmamba") k = zyphra_key(*cfg, c);
  else if (family == "mamba-ssm") k = mamba_key(c, "backbone.embedding.weight");
  else if (family == "hf-mamba") k = mamba_key(c, "backbone.embeddings.weight");
  else if (family == "hf-gpt-neox") k = neox_key(c);
  else if (family == "hf-mixtral" || family == "hf-jamba") k = llama_like_key(*cfg, c);
  else k = c;  // presets use canonical names
  return prefix + k;
}

bool WeightNaming::shape_matches(const std::string& c, const Shape& stored, const Shape& expected) const {
  if (stored == expected) return true;
  if (c.size() > 20 && c.substr(c.size() - 20) == ".mamba.conv1d.weight")
    return stored.size() == 3 && stored[0] == expected[0] && stored[1] == 1 && stored[2] == expected[1];
  return false;
}

bool WeightNaming::droppable(const std::string& k) const {
  auto ends_with = [&](const std::string& s) { return k.size() >= s.size() && k.compare(k.size() - s.size(), s.size(), s) == 0; };
  if (family == "hf-gpt-neox")  // buffers older transformers saved with the weights
    return ends_with(".attention.bias") || ends_with(".attention.masked_bias") || ends_with("rotary_emb.inv_freq");
  // A tied head may still be saved (mamba_ssm saves lm_head.weight, which is the embedding).
  if (cfg->tie_embeddings) return k == prefix + "lm_head.weight" || k == prefix + "output_layer.weight";
  return false;
}

WeightNaming weight_naming(const ModelConfig& cfg, const Checkpoint& ckpt) {
  WeightNaming n;
  n.family = cfg.family;
  n.source = cfg.name;
  n.cfg = &cfg;
  // Zyphra saves {"model": state_dict}; accept a bare state dict too.
  if (cfg.family == "zyphra-blackmamba" && ckpt.tensors.count("model.embedding.word_embeddings.weight"))
    n.prefix = "model.";
  return n;
}

}  // namespace bmh
