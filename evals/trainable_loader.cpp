// make_trainable and load_config_and_weights (declared in evals/model_loader.h).
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/model_weights.h"
#include "core/presets.h"
#include "evals/model_loader.h"
#include "reference/trainable_model.h"

namespace bmh {

std::unique_ptr<TrainableModel> make_trainable(const ModelConfig& cfg, const TensorMap& canonical_weights,
                                               const std::string& backend, const std::string& dtype) {
  if (backend == "cpu") return ref::make_reference_trainable(cfg, canonical_weights, dtype);
  fail("training runs on the cpu backend (the Eigen reference) only, not '", backend, "'");
}

void load_config_and_weights(const ModelSpec& spec, ModelConfig* cfg, TensorMap* weights) {
  if (spec.dir.empty() == spec.preset.empty()) fail("give exactly one of --model DIR or --preset NAME");
  if (!spec.preset.empty()) {
    *cfg = preset_config(spec.preset);
    if (spec.config.override_expert_act)
      for (auto& b : cfg->blocks)
        if (b.mlp != MlpKind::None) b.ffn.act = spec.config.expert_act;
    *weights = random_weights(*cfg, spec.seed, DType::F32);
  } else {
    *cfg = load_model_config(spec.dir, spec.config);
    *weights = canonicalize_weights(*cfg, load_checkpoint_dir(spec.dir));
  }
}

}  // namespace bmh
