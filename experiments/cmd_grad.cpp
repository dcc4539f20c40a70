// bmh grad: the loss and every parameter's gradient for input_ids, in the layout of the fixtures'
// grads.safetensors (PyTorch autograd through the official modules): input_ids, loss [1] and grad.<name> float32
// with <name> the parameter's name in the official module (tied embedding and head once, both uses summed).
#include <cstdio>

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
  for (const auto& [name, g] : lg.grads) {
    auto [key, shape] = official_name(cfg, name, g.shape());
    out["grad." + key] = Tensor::from_f32(g.to_f32(), shape);
  }
  write_safetensors(a.out, out);
  std::printf("wrote %s: loss %.6f, %zu gradients (%s)\n", a.out.c_str(), lg.loss, lg.grads.size(),
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
