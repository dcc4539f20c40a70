// The reference ops (declared in reference/ops.h), written as plainly as the formulas.
#include "reference/ops.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/router.h"
#include "reference/mac_counter.h"

namespace bmh::ref {

MacCounter& mac_counter() {
  thread_local MacCounter c;
  return c;
}

template <class T> Mat<T> linear(const Mat<T>& x, const Mat<T>& W, const Vec<T>* b) {
  if (x.cols() != W.cols()) fail("linear: input width ", x.cols(), " != weight in-features ", W.cols());
  mac_counter().linear += int64_t(x.rows()) * W.rows() * W.cols();
  Mat<T> y = x * W.transpose();
  if (b) y.rowwise() += b->transpose();
  return y;
}

template <class T> Mat<T> rms_norm(const Mat<T>& x, const Vec<T>& w, const Vec<T>* b, double eps) {
  Mat<T> y(x.rows(), x.cols());
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    T ms = x.row(t).squaredNorm() / T(x.cols());
    T rstd = T(1) / std::sqrt(ms + T(eps));
    y.row(t) = (x.row(t) * rstd).cwiseProduct(w.transpose());
    if (b) y.row(t) += b->transpose();
  }
  return y;
}

template <class T> Mat<T> layer_norm(const Mat<T>& x, const Vec<T>& w, const Vec<T>* b, double eps) {
  Mat<T> y(x.rows(), x.cols());
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    T mean = x.row(t).mean();
    auto centered = (x.row(t).array() - mean).matrix();
    T var = centered.squaredNorm() / T(x.cols());  // biased, as torch
    T rstd = T(1) / std::sqrt(var + T(eps));
    y.row(t) = (centered * rstd).cwiseProduct(w.transpose());
    if (b) y.row(t) += b->transpose();
  }
  return y;
}

template <class T> Mat<T> norm(NormKind kind, const Mat<T>& x, const Vec<T>& w, const Vec<T>* b, double eps) {
  return kind == NormKind::RMSNorm ? rms_norm(x, w, b, eps) : layer_norm(x, w, b, eps);
}

template <class T> T activate(Activation a, T x) {
  switch (a) {
    case Activation::GeluErf: return T(0.5) * x * (T(1) + std::erf(x / std::sqrt(T(2))));
    case Activation::GeluTanh: {
      const T k = std::sqrt(T(2) / T(M_PI));
      return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
    }
    case Activation::Silu: return x / (T(1) + std::exp(-x));
    case Activation::Relu: return x > T(0) ? x : T(0);
  }
  return x;
}

template <class T> T softplus(T x) { return x > T(20) ? x : std::log1p(std::exp(x)); }

template <class T> static T silu(T x) { return x / (T(1) + std::exp(-x)); }

template <class T> Mat<T> causal_conv1d_silu(const Mat<T>& x, const Mat<T>& w, const Vec<T>* b,
                                             const Mat<T>& history) {
  const Eigen::Index Tn = x.rows(), Di = x.cols(), K = w.cols();
  if (w.rows() != Di || history.rows() != K - 1 || history.cols() != Di)
    fail("causal_conv1d: shapes x ", Tn, "x", Di, ", w ", w.rows(), "x", K, ", history ", history.rows(), "x",
         history.cols(), " disagree");
  mac_counter().conv += int64_t(Tn) * Di * K;
  Mat<T> y(Tn, Di);
  // out[t, c] = sum_k w[c, k] * in[t - (K-1) + k, c], where in[<0] comes from the history (zeros at start).
  for (Eigen::Index t = 0; t < Tn; ++t)
    for (Eigen::Index c = 0; c < Di; ++c) {
      T acc = b ? (*b)(c) : T(0);
      for (Eigen::Index k = 0; k < K; ++k) {
        Eigen::Index s = t - (K - 1) + k;
        acc += w(c, k) * (s >= 0 ? x(s, c) : history(K - 1 + s, c));
      }
      y(t, c) = silu(acc);
    }
  return y;
}

template <class T> Mat<T> selective_scan(const Mat<T>& u, const Mat<T>& delta, const Mat<T>& A, const Mat<T>& B,
                                         const Mat<T>& C, const Vec<T>& D, const Mat<T>* z,
                                         const Vec<T>& delta_bias, Mat<T>& state) {
  const Eigen::Index Tn = u.rows(), Di = u.cols(), N = A.cols();
  if (state.rows() != Di || state.cols() != N) fail("selective_scan: state shape disagrees with A");
  mac_counter().scan += 2 * int64_t(Tn) * Di * N;
  Mat<T> y(Tn, Di);
  for (Eigen::Index t = 0; t < Tn; ++t)
    for (Eigen::Index c = 0; c < Di; ++c) {
      const T dt = softplus(delta(t, c) + delta_bias(c));
      T acc = 0;
      for (Eigen::Index n = 0; n < N; ++n) {
        state(c, n) = std::exp(dt * A(c, n)) * state(c, n) + dt * B(t, n) * u(t, c);
        acc += state(c, n) * C(t, n);
      }
      T out = acc + D(c) * u(t, c);
      if (z) out *= silu((*z)(t, c));
      y(t, c) = out;
    }
  return y;
}

template <class T> Mat<T> mamba_mixer(const MambaSpec& s, const MambaWeights<T>& w, const Mat<T>& x,
                                      MambaState<T>& state) {
  const int Di = s.d_inner, N = s.d_state, R = s.dt_rank, K = s.d_conv;
  if (state.conv.size() == 0) state.conv = Mat<T>::Zero(K - 1, Di);
  if (state.ssm.size() == 0) state.ssm = Mat<T>::Zero(Di, N);
  // in_proj -> x | z (mamba_layer.py: xz.chunk(2)).
  Mat<T> xz = linear<T>(x, w.in_proj, w.has_in_proj_b ? &w.in_proj_b : nullptr);
  Mat<T> xin = xz.leftCols(Di), z = xz.rightCols(Di);
  Mat<T> xc = causal_conv1d_silu<T>(xin, w.conv_w, w.has_conv_b ? &w.conv_b : nullptr, state.conv);
  // The conv history after this chunk: the last K-1 inputs, zero-padded on the left when fewer exist
  // (upstream mamba pads; Zyphra's prefill copies x[:, :, -d_conv:] and breaks for T < d_conv).
  Mat<T> joined(state.conv.rows() + xin.rows(), Di);
  joined << state.conv, xin;
  state.conv = joined.bottomRows(K - 1);
  // x_proj -> dt | B | C; dt_proj without bias (the bias is added inside the scan, delta_bias).
  Mat<T> xdbl = linear<T>(xc, w.x_proj, nullptr);
  Mat<T> dtr = xdbl.leftCols(R), Bm = xdbl.middleCols(R, N), Cm = xdbl.rightCols(N);
  if (s.inner_norms) {  // Jamba: time_step, B, C = dt_layernorm, b_layernorm, c_layernorm (modeling_jamba.py)
    dtr = rms_norm<T>(dtr, w.dt_norm, nullptr, s.inner_norm_eps);
    Bm = rms_norm<T>(Bm, w.b_norm, nullptr, s.inner_norm_eps);
    Cm = rms_norm<T>(Cm, w.c_norm, nullptr, s.inner_norm_eps);
  }
  Mat<T> dt = linear<T>(dtr, w.dt_proj, nullptr);
  Mat<T> y = selective_scan<T>(xc, dt, w.A, Bm, Cm, w.D, &z, w.dt_bias, state.ssm);
  return linear<T>(y, w.out_proj, w.has_out_proj_b ? &w.out_proj_b : nullptr);
}

template <class T> Mat<T> mlp(const MlpSpec& s, const MlpWeights<T>& w, const Mat<T>& x) {
  Mat<T> h = linear<T>(x, w.fc1, s.bias ? &w.fc1_b : nullptr);
  Mat<T> a(h.rows(), s.d_ff);
  for (Eigen::Index t = 0; t < h.rows(); ++t)
    for (int j = 0; j < s.d_ff; ++j)
      a(t, j) = s.gated ? activate(s.act, h(t, j)) * h(t, s.d_ff + j) : activate(s.act, h(t, j));
  return linear<T>(a, w.fc2, s.bias ? &w.fc2_b : nullptr);
}

template <class T> Mat<T> switch_mlp(const MlpSpec& s, const MoeWeights<T>& w, const Mat<T>& x, MoeRoutes* routes,
                                     const std::vector<int64_t>* forced, DType half) {
  const int E = s.n_experts, k = s.top_k;
  Mat<T> logits = linear<T>(x, w.router, s.router_bias ? &w.router_b : nullptr);
  Mat<T> y = Mat<T>::Zero(x.rows(), x.cols());
  if (forced && int64_t(forced->size()) != int64_t(x.rows()) * k)
    fail("forced routes: ", forced->size(), " entries for ", x.rows(), " tokens x ", k, " slots");
  if (routes) *routes = MoeRoutes{};
  if (routes) routes->top_k = k;
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    const TokenRoute r = route_token<T>(s, &logits(t, 0), half, forced ? forced->data() + t * k : nullptr);
    for (int j = 0; j < k; ++j) y.row(t) += mlp<T>(s, w.experts[r.expert[j]], Mat<T>(x.row(t))) * T(r.weight[j]);
    if (routes) {
      for (int j = 0; j < k; ++j) {
        routes->expert.push_back(r.expert[j]);
        routes->prob.push_back(r.weight[j]);
      }
      routes->tie.push_back(r.tie);
      for (int e = 0; e < E; ++e) routes->router_logits.push_back(double(logits(t, e)));
    }
  }
  return y;
}

template <class T> void apply_rotary(T* q, int rotary_dim, double theta, int64_t pos) {
  // rotate_half: pairs (i, i + rotary_dim/2), inv_freq[i] = theta^(-2i/rotary_dim) (modeling_gpt_neox.py).
  const int half = rotary_dim / 2;
  for (int i = 0; i < half; ++i) {
    const double inv_freq = 1.0 / std::pow(theta, double(2 * i) / rotary_dim);
    const T ang = T(double(pos) * inv_freq);
    const T c = std::cos(ang), s = std::sin(ang);
    const T a = q[i], b = q[i + half];
    q[i] = a * c - b * s;
    q[i + half] = b * c + a * s;
  }
}

template <class T> Mat<T> attention(const AttentionSpec& s, const AttentionWeights<T>& w, const Mat<T>& x,
                                    KvCache<T>& cache) {
  const int H = s.n_heads, Hkv = s.kv_heads(), hd = s.head_dim, group = H / Hkv;
  const Eigen::Index Tn = x.rows(), pos0 = cache.k.rows();
  Mat<T> qkv = linear<T>(x, w.qkv, w.has_qkv_b ? &w.qkv_b : nullptr);
  Mat<T> q(Tn, H * hd), k(Tn, Hkv * hd), v(Tn, Hkv * hd);
  for (Eigen::Index t = 0; t < Tn; ++t) {
    if (s.grouped_qkv) {  // [q heads | k heads | v heads]
      q.row(t) = qkv.row(t).segment(0, H * hd);
      k.row(t) = qkv.row(t).segment(H * hd, Hkv * hd);
      v.row(t) = qkv.row(t).segment((H + Hkv) * hd, Hkv * hd);
    } else {  // GPT-NeoX per head [q|k|v]
      for (int h = 0; h < H; ++h) {
        q.row(t).segment(h * hd, hd) = qkv.row(t).segment(h * 3 * hd, hd);
        k.row(t).segment(h * hd, hd) = qkv.row(t).segment(h * 3 * hd + hd, hd);
        v.row(t).segment(h * hd, hd) = qkv.row(t).segment(h * 3 * hd + 2 * hd, hd);
      }
    }
    for (int h = 0; h < H; ++h) apply_rotary(&q(t, h * hd), s.rotary_dim, s.rope_theta, pos0 + t);
    for (int h = 0; h < Hkv; ++h) apply_rotary(&k(t, h * hd), s.rotary_dim, s.rope_theta, pos0 + t);
  }
  Mat<T> K(pos0 + Tn, Hkv * hd), V(pos0 + Tn, Hkv * hd);
  K << cache.k, k;
  V << cache.v, v;
  cache.k = K;
  cache.v = V;
  const T scale = T(1) / std::sqrt(T(hd));
  Mat<T> out = Mat<T>::Zero(Tn, H * hd);
  for (Eigen::Index t = 0; t < Tn; ++t) {
    const Eigen::Index end = pos0 + t + 1;  // causal: keys 0..pos0+t
    // Mistral sliding window (masking_utils sliding_window_overlay): key j is seen iff j > pos - window.
    const Eigen::Index begin = s.sliding_window > 0 ? std::max<Eigen::Index>(0, end - s.sliding_window) : 0;
    const Eigen::Index ctx = end - begin;
    mac_counter().attention_scores += int64_t(H) * hd * ctx;
    mac_counter().attention_values += int64_t(H) * hd * ctx;
    for (int h = 0; h < H; ++h) {
      const int g = h / group;  // repeat_kv: query head h uses key/value head h / n_rep
      Vec<T> sc(ctx);
      for (Eigen::Index j = 0; j < ctx; ++j)
        sc(j) = q.row(t).segment(h * hd, hd).dot(K.row(begin + j).segment(g * hd, hd)) * scale;
      const T mx = sc.maxCoeff();
      sc = (sc.array() - mx).exp().matrix();
      sc /= sc.sum();
      for (Eigen::Index j = 0; j < ctx; ++j) out.row(t).segment(h * hd, hd) += sc(j) * V.row(begin + j).segment(g * hd, hd);
    }
  }
  return linear<T>(out, w.dense, w.has_dense_b ? &w.dense_b : nullptr);
}

#define BMH_INSTANTIATE(T)                                                                                      \
  template Mat<T> linear<T>(const Mat<T>&, const Mat<T>&, const Vec<T>*);                                      \
  template Mat<T> rms_norm<T>(const Mat<T>&, const Vec<T>&, const Vec<T>*, double);                            \
  template Mat<T> layer_norm<T>(const Mat<T>&, const Vec<T>&, const Vec<T>*, double);                          \
  template Mat<T> norm<T>(NormKind, const Mat<T>&, const Vec<T>&, const Vec<T>*, double);                      \
  template T activate<T>(Activation, T);                                                                        \
  template T softplus<T>(T);                                                                                    \
  template Mat<T> causal_conv1d_silu<T>(const Mat<T>&, const Mat<T>&, const Vec<T>*, const Mat<T>&);           \
  template Mat<T> selective_scan<T>(const Mat<T>&, const Mat<T>&, const Mat<T>&, const Mat<T>&, const Mat<T>&, \
                                    const Vec<T>&, const Mat<T>*, const Vec<T>&, Mat<T>&);                      \
  template Mat<T> mamba_mixer<T>(const MambaSpec&, const MambaWeights<T>&, const Mat<T>&, MambaState<T>&);     \
  template Mat<T> mlp<T>(const MlpSpec&, const MlpWeights<T>&, const Mat<T>&);                                 \
  template Mat<T> switch_mlp<T>(const MlpSpec&, const MoeWeights<T>&, const Mat<T>&, MoeRoutes*,               \
                                const std::vector<int64_t>*, DType);                                            \
  template void apply_rotary<T>(T*, int, double, int64_t);                                                      \
  template Mat<T> attention<T>(const AttentionSpec&, const AttentionWeights<T>&, const Mat<T>&, KvCache<T>&);

BMH_INSTANTIATE(float)
BMH_INSTANTIATE(double)

}  // namespace bmh::ref
