// bmh routing: per MoE layer, how many tokens route differently with exact (fp32) routing and with the model
// dtype's routing (--router-precision model|bf16|fp16), and how many ties of equal gate values the model-dtype
// mode resolved by index (Zyphra's bf16 sigmoid saturates to exactly 1.0; torch.max then takes the first expert).
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/tokenizer.h"
#include "evals/distributed.h"
#include "evals/router_precision.h"
#include "experiments/command.h"
#include "experiments/model_options.h"
#include "experiments/route_io.h"

namespace bmh {
namespace {

struct RoutingArgs {
  ModelOptions model;
  std::string inputs, text, tokenizer, out;
  int seq_len = 128, sequences = 8, batch = 4;
};

void run_routing(RoutingArgs& a) {
  if (a.inputs.empty() == a.text.empty()) fail("give exactly one of --inputs FILE and --text FILE");
  ModelSpec spec = a.model.resolve();
  RouterPrecision mode = parse_router_precision(spec.router_precision);
  if (!mode.model_dtype) mode = parse_router_precision("model");  // compare fp32 with the model dtype by default
  std::vector<Tensor> batches;
  if (!a.inputs.empty()) {
    batches.push_back(read_input_ids(a.inputs));
  } else {
    std::ifstream in(a.text, std::ios::binary);
    if (!in) fail(a.text, ": cannot open");
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::vector<int32_t> ids = Tokenizer::load(a.tokenizer.empty() ? default_tokenizer_path() : a.tokenizer).encode(s);
    const int64_t n = std::min<int64_t>(a.sequences, int64_t(ids.size()) / a.seq_len);
    if (n < 1) fail(a.text, ": ", ids.size(), " tokens, fewer than one --seq-len ", a.seq_len, " window");
    for (int64_t b0 = 0; b0 < n; b0 += a.batch) {
      const int64_t B = std::min<int64_t>(a.batch, n - b0);
      std::vector<int64_t> v(ids.begin() + b0 * a.seq_len, ids.begin() + (b0 + B) * a.seq_len);
      batches.push_back(Tensor::from_i64(v, {B, a.seq_len}));
    }
  }
  auto model = load_model(spec);
  RouterPrecisionComparison cmp(*model, mode);
  for (const Tensor& t : batches) check_input_ids(t, model->config().vocab_size, "input_ids");
  // Under mpirun the batches are shared out by tokens (each batch is routed alone, so the sums of their counts
  // are the one-process counts exactly); rank 0 prints and writes. One --inputs batch runs on rank 0.
  std::vector<int64_t> cost;
  for (const Tensor& t : batches) cost.push_back(t.numel());
  const std::vector<int> owner = dist::assign_by_tokens(cost, dist::size());
  for (size_t i = 0; i < batches.size(); ++i)
    if (owner[i] == dist::rank()) cmp.add(batches[i]);
  std::vector<PrecisionLayerDiff> layers = cmp.layers();
  std::vector<int64_t> sums;
  for (const PrecisionLayerDiff& l : layers) sums.insert(sums.end(), {l.tokens, l.differ, l.ties_model, l.ties_exact});
  dist::allreduce_sum(sums);
  for (size_t l = 0; l < layers.size(); ++l) {
    layers[l].tokens = sums[4 * l];
    layers[l].differ = sums[4 * l + 1];
    layers[l].ties_model = sums[4 * l + 2];
    layers[l].ties_exact = sums[4 * l + 3];
  }
  if (!dist::is_root()) return;
  std::printf("%s: exact (fp32) routing vs %s, end to end\n", model->describe().c_str(), mode.describe().c_str());
  std::printf("%6s %8s %8s %8s %12s %12s\n", "block", "tokens", "differ", "differ%", "ties(model)", "ties(fp32)");
  nlohmann::json j = nlohmann::json::array();
  for (const auto& l : layers) {
    std::printf("%6d %8lld %8lld %7.1f%% %12lld %12lld\n", l.block, (long long)l.tokens, (long long)l.differ,
                l.tokens ? 100.0 * double(l.differ) / double(l.tokens) : 0.0, (long long)l.ties_model,
                (long long)l.ties_exact);
    j.push_back({{"block", l.block}, {"tokens", l.tokens}, {"differ", l.differ}, {"ties_model", l.ties_model},
                 {"ties_fp32", l.ties_exact}});
  }
  if (!a.out.empty()) {
    const std::string tmp = a.out + ".tmp";
    std::ofstream(tmp) << nlohmann::json{{"model", model->describe()}, {"mode", mode.describe()}, {"layers", j}}.dump(1);
    std::rename(tmp.c_str(), a.out.c_str());
  }
}

void add_routing_command(CLI::App& app) {
  auto args = std::make_shared<RoutingArgs>();
  auto* sub = app.add_subcommand("routing", "per MoE layer: routes that differ between exact (fp32) and model-dtype "
                                            "router arithmetic, and the ties the model dtype resolved");
  args->model.add_to(sub);
  sub->add_option("--inputs", args->inputs, "safetensors with int64 input_ids [B, T]");
  sub->add_option("--text", args->text, "plain text, tokenized and cut into --seq-len windows");
  sub->add_option("--tokenizer", args->tokenizer, "tokenizer.json (default: the bundled GPT-NeoX-20B one)");
  sub->add_option("--seq-len", args->seq_len, "tokens per window of --text")->default_val(128)->check(CLI::PositiveNumber);
  sub->add_option("--sequences", args->sequences, "windows of --text")->default_val(8)->check(CLI::PositiveNumber);
  sub->add_option("--batch", args->batch, "windows per forward")->default_val(4)->check(CLI::PositiveNumber);
  sub->add_option("--out", args->out, "also write the table as JSON");
  sub->callback([args] { run_routing(*args); });
}

const bool registered = register_command(&add_routing_command);

}  // namespace
}  // namespace bmh
