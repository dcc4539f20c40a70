// Backward of causal self-attention over one sequence (declared in reference/backward_ops.h), both layouts of
// reference/ops.cpp attention:
//   GPT-NeoX: transformers models/gpt_neox/modeling_gpt_neox.py (fused query_key_value split per head as q|k|v,
//     apply_rotary_pos_emb with rotate_half on the leading rotary_ndims of q and k, eager_attention_forward:
//     softmax(q k^T * head_dim^-0.5 + causal mask) v, then dense).
//   Grouped (s.grouped_qkv): modeling_mixtral.py MixtralAttention (q_proj | k_proj | v_proj fused at load, full
//     RoPE with rope_theta, repeat_kv: query head h reads key/value head h / (H / Hkv), eager_attention_forward,
//     o_proj; the Mistral sliding-window mask when sliding_window is set) and modeling_jamba.py JambaAttention
//     (the same without positional encoding: rotary_dim 0, scores / sqrt(head_dim)).
// repeat_kv copies a key/value head to its H / Hkv query heads, so its gradient is the sum over those heads.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "reference/backward_ops.h"

namespace bmh::ref {

template <class T> Mat<T> attention_backward(const AttentionSpec& s, const AttentionWeights<T>& w, const Mat<T>& x,
                                             const Mat<T>& dy, AttentionWeights<T>* g) {
  const int H = s.n_heads, Hkv = s.kv_heads(), hd = s.head_dim, group = H / Hkv;
  const Eigen::Index Tn = x.rows();
  if (!s.grouped_qkv && Hkv != H) fail("attention_backward: GPT-NeoX's per-head layout has no grouped key/value heads");
  if (w.qkv.rows() != int64_t(H + 2 * Hkv) * hd)
    fail("attention_backward: qkv has ", w.qkv.rows(), " rows, expected (", H, " + 2*", Hkv, ") * ", hd);
  // Column of query head h / key head j / value head j within a row of the fused projection.
  auto q_col = [&](int h) { return s.grouped_qkv ? h * hd : h * 3 * hd; };
  auto k_col = [&](int j) { return s.grouped_qkv ? (H + j) * hd : j * 3 * hd + hd; };
  auto v_col = [&](int j) { return s.grouped_qkv ? (H + Hkv + j) * hd : j * 3 * hd + 2 * hd; };
  // Forward recomputed as reference/ops.cpp attention from position 0.
  Mat<T> qkv = linear<T>(x, w.qkv, w.has_qkv_b ? &w.qkv_b : nullptr);
  Mat<T> q(Tn, H * hd), k(Tn, Hkv * hd), v(Tn, Hkv * hd);
  for (Eigen::Index t = 0; t < Tn; ++t) {
    for (int h = 0; h < H; ++h) {
      q.row(t).segment(h * hd, hd) = qkv.row(t).segment(q_col(h), hd);
      apply_rotary(&q(t, h * hd), s.rotary_dim, s.rope_theta, t);
    }
    for (int j = 0; j < Hkv; ++j) {
      k.row(t).segment(j * hd, hd) = qkv.row(t).segment(k_col(j), hd);
      v.row(t).segment(j * hd, hd) = qkv.row(t).segment(v_col(j), hd);
      apply_rotary(&k(t, j * hd), s.rotary_dim, s.rope_theta, t);
    }
  }
  const T scale = T(1) / std::sqrt(T(hd));
  Mat<T> out(Tn, H * hd), dq(Tn, H * hd);
  Mat<T> dk = Mat<T>::Zero(Tn, Hkv * hd), dv = Mat<T>::Zero(Tn, Hkv * hd);
  std::vector<Mat<T>> probs(H);
  for (int h = 0; h < H; ++h) {
    const int j = h / group;
    Mat<T> S = q.middleCols(h * hd, hd) * k.middleCols(j * hd, hd).transpose() * scale;
    Mat<T> P = Mat<T>::Zero(Tn, Tn);
    for (Eigen::Index t = 0; t < Tn; ++t) {  // causal softmax over keys begin..t (all of 0..t without a window)
      const Eigen::Index begin = s.sliding_window > 0 ? std::max<Eigen::Index>(0, t + 1 - s.sliding_window) : 0;
      const Eigen::Index n = t + 1 - begin;
      const T mx = S.row(t).segment(begin, n).maxCoeff();
      P.row(t).segment(begin, n) = (S.row(t).segment(begin, n).array() - mx).exp().matrix();
      P.row(t).segment(begin, n) /= P.row(t).segment(begin, n).sum();
    }
    out.middleCols(h * hd, hd) = P * v.middleCols(j * hd, hd);
    probs[h] = std::move(P);
  }
  // dense (o_proj).
  Mat<T> dout = linear_backward<T>(dy, out, w.dense, &g->dense, w.has_dense_b ? &g->dense_b : nullptr);
  for (int h = 0; h < H; ++h) {
    const int j = h / group;
    const Mat<T>& P = probs[h];
    const Mat<T> dO = dout.middleCols(h * hd, hd);
    // O = P V: dV = P^T dO, dP = dO V^T; softmax: dS = P (dP - rowsum(P dP)); S = q k^T scale. Masked entries
    // have P = 0, so they get no gradient.
    dv.middleCols(j * hd, hd) += P.transpose() * dO;
    Mat<T> dP = dO * v.middleCols(j * hd, hd).transpose();
    Mat<T> dS = P.cwiseProduct(dP);
    const Vec<T> rowdot = dS.rowwise().sum();
    dS -= P.cwiseProduct(rowdot.replicate(1, Tn));
    dq.middleCols(h * hd, hd) = dS * k.middleCols(j * hd, hd) * scale;
    dk.middleCols(j * hd, hd) += dS.transpose() * q.middleCols(h * hd, hd) * scale;
  }
  // Rotary is a rotation per pair (i, i + rotary_dim/2); its transpose is the rotation by -angle.
  Mat<T> dqkv(Tn, w.qkv.rows());
  for (Eigen::Index t = 0; t < Tn; ++t) {
    for (int h = 0; h < H; ++h) {
      apply_rotary(&dq(t, h * hd), s.rotary_dim, s.rope_theta, -t);
      dqkv.row(t).segment(q_col(h), hd) = dq.row(t).segment(h * hd, hd);
    }
    for (int j = 0; j < Hkv; ++j) {
      apply_rotary(&dk(t, j * hd), s.rotary_dim, s.rope_theta, -t);
      dqkv.row(t).segment(k_col(j), hd) = dk.row(t).segment(j * hd, hd);
      dqkv.row(t).segment(v_col(j), hd) = dv.row(t).segment(j * hd, hd);
    }
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
