#include "evals/model_loader.h"

#include <cstdio>

#include "core/checkpoint.h"
#include "core/hub_cache.h"
#include "core/error.h"
#include "core/model_weights.h"
#include "core/presets.h"
#include "core/weight_finite.h"
#include "evals/distributed.h"
#include "reference/model.h"
#if defined(BMH_HAVE_CUDA) && __has_include("kernels/cuda_model.h")
#include <cuda_runtime.h>

#include "kernels/cuda_model.h"
#define BMH_CUDA_BACKEND 1
#endif

namespace bmh {

std::string model_label(const ModelSpec& spec) {
  std::string what = spec.preset.empty() ? spec.dir : "preset " + spec.preset;
  return what + " (" + spec.backend + " " + spec.dtype + ")";
}

static std::unique_ptr<LanguageModel> load_model_with(const ModelSpec& spec);

#ifdef BMH_CUDA_BACKEND
// Under mpirun each rank of a node takes its own GPU: local rank i uses device i (more ranks than GPUs share
// them round-robin). CUDA_VISIBLE_DEVICES, if set, still decides which GPUs those are.
static void use_local_rank_gpu() {
  if (dist::size() == 1) return;
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n < 1)
    fail("rank ", dist::rank(), ": no CUDA device (", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices", ")");
  const int dev = dist::local_rank() % n;
  e = cudaSetDevice(dev);
  if (e != cudaSuccess) fail("rank ", dist::rank(), ": cudaSetDevice(", dev, "): ", cudaGetErrorString(e));
}
#endif

std::unique_ptr<LanguageModel> load_model(const ModelSpec& given) {
  if (given.dir.empty() == given.preset.empty()) fail("give exactly one of --model DIR or --preset NAME");
  const RouterPrecision router = parse_router_precision(given.router_precision);  // before any loading
  ModelSpec spec = given;
  spec.dir = resolve_model_dir(spec.dir);  // org/name[@revision] from the Hugging Face cache, offline
  std::unique_ptr<LanguageModel> m = load_model_with(spec);
  m->set_router_precision(router);
  return m;
}

std::unique_ptr<LanguageModel> load_model_with(const ModelSpec& spec) {
  ModelConfig cfg;
  TensorMap weights;
  if (!spec.preset.empty()) {
    cfg = preset_config(spec.preset);
    if (spec.config.override_expert_act)
      for (auto& b : cfg.blocks)
        if (b.mlp != MlpKind::None) b.ffn.act = spec.config.expert_act;
    // Presets on the GPU are generated in the compute dtype directly (halves host memory for 2.8B shapes).
    DType wd = spec.backend == "cuda" && spec.dtype == "bf16" ? DType::BF16
               : spec.backend == "cuda" && spec.dtype == "fp16" ? DType::F16 : DType::F32;
    weights = random_weights(cfg, spec.seed, wd);
  } else {
    cfg = load_model_config(spec.dir, spec.config);
    const Checkpoint ckpt = load_checkpoint_dir(spec.dir);
    weights = canonicalize_weights(cfg, ckpt);
    check_finite_weights(ckpt, spec.config.allow_nonfinite);  // after names and shapes: those errors come first
  }
  if (spec.verbose)
    for (const auto& [name, t] : weights) std::printf("  %-48s %s\n", name.c_str(), t.describe().c_str());
  if (spec.backend == "cpu") return ref::make_reference_model(cfg, weights, spec.dtype);
  if (spec.backend == "cuda") {
#ifdef BMH_CUDA_BACKEND
    use_local_rank_gpu();
    return make_cuda_model(cfg, weights, spec.dtype);
#else
    fail("this build has no CUDA backend (built without nvcc); use --backend cpu");
#endif
  }
  fail("unknown backend '", spec.backend, "' (cpu, cuda)");
}

}  // namespace bmh
