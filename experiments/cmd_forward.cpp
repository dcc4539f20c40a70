// bmh forward: logits, routes and (optionally) hidden states for input_ids, named as the fixtures name them.
#include <cstdio>

#include "core/checkpoint.h"
#include "core/error.h"
#include "experiments/command.h"
#include "experiments/model_options.h"
#include "experiments/route_io.h"

namespace bmh {
namespace {

struct ForwardArgs {
  ModelOptions model;
  std::string inputs, out, force_routes;
  bool hidden = false;
};

void run_forward(const ForwardArgs& a) {
  const Tensor ids_in = read_input_ids(a.inputs);
  auto model = load_model(a.model.resolve());
  check_input_ids(ids_in, model->config().vocab_size, a.inputs + ": input_ids");
  ForwardOptions opt;
  opt.hidden_states = a.hidden;
  std::vector<std::pair<int, std::vector<int64_t>>> forced;
  if (!a.force_routes.empty()) {
    forced = read_forced_routes(a.force_routes, model->config());
    opt.force_routes = &forced;
  }
  ForwardOutput f = model->forward(ids_in, opt);
  TensorMap out;
  out["logits"] = f.logits;
  const int64_t B = ids_in.dim(0), T = ids_in.dim(1);
  add_routes(out, f.routes, B, T);
  for (size_t i = 0; i < f.hidden_states.size(); ++i) out["hidden_states." + std::to_string(i)] = f.hidden_states[i];
  write_safetensors(a.out, out);
  std::printf("wrote %s: logits %s, %zu routed blocks, %zu hidden states (%s)\n", a.out.c_str(),
              shape_str(f.logits.shape()).c_str(), f.routes.size(), f.hidden_states.size(), model->describe().c_str());
}

void add_forward_command(CLI::App& app) {
  auto args = std::make_shared<ForwardArgs>();
  auto* sub = app.add_subcommand("forward", "run a full forward pass: logits [B,T,V], routes, hidden states");
  args->model.add_to(sub);
  sub->add_option("--inputs", args->inputs, "safetensors file with int64 input_ids [B, T]")->required();
  sub->add_option("--out", args->out, "output safetensors (logits, route.{i}.*, hidden_states.{i})")->required();
  sub->add_flag("--hidden-states", args->hidden, "also write hidden_states.{i} as the fixtures define them");
  sub->add_option("--force-routes", args->force_routes,
                  "safetensors with route.{i}.expert [B, T] (top-1) or [B, T, k] (top-k) to use instead of the routers' choices");
  sub->callback([args] { run_forward(*args); });
}

const bool registered = register_command(&add_forward_command);

}  // namespace
}  // namespace bmh
