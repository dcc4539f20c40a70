// Model-level GPU test helpers shared by test_cuda_model.cpp and test_cuda_variants.cpp: a scoped kernel-variant
// choice and seeded token ids.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
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

}  // namespace bmh::gpu_test
