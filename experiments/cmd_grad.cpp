// bmh grad: the loss and every parameter's gradient for input_ids, in the layout of the fixtures'
// grads.safetensors (PyTorch autograd through the official modules): input_ids, loss [1] and grad.<name> float32
// with <name> the parameter's name in the official module (tied embedding and head once, both uses summed).
#include <cstdio>
#include <map>
#include <regex>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/weight_names.h"
#include "experiments/command.h"
#include "experiments/model_options.h"
#include "experiments/route_io.h"

namespace bmh {
namespace {

struct GradArgs {
  ModelOptions model;
  std::string inputs, out;
};

// The official module's parameter name and shape for a canonical parameter: the family's checkpoint key
// (core/weight_names.cpp) without Zyphra's "model." wrapper, conv1d as nn.Conv1d stores it [Di, 1, K].
// transformers 5 names GPT-NeoX's head parameter lm_head.weight (its loader maps the checkpoint's embed_out).
std::pair<std::string, Shape> official_name(const ModelConfig& cfg, const std::string& canonical, const Shape& shape) {
  if (cfg.family == "preset") return {canonical, shape};
  if (cfg.family == "hf-gpt-neox" && canonical == "lm_head.weight") return {canonical, shape};
  WeightNaming n;
  n.family = cfg.family;
  n.source = cfg.name;
  n.cfg = &cfg;
  const std::string suffix = ".mamba.conv1d.weight";
  const bool conv = canonical.size() > suffix.size() && canonical.compare(canonical.size() - suffix.size(), suffix.size(), suffix) == 0;
  return {n.key(canonical), conv ? Shape{shape[0], 1, shape[1]} : shape};
}

// Writes grad.<official name> for every canonical gradient. Mixtral and Jamba differ from their checkpoint files:
// transformers 5 (conversion_mapping.py, modeling_mixtral.py MixtralExperts) holds an MoE block's experts as two
// stacked parameters, experts.gate_up_proj [E, 2F, d] (expert e's rows: w1 then w3, i.e. gate_proj then up_proj =
// our fc1) and experts.down_proj [E, d, F] (w2 = fc2), under model.layers.{i}.mlp. (Mixtral, which also renames
// block_sparse_moe.gate to mlp.gate) or model.layers.{i}.feed_forward. (Jamba). q/k/v and a dense MLP's
// gate/up are separate modules there, so those fused gradients are split back by rows (WeightNaming::parts).
void add_official_grads(const ModelConfig& cfg, const TensorMap& grads, TensorMap* out) {
  const bool llama_like = cfg.family == "hf-mixtral" || cfg.family == "hf-jamba";
  WeightNaming n;
  n.family = cfg.family;
  n.source = cfg.name;
  n.cfg = &cfg;
  std::map<std::string, std::pair<Shape, std::vector<float>>> stacked;
  static const std::regex expert(R"(blocks\.(\d+)\.moe\.experts\.(\d+)\.(fc1|fc2)\.(weight|bias))");
  for (const auto& [name, g] : grads) {
    std::smatch m;
    if (llama_like && std::regex_match(name, m, expert)) {
      if (m[4] == "bias") fail("bmh grad: ", name, ": ", cfg.family, " experts have no biases");
      const int i = std::stoi(m[1]), e = std::stoi(m[2]);
      const std::string key = "model.layers." + std::to_string(i) + (cfg.family == "hf-jamba" ? ".feed_forward." : ".mlp.") +
                              (m[3] == "fc1" ? "experts.gate_up_proj" : "experts.down_proj");
      auto& [shape, buf] = stacked[key];
      const int64_t E = cfg.blocks[i].ffn.n_experts, per = g.numel();
      if (buf.empty()) {
        shape = g.shape();
        shape.insert(shape.begin(), E);
        buf.assign(size_t(E * per), 0.0f);
      }
      const std::vector<float> v = g.to_f32();
      std::copy(v.begin(), v.end(), buf.begin() + e * per);
      continue;
    }
    std::vector<WeightNaming::Part> parts = llama_like ? n.parts(name) : std::vector<WeightNaming::Part>{};
    if (parts.size() > 1) {  // rows of the fused tensor, in order
      const std::vector<float> v = g.to_f32();
      const int64_t cols = g.numel() / g.dim(0);
      int64_t row = 0;
      for (const auto& p : parts) {
        out->emplace("grad." + p.key, Tensor::from_f32(std::vector<float>(v.begin() + row * cols, v.begin() + (row + p.rows) * cols),
                                                       {p.rows, cols}));
        row += p.rows;
      }
      if (row != g.dim(0)) fail("bmh grad: ", name, " has ", g.dim(0), " rows, its parts ", row);
      continue;
    }
    auto [key, shape] = official_name(cfg, name, g.shape());
    if (cfg.family == "hf-mixtral") key = std::regex_replace(key, std::regex(R"(\.block_sparse_moe\.gate\.)"), ".mlp.gate.");
    out->emplace("grad." + key, Tensor::from_f32(g.to_f32(), shape));
  }
  for (auto& [key, sv] : stacked) out->emplace("grad." + key, Tensor::from_f32(sv.second, sv.first));
}

void run_grad(const GradArgs& a) {
  const Tensor ids = read_input_ids(a.inputs);
  const ModelSpec spec = a.model.resolve();
  ModelConfig cfg;
  TensorMap weights;
  load_config_and_weights(spec, &cfg, &weights);
  check_input_ids(ids, cfg.vocab_size, a.inputs + ": input_ids");
  if (ids.dim(1) < 2) fail(a.inputs, ": input_ids ", shape_str(ids.shape()), " needs at least 2 tokens per row");
  auto model = make_trainable(cfg, weights, spec.backend, spec.dtype);
  weights.clear();
  LossAndGrad lg = model->loss_and_grad(ids);
  TensorMap out;
  out["input_ids"] = ids;
  out["loss"] = Tensor::from_f32({float(lg.loss)}, {1});
  add_official_grads(cfg, lg.grads, &out);
  write_safetensors(a.out, out);
  std::printf("wrote %s: loss %.6f, %zu gradients (%s)\n", a.out.c_str(), lg.loss, out.size() - 2,
              model->describe().c_str());
}

void add_grad_command(CLI::App& app) {
  auto args = std::make_shared<GradArgs>();
  auto* sub = app.add_subcommand("grad", "loss and exact gradient of every parameter for input_ids (cpu reference)");
  args->model.add_to(sub);
  sub->add_option("--inputs", args->inputs, "safetensors file with int64 input_ids [B, T], T >= 2")->required();
  sub->add_option("--out", args->out, "output safetensors: input_ids, loss [1], grad.<parameter name> float32")
      ->required();
  sub->callback([args] { run_grad(*args); });
}

const bool registered = register_command(&add_grad_command);

}  // namespace
}  // namespace bmh
