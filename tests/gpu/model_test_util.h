// Model-level GPU test helpers shared by test_cuda_model*.cpp and test_cuda_variants.cpp: a scoped kernel-variant
// choice, seeded token ids, a fixture's CUDA model and oracle outputs, and the relative error the tests bound.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/tensor.h"
#include "evals/model_loader.h"
#include "gpu_test_util.h"
#include "kernels/variants.h"

namespace bmh::gpu_test {

// The kernel-variant choice is process-wide (kernels/variants.h); the guard restores the previous one, whatever the
// test's outcome.
class KernelSetGuard {
 public:
  explicit KernelSetGuard(const std::string& spec) : saved_(cuda::kernel_variants()) { cuda::set_kernel_variants(spec); }
  ~KernelSetGuard() { cuda::kernel_variants() = saved_; }
  KernelSetGuard(const KernelSetGuard&) = delete;
  KernelSetGuard& operator=(const KernelSetGuard&) = delete;

 private:
  cuda::KernelVariants saved_;
};

// B x T ids in [0, V) from a 64-bit LCG (the same ids on every machine).
inline Tensor ids_for(int B, int T, int V, uint64_t seed) {
  std::vector<int64_t> v(size_t(B) * T);
  uint64_t x = seed;
  for (auto& id : v) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    id = int64_t((x >> 33) % uint64_t(V));
  }
  return Tensor::from_i64(v, {B, T});
}

// The shared fixtures (tests/fixtures/, made by the official implementations).
inline const std::vector<std::string> kFixtures = {"blackmamba-tiny", "blackmamba-tiny-variant", "mamba-tiny-ssm",
                                                   "mamba-tiny-hf", "pythia-tiny", "mixtral-tiny", "jamba-tiny"};

// The oracle outputs of a shared fixture (expected.safetensors).
inline TensorMap expected(const std::string& f) {
  return read_safetensors(fixture_dir(f) + "/expected.safetensors").tensors;
}

// A fixture on the CUDA backend in `dtype`.
inline std::unique_ptr<LanguageModel> load_fixture(const std::string& f, const std::string& dtype) {
  ModelSpec s;
  s.dir = fixture_dir(f);
  s.backend = "cuda";
  s.dtype = dtype;
  return load_model(s);
}

// Relative Frobenius error of a against b (same shape; a non-finite entry of a is infinite error).
inline double rel(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(shape_str(a.shape()), shape_str(b.shape()));
  std::vector<double> x = a.to_f64(), y = b.to_f64();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    if (!std::isfinite(x[i])) return INFINITY;
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += y[i] * y[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}
inline double rel(const std::vector<float>& a, const std::vector<double>& b) { return rel_err(a, b); }

}  // namespace bmh::gpu_test
