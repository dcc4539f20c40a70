// Packed (varlen) sequence ops (reference/packed_ops.h), written as plainly as their unpacked forms in ops.cpp.
#include "reference/packed_ops.h"

#include <cmath>

#include "core/error.h"

namespace bmh::ref {

static void check_seq_idx(const std::vector<int>& seq_idx, Eigen::Index rows, const char* what) {
  if (Eigen::Index(seq_idx.size()) != rows)
    fail(what, ": seq_idx has ", seq_idx.size(), " entries for ", rows, " rows");
  for (size_t t = 1; t < seq_idx.size(); ++t)
    if (seq_idx[t] < seq_idx[t - 1]) fail(what, ": seq_idx decreases at row ", t);
}

template <class T> Mat<T> causal_conv1d_silu_packed(const Mat<T>& x, const Mat<T>& w, const Vec<T>* b,
                                                    const std::vector<int>& seq_idx) {
  const Eigen::Index L = x.rows(), Di = x.cols(), K = w.cols();
  if (w.rows() != Di) fail("causal_conv1d_packed: x ", L, "x", Di, " and w ", w.rows(), "x", K, " disagree");
  check_seq_idx(seq_idx, L, "causal_conv1d_packed");
  Mat<T> y(L, Di);
  // out[t, c] = sum_k w[c, k] * in[t - (K-1) + k, c], in[s] = 0 unless row s exists and is of t's sequence.
  for (Eigen::Index t = 0; t < L; ++t)
    for (Eigen::Index c = 0; c < Di; ++c) {
      T acc = b ? (*b)(c) : T(0);
      for (Eigen::Index k = 0; k < K; ++k) {
        const Eigen::Index s = t - (K - 1) + k;
        acc += w(c, k) * (s >= 0 && seq_idx[size_t(s)] == seq_idx[size_t(t)] ? x(s, c) : T(0));
      }
      y(t, c) = acc / (T(1) + std::exp(-acc));  // SiLU
    }
  return y;
}

template <class T> Mat<T> selective_scan_packed(const Mat<T>& u, const Mat<T>& delta, const Mat<T>& A, const Mat<T>& B,
                                                const Mat<T>& C, const Vec<T>& D, const Mat<T>* z,
                                                const Vec<T>& delta_bias, const std::vector<int>& seq_idx) {
  const Eigen::Index L = u.rows(), Di = u.cols(), N = A.cols();
  check_seq_idx(seq_idx, L, "selective_scan_packed");
  Mat<T> state = Mat<T>::Zero(Di, N);
  Mat<T> y(L, Di);
  for (Eigen::Index t = 0; t < L; ++t) {
    if (t > 0 && seq_idx[size_t(t)] != seq_idx[size_t(t - 1)]) state.setZero();  // a new sequence starts
    for (Eigen::Index c = 0; c < Di; ++c) {
      const T dt = softplus(delta(t, c) + delta_bias(c));
      T acc = 0;
      for (Eigen::Index n = 0; n < N; ++n) {
        state(c, n) = std::exp(dt * A(c, n)) * state(c, n) + dt * B(t, n) * u(t, c);
        acc += state(c, n) * C(t, n);
      }
      T out = acc + D(c) * u(t, c);
      if (z) out *= (*z)(t, c) / (T(1) + std::exp(-(*z)(t, c)));
      y(t, c) = out;
    }
  }
  return y;
}

#define BMH_INSTANTIATE_PACKED(T)                                                                                   \
  template Mat<T> causal_conv1d_silu_packed<T>(const Mat<T>&, const Mat<T>&, const Vec<T>*, const std::vector<int>&); \
  template Mat<T> selective_scan_packed<T>(const Mat<T>&, const Mat<T>&, const Mat<T>&, const Mat<T>&, const Mat<T>&, \
                                           const Vec<T>&, const Mat<T>*, const Vec<T>&, const std::vector<int>&);
BMH_INSTANTIATE_PACKED(float)
BMH_INSTANTIATE_PACKED(double)

}  // namespace bmh::ref
