#include "experiments/model_options.h"

#include "core/error.h"
#include "core/hub_cache.h"

namespace bmh {

void ModelOptions::add_to(CLI::App* app, bool required) {
  auto* group = app->add_option_group("model", "which model to run");
  auto* m = group->add_option("--model", spec.dir,
                              "checkpoint directory as downloaded (config.json + weights), or a Hugging Face id "
                              "org/name[@revision] already in the local Hub cache ($HF_HUB_CACHE, $HF_HOME/hub, "
                              "~/.cache/huggingface/hub); bmh never downloads");
  auto* p = group->add_option("--preset", spec.preset, "published shape with seeded random weights (bmh info --presets)");
  m->excludes(p);
  if (required) group->require_option(1);
  app->add_option("--seed", spec.seed, "weight seed for --preset")->default_val(0);
  app->add_option("--backend", spec.backend, "cpu (Eigen reference) or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))->default_val("cpu");
  app->add_option("--dtype", spec.dtype, "cpu: fp32|fp64; cuda: fp32|bf16|fp16")
      ->check(CLI::IsMember({"fp32", "fp64", "bf16", "fp16"}))->default_val("fp32");
  app->add_option("--router-precision", spec.router_precision,
                  "router arithmetic: fp32 (exact) or model (as the released code run in the model dtype: logits and "
                  "gates rounded to bf16/fp16 on cuda; on cpu fp32/fp64 nothing to round); bf16|fp16 emulate that "
                  "dtype's routing on any backend (core/router.h)")
      ->check(CLI::IsMember({"fp32", "model", "bf16", "fp16"}))->default_val("fp32");
  app->add_option("--expert-act", expert_act,
                  "override the MLP/expert gate activation: gelu (Zyphra's code) or silu (the paper's SwiGLU)")
      ->check(CLI::IsMember({"gelu", "silu"}));
}

ModelSpec ModelOptions::resolve() const {
  ModelSpec s = spec;
  s.dir = resolve_model_dir(s.dir);  // a Hub id -> its cached snapshot (core/hub_cache.h)
  if (!expert_act.empty()) {
    s.config.override_expert_act = true;
    activation_from_string(expert_act, &s.config.expert_act);
  }
  return s;
}

}  // namespace bmh
