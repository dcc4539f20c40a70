// bmh generate: greedy decoding through the recurrent path (prefill, then one token a step).
#include <cstdio>

#include "core/checkpoint.h"
#include "core/error.h"
#include "experiments/command.h"
#include "experiments/model_options.h"
#include "experiments/output_paths.h"
#include "experiments/route_io.h"

namespace bmh {
namespace {

struct GenerateArgs {
  ModelOptions model;
  std::string inputs, out;
  int max_new = 16;
};

void run_generate(const GenerateArgs& a) {
  check_output_not_input("--out", a.out, {a.inputs, a.model.spec.dir});
  const Tensor ids_in = read_input_ids(a.inputs);
  auto model = load_model(a.model.resolve());
  check_input_ids(ids_in, model->config().vocab_size, a.inputs + ": input_ids");
  check_sequence_bounds(model->config(), ids_in.dim(0), ids_in.dim(1), a.max_new, a.inputs + ": input_ids");
  Tensor logits;
  Tensor ids = generate_greedy(*model, ids_in, a.max_new, &logits);
  write_safetensors(a.out, {{"generated_ids", ids}, {"generated_logits", logits}});
  std::printf("wrote %s: generated_ids %s (%s)\n", a.out.c_str(), shape_str(ids.shape()).c_str(),
              model->describe().c_str());
}

void add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  auto* sub = app.add_subcommand("generate", "greedy decoding through the recurrent (state / KV cache) path");
  args->model.add_to(sub);
  sub->add_option("--inputs", args->inputs, "safetensors file with int64 input_ids [B, T] (the prompts)")->required();
  sub->add_option("--max-new-tokens", args->max_new, "tokens to generate")->default_val(16)->check(CLI::NonNegativeNumber);
  sub->add_option("--out", args->out, "output safetensors: generated_ids [B,T+N], generated_logits [B,N,V]")->required();
  sub->callback([args] { run_generate(*args); });
}

const bool registered = register_command(&add_generate_command);

}  // namespace
}  // namespace bmh
