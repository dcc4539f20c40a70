// Backward of the row-wise reference ops (declared in reference/backward_ops.h): linear, norms, activations,
// MLPs, Zyphra's switch MLP and the cross-entropy. Mamba is in backward_mamba.cpp, attention in
// backward_attention.cpp.
#include <cmath>

#include "core/error.h"
#include "reference/backward_ops.h"

namespace bmh::ref {

template <class T> Mat<T> linear_backward(const Mat<T>& dy, const Mat<T>& x, const Mat<T>& W, Mat<T>* dW, Vec<T>* db) {
  if (dy.cols() != W.rows() || x.cols() != W.cols() || dy.rows() != x.rows())
    fail("linear_backward: dy ", dy.rows(), "x", dy.cols(), ", x ", x.rows(), "x", x.cols(), ", W ", W.rows(), "x",
         W.cols(), " disagree");
  if (dW) dW->noalias() += dy.transpose() * x;
  if (db) *db += dy.colwise().sum().transpose();
  return dy * W;
}

template <class T> Mat<T> norm_backward(NormKind kind, const Mat<T>& dy, const Mat<T>& x, const Vec<T>& w,
                                        double eps, Vec<T>* dw, Vec<T>* db) {
  const Eigen::Index n = x.cols();
  Mat<T> dx(x.rows(), n);
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    // Forward as reference/ops.cpp rms_norm / layer_norm: xhat = (x - mean) * rstd (mean = 0 for RMSNorm).
    const T mean = kind == NormKind::LayerNorm ? x.row(t).mean() : T(0);
    const Eigen::Matrix<T, 1, Eigen::Dynamic> centered = x.row(t).array() - mean;
    const T rstd = T(1) / std::sqrt(centered.squaredNorm() / T(n) + T(eps));
    const Eigen::Matrix<T, 1, Eigen::Dynamic> xhat = centered * rstd;
    if (dw) *dw += dy.row(t).cwiseProduct(xhat).transpose();
    if (db) *db += dy.row(t).transpose();
    const Eigen::Matrix<T, 1, Eigen::Dynamic> g = dy.row(t).cwiseProduct(w.transpose());
    const T g_xhat = g.dot(xhat) / T(n);
    if (kind == NormKind::LayerNorm) {
      dx.row(t) = ((g.array() - g.mean() - xhat.array() * g_xhat) * rstd).matrix();
    } else {
      dx.row(t) = ((g.array() - xhat.array() * g_xhat) * rstd).matrix();
    }
  }
  return dx;
}

template <class T> T activation_grad(Activation a, T x) {
  switch (a) {
    case Activation::GeluErf: {  // d/dx 0.5 x (1 + erf(x/sqrt2)) = Phi(x) + x phi(x)
      const T cdf = T(0.5) * (T(1) + std::erf(x / std::sqrt(T(2))));
      const T pdf = std::exp(T(-0.5) * x * x) / std::sqrt(T(2) * T(M_PI));
      return cdf + x * pdf;
    }
    case Activation::GeluTanh: {  // 0.5 x (1 + tanh(k (x + 0.044715 x^3)))
      const T k = std::sqrt(T(2) / T(M_PI));
      const T th = std::tanh(k * (x + T(0.044715) * x * x * x));
      return T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * k * (T(1) + T(3 * 0.044715) * x * x);
    }
    case Activation::Silu: {  // x s(x): s (1 + x (1 - s))
      const T s = T(1) / (T(1) + std::exp(-x));
      return s * (T(1) + x * (T(1) - s));
    }
    case Activation::Relu: return x > T(0) ? T(1) : T(0);
  }
  return T(1);
}

template <class T> T softplus_grad(T x) { return x > T(20) ? T(1) : T(1) / (T(1) + std::exp(-x)); }

template <class T> Mat<T> mlp_backward(const MlpSpec& s, const MlpWeights<T>& w, const Mat<T>& x, const Mat<T>& dy,
                                       MlpWeights<T>* g) {
  // Forward (Zyphra mlp.py MLP.forward, glu(): act(h[:F]) * h[F:]; GPT-NeoX GPTNeoXMLP): h = fc1 x, a, y = fc2 a.
  const int F = s.d_ff;
  Mat<T> h = linear<T>(x, w.fc1, s.bias ? &w.fc1_b : nullptr);
  Mat<T> a(h.rows(), F);
  for (Eigen::Index t = 0; t < h.rows(); ++t)
    for (int j = 0; j < F; ++j) a(t, j) = s.gated ? activate(s.act, h(t, j)) * h(t, F + j) : activate(s.act, h(t, j));
  Mat<T> da = linear_backward<T>(dy, a, w.fc2, &g->fc2, s.bias ? &g->fc2_b : nullptr);
  Mat<T> dh(h.rows(), h.cols());
  for (Eigen::Index t = 0; t < h.rows(); ++t)
    for (int j = 0; j < F; ++j) {
      if (s.gated) {
        dh(t, j) = da(t, j) * activation_grad(s.act, h(t, j)) * h(t, F + j);
        dh(t, F + j) = da(t, j) * activate(s.act, h(t, j));
      } else {
        dh(t, j) = da(t, j) * activation_grad(s.act, h(t, j));
      }
    }
  return linear_backward<T>(dh, x, w.fc1, &g->fc1, s.bias ? &g->fc1_b : nullptr);
}

template <class T> Mat<T> switch_mlp_backward(const MlpSpec& s, const MoeWeights<T>& w, const Mat<T>& x,
                                              const std::vector<int64_t>& expert, const Mat<T>& dy,
                                              MoeWeights<T>* g) {
  if (s.router == RouterKind::SoftmaxTopK) return softmax_topk_moe_backward<T>(s, w, x, expert, dy, g);
  const int E = s.n_experts;
  const Eigen::Index rows = x.rows();
  if (int64_t(expert.size()) != int64_t(rows)) fail("switch_mlp_backward: ", expert.size(), " routes for ", rows, " rows");
  // Zyphra switch_mlp.py: route = sigmoid(router(x)); max_prob = route[argmax]; out = expert(x) * max_prob.
  Mat<T> logits = linear<T>(x, w.router, s.router_bias ? &w.router_b : nullptr);
  Mat<T> dx = Mat<T>::Zero(rows, x.cols());
  Mat<T> dlogits = Mat<T>::Zero(rows, E);
  for (int e = 0; e < E; ++e) {
    std::vector<Eigen::Index> idx;
    for (Eigen::Index r = 0; r < rows; ++r)
      if (expert[r] == e) idx.push_back(r);
    if (idx.empty()) continue;  // no token reached this expert: its gradient stays exactly zero
    const Eigen::Index n = Eigen::Index(idx.size());
    Mat<T> xe(n, x.cols()), dye(n, x.cols());
    Vec<T> p(n);
    for (Eigen::Index i = 0; i < n; ++i) {
      xe.row(i) = x.row(idx[i]);
      p(i) = T(1) / (T(1) + std::exp(-logits(idx[i], e)));
      dye.row(i) = dy.row(idx[i]) * p(i);  // d expert_out = dy * max_prob
    }
    Mat<T> out = mlp<T>(s, w.experts[e], xe);
    Mat<T> dxe = mlp_backward<T>(s, w.experts[e], xe, dye, &g->experts[e]);
    for (Eigen::Index i = 0; i < n; ++i) {
      const T dp = dy.row(idx[i]).dot(out.row(i));          // d max_prob = sum_j dy_j expert_out_j
      dlogits(idx[i], e) = dp * p(i) * (T(1) - p(i));       // torch sigmoid backward: grad * y (1 - y)
      dx.row(idx[i]) = dxe.row(i);
    }
  }
  dx += linear_backward<T>(dlogits, x, w.router, &g->router, s.router_bias ? &g->router_b : nullptr);
  return dx;
}

template <class T> double cross_entropy_sum(const Mat<T>& logits, const std::vector<int64_t>& target,
                                            Mat<T>* dlogits, double scale) {
  const Eigen::Index V = logits.cols();
  double total = 0;
  std::vector<double> prob(V);
  for (Eigen::Index t = 0; t < logits.rows(); ++t) {
    const int64_t y = target.at(t);
    if (y < 0) continue;
    // log-sum-exp with the max subtracted (torch log_softmax), in double.
    double mx = -INFINITY;
    for (Eigen::Index v = 0; v < V; ++v) mx = std::max(mx, double(logits(t, v)));
    double z = 0;
    for (Eigen::Index v = 0; v < V; ++v) z += (prob[v] = std::exp(double(logits(t, v)) - mx));
    total += std::log(z) + mx - double(logits(t, y));
    if (dlogits)
      for (Eigen::Index v = 0; v < V; ++v) (*dlogits)(t, v) += T((prob[v] / z - (v == y ? 1.0 : 0.0)) * scale);
  }
  return total;
}

template <class T> MlpWeights<T> zeros_like(const MlpWeights<T>& w) {
  MlpWeights<T> g;
  g.fc1 = Mat<T>::Zero(w.fc1.rows(), w.fc1.cols());
  g.fc2 = Mat<T>::Zero(w.fc2.rows(), w.fc2.cols());
  g.fc1_b = Vec<T>::Zero(w.fc1_b.size());
  g.fc2_b = Vec<T>::Zero(w.fc2_b.size());
  return g;
}

template <class T> MoeWeights<T> zeros_like(const MoeWeights<T>& w) {
  MoeWeights<T> g;
  g.router = Mat<T>::Zero(w.router.rows(), w.router.cols());
  g.router_b = Vec<T>::Zero(w.router_b.size());
  for (const auto& e : w.experts) g.experts.push_back(zeros_like(e));
  return g;
}

#define BMH_INSTANTIATE(T)                                                                                        \
  template Mat<T> linear_backward<T>(const Mat<T>&, const Mat<T>&, const Mat<T>&, Mat<T>*, Vec<T>*);             \
  template Mat<T> norm_backward<T>(NormKind, const Mat<T>&, const Mat<T>&, const Vec<T>&, double, Vec<T>*,        \
                                   Vec<T>*);                                                                      \
  template T activation_grad<T>(Activation, T);                                                                   \
  template T softplus_grad<T>(T);                                                                                 \
  template Mat<T> mlp_backward<T>(const MlpSpec&, const MlpWeights<T>&, const Mat<T>&, const Mat<T>&,            \
                                  MlpWeights<T>*);                                                                \
  template Mat<T> switch_mlp_backward<T>(const MlpSpec&, const MoeWeights<T>&, const Mat<T>&,                    \
                                         const std::vector<int64_t>&, const Mat<T>&, MoeWeights<T>*);             \
  template double cross_entropy_sum<T>(const Mat<T>&, const std::vector<int64_t>&, Mat<T>*, double);             \
  template MlpWeights<T> zeros_like<T>(const MlpWeights<T>&);                                                     \
  template MoeWeights<T> zeros_like<T>(const MoeWeights<T>&);

BMH_INSTANTIATE(float)
BMH_INSTANTIATE(double)

}  // namespace bmh::ref
