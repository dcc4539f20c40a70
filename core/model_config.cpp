#include "core/model_config.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/config_json.h"
#include "core/config_parsers.h"
#include "core/error.h"

namespace bmh {

const char* to_string(MixerKind k) {
  switch (k) {
    case MixerKind::None: return "none";
    case MixerKind::Mamba: return "mamba";
    case MixerKind::Attention: return "attention";
  }
  return "?";
}
const char* to_string(MlpKind k) {
  switch (k) {
    case MlpKind::None: return "none";
    case MlpKind::Dense: return "dense";
    case MlpKind::Moe: return "moe";
  }
  return "?";
}
const char* to_string(NormKind k) { return k == NormKind::RMSNorm ? "rmsnorm" : "layernorm"; }
const char* to_string(Activation a) {
  switch (a) {
    case Activation::GeluErf: return "gelu";
    case Activation::GeluTanh: return "gelu_tanh";
    case Activation::Silu: return "silu";
    case Activation::Relu: return "relu";
  }
  return "?";
}
const char* to_string(RouterKind r) { return r == RouterKind::SigmoidTop1 ? "sigmoid-top1" : "softmax-topk"; }

bool activation_from_string(const std::string& s, Activation* out) {
  // transformers ACT2FN names: "gelu" is the exact erf GELU; "gelu_new"/"gelu_fast"/"gelu_pytorch_tanh" tanh.
  if (s == "gelu") *out = Activation::GeluErf;
  else if (s == "gelu_new" || s == "gelu_fast" || s == "gelu_pytorch_tanh" || s == "gelu_tanh") *out = Activation::GeluTanh;
  else if (s == "silu" || s == "swish") *out = Activation::Silu;
  else if (s == "relu") *out = Activation::Relu;
  else return false;
  return true;
}

std::vector<int> ModelConfig::moe_blocks() const {
  std::vector<int> out;
  for (int i = 0; i < n_blocks(); ++i)
    if (blocks[i].is_moe()) out.push_back(i);
  return out;
}

ConfigJson read_config_json(const std::string& path) {
  ConfigJson c{path, read_json_file_bounded(path)};
  if (!c.j.is_object()) fail(path, ": expected a JSON object at the top level");
  return c;
}

ConfigJson parse_config_json(std::string_view text, const std::string& path) {
  ConfigJson c{path, parse_json_bounded(text, path)};
  if (!c.j.is_object()) fail(path, ": expected a JSON object at the top level");
  return c;
}

ModelConfig load_model_config(const std::string& dir, const ConfigOptions& opt) {
  return model_config_from_json(read_config_json(dir + "/config.json"), dir, opt);
}

ModelConfig model_config_from_json(const ConfigJson& c, const std::string& name, const ConfigOptions& opt) {
  ModelConfig cfg;
  std::string model_type = c.get_or<std::string>("model_type", "");
  if (c.has("mamba_moe_layers") || c.has("conv_dimension")) {
    cfg = parse_zyphra_config(c);
  } else if (model_type == "mamba") {
    cfg = parse_hf_mamba_config(c);
  } else if (model_type == "gpt_neox") {
    cfg = parse_gpt_neox_config(c);
  } else if (model_type == "mixtral") {
    cfg = parse_mixtral_config(c);
  } else if (model_type == "jamba") {
    cfg = parse_jamba_config(c);
  } else if (model_type == "bmh") {
    cfg = parse_bmh_config(c);
  } else if (model_type.empty() && c.has("d_model") && c.has("n_layer")) {
    cfg = parse_mamba_ssm_config(c);
  } else if (!model_type.empty()) {
    fail(c.path, ": model_type '", model_type, "' is not supported (supported: Zyphra BlackMamba, state-spaces mamba, ",
         "transformers mamba, gpt_neox, mixtral and jamba)");
  } else {
    fail(c.path, ": cannot tell the model family (no model_type, no mamba_moe_layers, no d_model/n_layer)");
  }
  cfg.name = name;
  if (opt.override_expert_act)
    for (auto& b : cfg.blocks)
      if (b.mlp != MlpKind::None) b.ffn.act = opt.expert_act;
  return cfg;
}

}  // namespace bmh
