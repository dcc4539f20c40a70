// Helpers for the GPU tests: skip without a device, fixture paths that also work from a copied checkout
// (BMH_TEST_DIR in the environment overrides the compiled-in path), tolerances by dtype.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/device.h"

// Skips without a device, unless BMH_REQUIRE_GPU=1 (set by scripts/gpu_check.sh) makes that a failure.
#define BMH_REQUIRE_GPU()                                                                        \
  do {                                                                                           \
    if (!::bmh::cuda::device_available()) {                                                      \
      const char* req = std::getenv("BMH_REQUIRE_GPU");                                          \
      if (req && std::string(req) == "1") FAIL() << "no CUDA device, and BMH_REQUIRE_GPU=1";     \
      GTEST_SKIP() << "no CUDA device available";                                                \
    }                                                                                            \
  } while (0)

namespace bmh::gpu_test {

inline std::string test_dir() {
  const char* e = std::getenv("BMH_TEST_DIR");
  return e && *e ? std::string(e) : std::string(BMH_TEST_DIR);
}
inline std::string fixture_dir(const std::string& name) { return test_dir() + "/fixtures/" + name; }

// Unit roundoff u of each storage dtype (round to nearest): 2^-8 for bf16 (8 significant bits), 2^-11 for fp16
// (11 bits), 2^-24 for fp32. Tolerances are c * u with c stated per op where it is used.
inline double unit_roundoff(bmh::cuda::Dt t) {
  switch (t) {
    case bmh::cuda::Dt::F32: return std::ldexp(1.0, -24);
    case bmh::cuda::Dt::BF16: return std::ldexp(1.0, -8);
    case bmh::cuda::Dt::F16: return std::ldexp(1.0, -11);
  }
  return 0;
}

// Relative Frobenius tolerance for an output rounded to dtype `t` at the end of fp32 arithmetic: a few u for
// bf16/fp16 (2.6 u bf16 = 1e-2, 4.1 u fp16 = 2e-3); fp32 results differ from an fp64 reference by summation order
// only (~1e-7 x sqrt(length) = 168 u at most, so 1e-5).
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
