// Backward of GPT-NeoX attention over one sequence (declared in reference/backward_ops.h). Forward semantics:
// transformers models/gpt_neox/modeling_gpt_neox.py (fused query_key_value split per head as q|k|v,
// apply_rotary_pos_emb with rotate_half on the leading rotary_ndims of q and k, eager_attention_forward:
// softmax(q k^T * head_dim^-0.5 + causal mask) v, then dense).
#include <cmath>

#include "core/error.h"
#include "reference/backward_ops.h"

namespace bmh::ref {

template <class T> Mat<T> attention_backward(const AttentionSpec& s, const AttentionWeights<T>& w, const Mat<T>& x,
                                             const Mat<T>& dy, AttentionWeights<T>* g) {
  const int H = s.n_heads, hd = s.head_dim, d = H * hd;
  const Eigen::Index Tn = x.rows();
  // Forward recomputed as reference/ops.cpp attention from position 0.
  Mat<T> qkv = linear<T>(x, w.qkv, w.has_qkv_b ? &w.qkv_b : nullptr);
  Mat<T> q(Tn, d), k(Tn, d), v(Tn, d);
  for (Eigen::Index t = 0; t < Tn; ++t)
    for (int h = 0; h < H; ++h) {
      q.row(t).segment(h * hd, hd) = qkv.row(t).segment(h * 3 * hd, hd);
      k.row(t).segment(h * hd, hd) = qkv.row(t).segment(h * 3 * hd + hd, hd);
      v.row(t).segment(h * hd, hd) = qkv.row(t).segment(h * 3 * hd + 2 * hd, hd);
      apply_rotary(&q(t, h * hd), s.rotary_dim, s.rope_theta, t);
      apply_rotary(&k(t, h * hd), s.rotary_dim, s.rope_theta, t);
    }
  const T scale = T(1) / std::sqrt(T(hd));
  Mat<T> out(Tn, d), dq(Tn, d), dk(Tn, d), dv(Tn, d);
  std::vector<Mat<T>> probs(H);
  for (int h = 0; h < H; ++h) {
    Mat<T> S = q.middleCols(h * hd, hd) * k.middleCols(h * hd, hd).transpose() * scale;
    Mat<T> P = Mat<T>::Zero(Tn, Tn);
    for (Eigen::Index t = 0; t < Tn; ++t) {  // causal softmax over keys 0..t
      const T mx = S.row(t).head(t + 1).maxCoeff();
      P.row(t).head(t + 1) = (S.row(t).head(t + 1).array() - mx).exp().matrix();
      P.row(t).head(t + 1) /= P.row(t).head(t + 1).sum();
    }
    out.middleCols(h * hd, hd) = P * v.middleCols(h * hd, hd);
    probs[h] = std::move(P);
  }
  // dense.
  Mat<T> dout = linear_backward<T>(dy, out, w.dense, &g->dense, w.has_dense_b ? &g->dense_b : nullptr);
  for (int h = 0; h < H; ++h) {
    const Mat<T>& P = probs[h];
    const Mat<T> dO = dout.middleCols(h * hd, hd);
    // O = P V: dV = P^T dO, dP = dO V^T; softmax: dS = P (dP - rowsum(P dP)); S = q k^T scale.
    dv.middleCols(h * hd, hd) = P.transpose() * dO;
    Mat<T> dP = dO * v.middleCols(h * hd, hd).transpose();
    Mat<T> dS = P.cwiseProduct(dP);
    const Vec<T> rowdot = dS.rowwise().sum();
    dS -= P.cwiseProduct(rowdot.replicate(1, Tn));
    dq.middleCols(h * hd, hd) = dS * k.middleCols(h * hd, hd) * scale;
    dk.middleCols(h * hd, hd) = dS.transpose() * q.middleCols(h * hd, hd) * scale;
  }
  // Rotary is a rotation per pair (i, i + rotary_dim/2); its transpose is the rotation by -angle.
  Mat<T> dqkv(Tn, 3 * d);
  for (Eigen::Index t = 0; t < Tn; ++t)
    for (int h = 0; h < H; ++h) {
      apply_rotary(&dq(t, h * hd), s.rotary_dim, s.rope_theta, -t);
      apply_rotary(&dk(t, h * hd), s.rotary_dim, s.rope_theta, -t);
      dqkv.row(t).segment(h * 3 * hd, hd) = dq.row(t).segment(h * hd, hd);
      dqkv.row(t).segment(h * 3 * hd + hd, hd) = dk.row(t).segment(h * hd, hd);
      dqkv.row(t).segment(h * 3 * hd + 2 * hd, hd) = dv.row(t).segment(h * hd, hd);
    }
  return linear_backward<T>(dqkv, x, w.qkv, &g->qkv, w.has_qkv_b ? &g->qkv_b : nullptr);
}

template <class T> AttentionWeights<T> zeros_like(const AttentionWeights<T>& w) {
  AttentionWeights<T> g;
  g.qkv = Mat<T>::Zero(w.qkv.rows(), w.qkv.cols());
  g.qkv_b = Vec<T>::Zero(w.qkv_b.size());
  g.has_qkv_b = w.has_qkv_b;
  g.dense = Mat<T>::Zero(w.dense.rows(), w.dense.cols());
  g.dense_b = Vec<T>::Zero(w.dense_b.size());
  g.has_dense_b = w.has_dense_b;
  return g;
}

template <class T> void add_into(AttentionWeights<T>& a, const AttentionWeights<T>& b) {
  a.qkv += b.qkv, a.qkv_b += b.qkv_b, a.dense += b.dense, a.dense_b += b.dense_b;
}

#define BMH_INSTANTIATE(T)                                                                                        \
  template Mat<T> attention_backward<T>(const AttentionSpec&, const AttentionWeights<T>&, const Mat<T>&,          \
                                        const Mat<T>&, AttentionWeights<T>*);                                     \
  template AttentionWeights<T> zeros_like<T>(const AttentionWeights<T>&);                                         \
  template void add_into<T>(AttentionWeights<T>&, const AttentionWeights<T>&);

BMH_INSTANTIATE(float)
BMH_INSTANTIATE(double)

}  // namespace bmh::ref
