// bmh flops: analytic FLOPs per token by cost term, parameters, and memory vs context of a preset or checkpoint
// config (core/flops.h states the conventions). Needs no weights.
#include <cstdio>

#include "core/error.h"
#include "core/flops.h"
#include "core/presets.h"
#include "experiments/command.h"
#include "experiments/model_options.h"

namespace bmh {
namespace {

struct FlopsArgs {
  ModelOptions model;
  int64_t context = 2048;
  std::vector<int64_t> memory_contexts = {2048, 8192, 32768, 131072};
  int weight_bytes = 2, state_bytes = 2;
};

void run_flops(const FlopsArgs& a) {
  ModelSpec s = a.model.resolve();
  if (s.dir.empty() == s.preset.empty()) fail("give --model DIR or --preset NAME");
  ModelConfig cfg = s.preset.empty() ? load_model_config(s.dir, s.config) : preset_config(s.preset);
  const int64_t T = a.context;
  ModelFlops seq = flops_sequence(cfg, T);
  ModelFlops dec = flops_per_token(cfg, T);
  std::printf("model %s: %d blocks, d_model %d, vocab %d\n", s.preset.empty() ? s.dir.c_str() : s.preset.c_str(),
              cfg.n_blocks(), cfg.d_model, cfg.vocab_size);
  std::printf("\nper token, sequence of %lld tokens (causal mean):\n", static_cast<long long>(T));
  std::printf("  %-22s %-17s %14s %14s %7s\n", "term", "kind", "MACs", "FLOPs", "share");
  for (const auto& t : seq.by_term())
    std::printf("  %-22s %-17s %14.4g %14.4g %6.2f%%\n", t.name.c_str(), t.macs > 0 ? to_string(t.kind) : "elementwise", t.macs / double(T),
                t.flops() / double(T), 100 * t.flops() / seq.flops());
  std::printf("  %-22s %-17s %14.4g %14.4g\n", "total", "", seq.macs() / double(T), seq.flops() / double(T));
  std::printf("forward  %.4g FLOPs/token (prefill mean), %.4g FLOPs for the token at context %lld (decode)\n",
              seq.flops() / double(T), dec.flops(), static_cast<long long>(T));
  std::printf("training %.4g FLOPs/token (3 x forward)\n", 3 * seq.flops() / double(T));
  ParamBreakdown p = param_breakdown(cfg);
  std::printf("\nparameters %.4gM total, %.4gM active (embedding %.4gM, head %.4gM, mixers %.4gM, dense MLP %.4gM, "
              "MoE %.4gM total / %.4gM active)\n",
              p.total / 1e6, p.active / 1e6, p.embedding / 1e6, p.head / 1e6, p.mixer / 1e6, p.mlp_dense / 1e6,
              p.moe_total / 1e6, p.moe_active / 1e6);
  std::printf("\nmemory per sequence (%d-byte weights, %d-byte state):\n", a.weight_bytes, a.state_bytes);
  std::printf("  %10s %14s %16s %14s\n", "context", "weights MiB", "Mamba state MiB", "KV cache MiB");
  for (int64_t c : a.memory_contexts) {
    MemoryEstimate m = memory_estimate(cfg, c, 1, a.weight_bytes, a.state_bytes);
    std::printf("  %10lld %14.2f %16.3f %14.3f\n", static_cast<long long>(c), m.weights / 1048576.0,
                m.mamba_state / 1048576.0, m.kv_cache / 1048576.0);
  }
}

void add_flops_command(CLI::App& app) {
  auto args = std::make_shared<FlopsArgs>();
  auto* sub = app.add_subcommand("flops", "analytic FLOPs per token (by term), parameters and memory of a model");
  args->model.add_to(sub, /*required=*/true);
  sub->add_option("--context", args->context, "sequence length for the per-token costs")->default_val(2048);
  sub->add_option("--memory-contexts", args->memory_contexts, "context lengths for the memory table");
  sub->add_option("--weight-bytes", args->weight_bytes, "bytes per weight (2: bf16)")->default_val(2);
  sub->add_option("--state-bytes", args->state_bytes, "bytes per state / KV element")->default_val(2);
  sub->callback([args] { run_flops(*args); });
}

const bool registered = register_command(&add_flops_command);

}  // namespace
}  // namespace bmh
