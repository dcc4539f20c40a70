// bmh info: what a checkpoint or preset is — family, blocks, dtype, parameters total and active per token.
#include <cstdio>
#include <map>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/model_weights.h"
#include "core/presets.h"
#include "experiments/command.h"
#include "experiments/model_options.h"

namespace bmh {
namespace {

struct InfoArgs {
  ModelOptions model;
  bool verbose = false;
  bool list_presets = false;
};

std::string block_str(const BlockConfig& b) {
  std::string s = to_string(b.mixer);
  if (b.mlp != MlpKind::None) {
    s += b.parallel ? " || " : " -> ";
    s += b.mlp == MlpKind::Moe ? "moe(" + std::to_string(b.ffn.n_experts) + ", top-" + std::to_string(b.ffn.top_k) +
                                     (b.ffn.router == RouterKind::SoftmaxTopK ? (b.ffn.renormalize ? " softmax renorm" : " softmax") : "") + ")"
                               : std::string("dense");
  }
  return s;
}

void print_config(const ModelConfig& cfg) {
  std::printf("family      %s\n", cfg.family.c_str());
  std::printf("d_model     %d\nvocab       %d\nblocks      %d\n", cfg.d_model, cfg.vocab_size, cfg.n_blocks());
  std::printf("norms       %s%s eps %g; final %s%s eps %g\n", to_string(cfg.norm), cfg.norm_bias ? "+bias" : "",
              cfg.norm_eps, to_string(cfg.final_norm), cfg.final_norm_bias ? "+bias" : "", cfg.final_norm_eps);
  std::printf("head        %s%s\n", cfg.tie_embeddings ? "tied to embedding" : "untied", cfg.lm_head_bias ? " + bias" : "");
  for (int i = 0; i < cfg.n_blocks(); ++i) {
    const BlockConfig& b = cfg.blocks[i];
    std::printf("  block %-3d %-26s", i, block_str(b).c_str());
    if (b.mixer == MixerKind::Mamba)
      std::printf(" d_inner %d d_state %d d_conv %d dt_rank %d%s", b.mamba.d_inner, b.mamba.d_state, b.mamba.d_conv,
                  b.mamba.dt_rank, b.mamba.inner_norms ? " dt/B/C-norms" : "");
    if (b.mixer == MixerKind::Attention) {
      std::printf(" heads %d x %d rotary %d", b.attn.n_heads, b.attn.head_dim, b.attn.rotary_dim);
      if (b.attn.kv_heads() != b.attn.n_heads) std::printf(" kv-heads %d", b.attn.kv_heads());
      if (b.attn.sliding_window) std::printf(" window %d", b.attn.sliding_window);
    }
    if (b.mlp != MlpKind::None)
      std::printf(" ffn %d%s %s", b.ffn.d_ff, b.ffn.gated ? " gated" : "", to_string(b.ffn.act));
    std::printf("\n");
  }
  for (const auto& k : cfg.ignored_keys) std::printf("ignored     config key '%s' (the official loader never reads it)\n", k.c_str());
  ParamCount p = count_parameters(cfg);
  std::printf("parameters  %.3fM total, %.3fM active per token (embedding %.3fM)\n", p.total / 1e6, p.active / 1e6,
              p.embedding / 1e6);
}

void run_info(const InfoArgs& a) {
  if (a.list_presets) {
    for (const auto& n : preset_names()) {
      ParamCount p = count_parameters(preset_config(n));
      std::printf("%-26s %9.1fM total %9.1fM active\n", n.c_str(), p.total / 1e6, p.active / 1e6);
    }
    return;
  }
  ModelSpec s = a.model.resolve();
  if (s.dir.empty() == s.preset.empty()) fail("give --model DIR or --preset NAME (or --presets)");
  ModelConfig cfg = s.preset.empty() ? load_model_config(s.dir, s.config) : preset_config(s.preset);
  std::printf("model       %s\n", s.preset.empty() ? s.dir.c_str() : s.preset.c_str());
  print_config(cfg);
  if (!s.preset.empty()) return;
  Checkpoint ck = load_checkpoint_dir(s.dir);
  TensorMap w = canonicalize_weights(cfg, ck);
  std::map<std::string, int64_t> by_dtype;
  for (const auto& [name, t] : ck.tensors) by_dtype[dtype_name(t.dtype())] += t.numel();
  std::printf("weights    ");
  for (const auto& [d, n] : by_dtype) std::printf(" %s %.3fM", d.c_str(), n / 1e6);
  std::printf(" (%zu tensors, all shapes match the config)\n", ck.tensors.size());
  if (a.verbose)
    for (const auto& [name, t] : w) std::printf("  %-44s %s\n", name.c_str(), t.describe().c_str());
}

void add_info_command(CLI::App& app) {
  auto args = std::make_shared<InfoArgs>();
  auto* sub = app.add_subcommand("info", "print a model's family, blocks, dtype and parameter counts");
  args->model.add_to(sub, /*required=*/false);
  sub->add_flag("--verbose,-v", args->verbose, "list every tensor (canonical name, dtype, shape)");
  sub->add_flag("--presets", args->list_presets, "list the built-in presets");
  sub->callback([args] { run_info(*args); });
}

const bool registered = register_command(&add_info_command);

}  // namespace
}  // namespace bmh
