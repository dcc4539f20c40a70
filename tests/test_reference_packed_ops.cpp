// The packed (varlen) Mamba ops (reference/packed_ops.h) against the unpacked ops run on each sequence alone from a
// zero state: random inputs, sequences of 5, 1, 3, 9 and 2 rows (shorter and longer than the conv window), K = 4.
// Both do the same arithmetic in the same order, so they agree bit for bit in fp32 and fp64.
#include <gtest/gtest.h>

#include <random>

#include "core/error.h"
#include "reference/packed_ops.h"

namespace bmh::ref {
namespace {

template <class T> Mat<T> random_mat(std::mt19937_64& rng, Eigen::Index r, Eigen::Index c, double lo, double hi) {
  std::uniform_real_distribution<double> d(lo, hi);
  Mat<T> m(r, c);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = T(d(rng));
  return m;
}

template <class T> void check() {
  std::mt19937_64 rng(77);
  const std::vector<int> lens = {5, 1, 3, 9, 2};
  const int Di = 6, N = 4, K = 4;
  std::vector<int> seq_idx;
  for (size_t s = 0; s < lens.size(); ++s) seq_idx.insert(seq_idx.end(), size_t(lens[s]), int(s));
  const Eigen::Index L = Eigen::Index(seq_idx.size());
  Mat<T> x = random_mat<T>(rng, L, Di, -2, 2), w = random_mat<T>(rng, Di, K, -1, 1);
  Vec<T> b = random_mat<T>(rng, Di, 1, -0.5, 0.5);
  Mat<T> delta = random_mat<T>(rng, L, Di, -3, 1), Bm = random_mat<T>(rng, L, N, -1, 1), Cm = random_mat<T>(rng, L, N, -1, 1);
  Mat<T> z = random_mat<T>(rng, L, Di, -2, 2), A = -random_mat<T>(rng, Di, N, 0.1, 2).array().matrix();
  Vec<T> D = random_mat<T>(rng, Di, 1, -1, 1), dt_bias = random_mat<T>(rng, Di, 1, -1, 0.5);

  Mat<T> conv = causal_conv1d_silu_packed<T>(x, w, &b, seq_idx);
  Mat<T> scan = selective_scan_packed<T>(conv, delta, A, Bm, Cm, D, &z, dt_bias, seq_idx);
  Eigen::Index row = 0;
  for (int n : lens) {
    Mat<T> xs = x.middleRows(row, n), ds = delta.middleRows(row, n), zs = z.middleRows(row, n);
    Mat<T> bs = Bm.middleRows(row, n), cs = Cm.middleRows(row, n);
    Mat<T> conv_alone = causal_conv1d_silu<T>(xs, w, &b, Mat<T>::Zero(K - 1, Di));
    EXPECT_TRUE(Mat<T>(conv.middleRows(row, n)) == conv_alone) << "conv, sequence at row " << row;
    Mat<T> state = Mat<T>::Zero(Di, N);
    Mat<T> scan_alone = selective_scan<T>(conv_alone, ds, A, bs, cs, D, &zs, dt_bias, state);
    EXPECT_TRUE(Mat<T>(scan.middleRows(row, n)) == scan_alone) << "scan, sequence at row " << row;
    row += n;
  }
  // Packing matters: the same rows as one sequence give other values after the first boundary.
  std::vector<int> one(size_t(L), 0);
  EXPECT_FALSE(causal_conv1d_silu_packed<T>(x, w, &b, one) == conv);
  EXPECT_THROW(causal_conv1d_silu_packed<T>(x, w, &b, std::vector<int>(3, 0)), Error);
  std::vector<int> bad = seq_idx;
  bad[2] = 7;
  EXPECT_THROW(selective_scan_packed<T>(conv, delta, A, Bm, Cm, D, &z, dt_bias, bad), Error);
}

TEST(PackedOps, ConvAndScanEqualEachSequenceAloneFp32) { check<float>(); }
TEST(PackedOps, ConvAndScanEqualEachSequenceAloneFp64) { check<double>(); }

}  // namespace
}  // namespace bmh::ref
