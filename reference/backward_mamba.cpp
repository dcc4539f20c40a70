// Backward of the Mamba mixer (declared in reference/backward_ops.h): causal conv + SiLU, the selective scan by
// its reverse-time recurrence, and the whole mixer (in_proj, x_proj, dt_proj, D skip, SiLU(z) gate, out_proj).
// Forward semantics: Zyphra mamba_layer.py MambaLayer.forward (the non-fused path: torch conv1d, then
// ops/selective_scan_interface.py selective_scan_ref), which transformers modeling_mamba.py slow_forward equals;
// Jamba's JambaMambaMixer.slow_forward (modeling_jamba.py) adds RMSNorms on dt, B and C after x_proj.
#include <cmath>

#include "core/error.h"
#include "reference/backward_ops.h"

namespace bmh::ref {

namespace {
template <class T> T sigmoid(T x) { return T(1) / (T(1) + std::exp(-x)); }
template <class T> T silu_grad(T x) {
  const T s = sigmoid(x);
  return s * (T(1) + x * (T(1) - s));
}
}  // namespace

template <class T> Mat<T> causal_conv1d_silu_backward(const Mat<T>& dy, const Mat<T>& x, const Mat<T>& w,
                                                      const Vec<T>* b, Mat<T>* dw, Vec<T>* db) {
  const Eigen::Index Tn = x.rows(), Di = x.cols(), K = w.cols();
  if (w.rows() != Di || dy.rows() != Tn || dy.cols() != Di) fail("causal_conv1d_silu_backward: shapes disagree");
  // pre[t, c] = b[c] + sum_k w[c, k] x[t - (K-1) + k, c] (x[<0] = 0: conv1d padding K-1, first T outputs);
  // y = silu(pre)  ->  dpre = dy silu'(pre); dw[c, k] += dpre[t, c] x[s, c]; dx[s, c] += dpre[t, c] w[c, k].
  Mat<T> dx = Mat<T>::Zero(Tn, Di);
  for (Eigen::Index t = 0; t < Tn; ++t)
    for (Eigen::Index c = 0; c < Di; ++c) {
      T pre = b ? (*b)(c) : T(0);
      for (Eigen::Index k = 0; k < K; ++k) {
        const Eigen::Index s = t - (K - 1) + k;
        if (s >= 0) pre += w(c, k) * x(s, c);
      }
      const T dpre = dy(t, c) * silu_grad(pre);
      if (db) (*db)(c) += dpre;
      for (Eigen::Index k = 0; k < K; ++k) {
        const Eigen::Index s = t - (K - 1) + k;
        if (s < 0) continue;
        (*dw)(c, k) += dpre * x(s, c);
        dx(s, c) += dpre * w(c, k);
      }
    }
  return dx;
}

template <class T> void selective_scan_backward(const Mat<T>& dy, const Mat<T>& u, const Mat<T>& delta,
                                                const Mat<T>& A, const Mat<T>& B, const Mat<T>& C, const Vec<T>& D,
                                                const Mat<T>* z, const Vec<T>& delta_bias, ScanGrads<T>* g) {
  const Eigen::Index Tn = u.rows(), Di = u.cols(), N = A.cols();
  // Forward (selective_scan_ref): dt = softplus(delta + delta_bias); h_t = exp(dt A) h_{t-1} + dt B_t u_t;
  // y_t = C_t . h_t + D u_t; out = y * silu(z). The states h_0..h_T are kept for the reverse pass.
  // The decays a_t = exp(dt A) are kept too (one exp per element instead of two). Rows over N are Eigen array
  // expressions so the exp vectorizes (Eigen's exp agrees with std::exp to a few ulp).
  Mat<T> dt(Tn, Di), ypre(Tn, Di);
  std::vector<Mat<T>> h(Tn + 1, Mat<T>::Zero(Di, N)), decay(Tn, Mat<T>(Di, N));
  for (Eigen::Index t = 0; t < Tn; ++t)
    for (Eigen::Index c = 0; c < Di; ++c) {
      const T dtc = dt(t, c) = softplus(delta(t, c) + delta_bias(c));
      decay[t].row(c) = (A.row(c).array() * dtc).exp();
      h[t + 1].row(c) = decay[t].row(c).array() * h[t].row(c).array() + (dtc * u(t, c)) * B.row(t).array();
      ypre(t, c) = h[t + 1].row(c).dot(C.row(t)) + D(c) * u(t, c);
    }
  // Gate: out = ypre * silu(z)  ->  dz = dy ypre silu'(z), dypre = dy silu(z).
  Mat<T> dyp = dy;
  g->out = ypre;
  if (z) {
    g->dz.resize(Tn, Di);
    for (Eigen::Index t = 0; t < Tn; ++t)
      for (Eigen::Index c = 0; c < Di; ++c) {
        const T zz = (*z)(t, c), silu = zz * sigmoid(zz);
        g->dz(t, c) = dy(t, c) * ypre(t, c) * silu_grad(zz);
        dyp(t, c) = dy(t, c) * silu;
        g->out(t, c) = ypre(t, c) * silu;
      }
  }
  // D skip: dD += dypre u; du = dypre D (plus the scan's share below).
  g->du = dyp.array().rowwise() * D.transpose().array();
  g->dD += (dyp.cwiseProduct(u)).colwise().sum().transpose();
  g->ddelta.resize(Tn, Di);
  g->dB = Mat<T>::Zero(Tn, N);
  g->dC = Mat<T>::Zero(Tn, N);
  // Reverse time: G = dL/dh_t (all later uses), carried through h_t = a_t h_{t-1} + ... as G *= a_t.
  Mat<T> G = Mat<T>::Zero(Di, N);
  for (Eigen::Index t = Tn - 1; t >= 0; --t)
    for (Eigen::Index c = 0; c < Di; ++c) {
      const T dtc = dt(t, c), ut = u(t, c), gy = dyp(t, c);
      auto Gc = G.row(c).array();
      Gc += gy * C.row(t).array();                                        // y_t = C_t . h_t
      g->dC.row(t) += gy * h[t + 1].row(c);
      const auto a = decay[t].row(c).array();
      const Eigen::Array<T, 1, Eigen::Dynamic> da_a = Gc * h[t].row(c).array() * a;  // d a_t * a_t
      const T gB = (Gc * B.row(t).array()).sum();
      const T ddt = (da_a * A.row(c).array()).sum() + gB * ut;            // a_t = exp(dt A); dt B u
      g->dA.row(c).array() += da_a * dtc;
      g->dB.row(t).array() += Gc * (dtc * ut);
      const T du = gB * dtc;
      Gc *= a;
      g->du(t, c) += du;
      const T dd = ddt * softplus_grad(delta(t, c) + delta_bias(c));
      g->ddelta(t, c) = dd;
      g->ddelta_bias(c) += dd;
    }
}

template <class T> Mat<T> mamba_mixer_backward(const MambaSpec& s, const MambaWeights<T>& w, const Mat<T>& x,
                                               const Mat<T>& dy, MambaWeights<T>* g) {
  const int Di = s.d_inner, N = s.d_state, R = s.dt_rank, K = s.d_conv;
  // Forward recomputed as reference/ops.cpp mamba_mixer (zero conv and SSM state).
  Mat<T> xz = linear<T>(x, w.in_proj, w.has_in_proj_b ? &w.in_proj_b : nullptr);
  Mat<T> xin = xz.leftCols(Di), z = xz.rightCols(Di);
  Mat<T> xc = causal_conv1d_silu<T>(xin, w.conv_w, w.has_conv_b ? &w.conv_b : nullptr, Mat<T>::Zero(K - 1, Di));
  Mat<T> xdbl = linear<T>(xc, w.x_proj, nullptr);
  const Mat<T> dtr_raw = xdbl.leftCols(R), B_raw = xdbl.middleCols(R, N), C_raw = xdbl.rightCols(N);
  Mat<T> dtr = dtr_raw, Bm = B_raw, Cm = C_raw;
  if (s.inner_norms) {  // Jamba (modeling_jamba.py slow_forward): dt_layernorm, b_layernorm, c_layernorm
    dtr = rms_norm<T>(dtr_raw, w.dt_norm, nullptr, s.inner_norm_eps);
    Bm = rms_norm<T>(B_raw, w.b_norm, nullptr, s.inner_norm_eps);
    Cm = rms_norm<T>(C_raw, w.c_norm, nullptr, s.inner_norm_eps);
  }
  Mat<T> delta = linear<T>(dtr, w.dt_proj, nullptr);
  // out_proj: dy_scan = dy W; its weight gradient needs the scan's output, which the scan backward recomputes.
  Mat<T> dyscan = dy * w.out_proj;
  if (w.has_out_proj_b) g->out_proj_b += dy.colwise().sum().transpose();
  // Scan (dA accumulated into a temporary, converted to A_log below).
  ScanGrads<T> sg;
  sg.dA = Mat<T>::Zero(Di, N);
  sg.dD = Vec<T>::Zero(Di);
  sg.ddelta_bias = Vec<T>::Zero(Di);
  selective_scan_backward<T>(dyscan, xc, delta, w.A, Bm, Cm, w.D, &z, w.dt_bias, &sg);
  g->out_proj.noalias() += dy.transpose() * sg.out;
  g->D += sg.dD;
  g->dt_bias += sg.ddelta_bias;
  g->A += sg.dA.cwiseProduct(w.A);  // A = -exp(A_log): dA_log = dA * (-exp(A_log)) = dA * A
  // dt = dt_proj.weight @ dt_r (Zyphra mamba_layer.py; the bias enters the scan as delta_bias).
  Mat<T> ddtr = linear_backward<T>(sg.ddelta, dtr, w.dt_proj, &g->dt_proj, nullptr);
  // Jamba's RMSNorms (JambaRMSNorm, no bias) between x_proj and dt_proj / the scan.
  Mat<T> dB = std::move(sg.dB), dC = std::move(sg.dC);
  if (s.inner_norms) {
    ddtr = norm_backward<T>(NormKind::RMSNorm, ddtr, dtr_raw, w.dt_norm, s.inner_norm_eps, &g->dt_norm, nullptr);
    dB = norm_backward<T>(NormKind::RMSNorm, dB, B_raw, w.b_norm, s.inner_norm_eps, &g->b_norm, nullptr);
    dC = norm_backward<T>(NormKind::RMSNorm, dC, C_raw, w.c_norm, s.inner_norm_eps, &g->c_norm, nullptr);
  }
  // x_proj -> dt_r | B | C.
  Mat<T> dxdbl(xc.rows(), R + 2 * N);
  dxdbl << ddtr, dB, dC;
  Mat<T> dxc = linear_backward<T>(dxdbl, xc, w.x_proj, &g->x_proj, nullptr) + sg.du;
  // Conv + SiLU, then in_proj over x | z.
  Mat<T> dxin = causal_conv1d_silu_backward<T>(dxc, xin, w.conv_w, w.has_conv_b ? &w.conv_b : nullptr, &g->conv_w,
                                               w.has_conv_b ? &g->conv_b : nullptr);
  Mat<T> dxz(x.rows(), 2 * Di);
  dxz << dxin, sg.dz;
  return linear_backward<T>(dxz, x, w.in_proj, &g->in_proj, w.has_in_proj_b ? &g->in_proj_b : nullptr);
}

template <class T> MambaWeights<T> zeros_like(const MambaWeights<T>& w) {
  MambaWeights<T> g;
  auto zm = [](const Mat<T>& m) { return Mat<T>::Zero(m.rows(), m.cols()); };
  auto zv = [](const Vec<T>& v) { return Vec<T>::Zero(v.size()); };
  g.in_proj = zm(w.in_proj), g.in_proj_b = zv(w.in_proj_b), g.has_in_proj_b = w.has_in_proj_b;
  g.conv_w = zm(w.conv_w), g.conv_b = zv(w.conv_b), g.has_conv_b = w.has_conv_b;
  g.x_proj = zm(w.x_proj), g.dt_proj = zm(w.dt_proj), g.dt_bias = zv(w.dt_bias);
  g.A = zm(w.A), g.D = zv(w.D);
  g.dt_norm = zv(w.dt_norm), g.b_norm = zv(w.b_norm), g.c_norm = zv(w.c_norm);  // empty unless Jamba
  g.out_proj = zm(w.out_proj), g.out_proj_b = zv(w.out_proj_b), g.has_out_proj_b = w.has_out_proj_b;
  return g;
}

template <class T> void add_into(MambaWeights<T>& a, const MambaWeights<T>& b) {
  a.in_proj += b.in_proj, a.in_proj_b += b.in_proj_b, a.conv_w += b.conv_w, a.conv_b += b.conv_b;
  a.x_proj += b.x_proj, a.dt_proj += b.dt_proj, a.dt_bias += b.dt_bias, a.A += b.A, a.D += b.D;
  a.out_proj += b.out_proj, a.out_proj_b += b.out_proj_b;
  a.dt_norm += b.dt_norm, a.b_norm += b.b_norm, a.c_norm += b.c_norm;
}

#define BMH_INSTANTIATE(T)                                                                                        \
  template Mat<T> causal_conv1d_silu_backward<T>(const Mat<T>&, const Mat<T>&, const Mat<T>&, const Vec<T>*,      \
                                                 Mat<T>*, Vec<T>*);                                               \
  template void selective_scan_backward<T>(const Mat<T>&, const Mat<T>&, const Mat<T>&, const Mat<T>&,            \
                                           const Mat<T>&, const Mat<T>&, const Vec<T>&, const Mat<T>*,            \
                                           const Vec<T>&, ScanGrads<T>*);                                         \
  template Mat<T> mamba_mixer_backward<T>(const MambaSpec&, const MambaWeights<T>&, const Mat<T>&, const Mat<T>&, \
                                          MambaWeights<T>*);                                                      \
  template MambaWeights<T> zeros_like<T>(const MambaWeights<T>&);                                                 \
  template void add_into<T>(MambaWeights<T>&, const MambaWeights<T>&);

BMH_INSTANTIATE(float)
BMH_INSTANTIATE(double)

}  // namespace bmh::ref
