// Shared helpers for the tests: fixture paths, tolerances by relative Frobenius norm, random inputs.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/tensor.h"

namespace bmh::test {

inline std::string fixture_dir(const std::string& name) { return std::string(BMH_TEST_DIR) + "/fixtures/" + name; }

inline TensorMap expected(const std::string& fixture) {
  return read_safetensors(fixture_dir(fixture) + "/expected.safetensors").tensors;
}

// ||a - b||_F / ||b||_F over all elements.
inline double rel_frobenius(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}
inline double rel_frobenius(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(shape_str(a.shape()), shape_str(b.shape()));
  return rel_frobenius(a.to_f64(), b.to_f64());
}

// Slice [b, t, :] rows of a [B, T, V] tensor as doubles.
inline std::vector<double> row(const Tensor& t, int64_t b, int64_t s) {
  const int64_t T = t.dim(1), V = t.dim(2);
  std::vector<double> all = t.to_f64();
  return std::vector<double>(all.begin() + (b * T + s) * V, all.begin() + (b * T + s + 1) * V);
}

inline Tensor random_ids(int64_t B, int64_t T, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> d(0, vocab - 1);
  std::vector<int64_t> v(B * T);
  for (auto& x : v) x = d(rng);
  return Tensor::from_i64(v, {B, T});
}

}  // namespace bmh::test
