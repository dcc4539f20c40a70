// Helpers for the GPU tests: skip without a device, fixture paths that also work from a copied checkout
// (BMH_TEST_DIR in the environment overrides the compiled-in path), tolerances by dtype.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/device.h"

#define BMH_REQUIRE_GPU()                                                              \
  do {                                                                                 \
    if (!::bmh::cuda::device_available()) GTEST_SKIP() << "no CUDA device available"; \
  } while (0)

namespace bmh::gpu_test {

inline std::string test_dir() {
  const char* e = std::getenv("BMH_TEST_DIR");
  return e && *e ? std::string(e) : std::string(BMH_TEST_DIR);
}
inline std::string fixture_dir(const std::string& name) { return test_dir() + "/fixtures/" + name; }

// Relative Frobenius tolerance for an output rounded to dtype `t` once at the end (fp32 arithmetic inside):
// bf16 keeps 8 significant bits (unit roundoff 2^-9 = 2e-3 per element), fp16 11 bits (2^-12 = 2.4e-4); fp32
// results differ from an fp64 reference by summation order only (~1e-7 x sqrt(length)).
inline double tol_for(bmh::cuda::Dt t) {
  switch (t) {
    case bmh::cuda::Dt::F32: return 1e-5;
    case bmh::cuda::Dt::BF16: return 1e-2;
    case bmh::cuda::Dt::F16: return 2e-3;
  }
  return 0;
}

// ||a - b|| / ||b||; any NaN in a (an unwritten, poisoned element) makes it infinite.
inline double rel_err(const std::vector<float>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

}  // namespace bmh::gpu_test
