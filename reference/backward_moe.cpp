// Backward of the softmax top-k MoE block (declared in reference/backward_ops.h), the forward being
// reference/ops.cpp switch_mlp with core/router.h's SoftmaxTopK routing:
//   transformers modeling_mixtral.py (MixtralTopKRouter / MixtralSparseMoeBlock): p = softmax(gate(x)) in fp32;
//     the k largest p_e (torch.topk, not differentiated); w_j = p_{e_j} / sum_i p_{e_i}; y = sum_j w_j expert_{e_j}(x)
//     with expert(x) = w2(silu(w1 x) * w3 x) (w1/w3 fused at load into fc1 = [w1; w3]).
//   modeling_jamba.py (JambaSparseMoeBlock): the same with router(x) and no renormalisation, w_j = p_{e_j}.
// Autograd differentiates the chosen weights, the renormalisation and the softmax over all E logits; the
// indices are constants. An expert no token chose gets no gradient at all (its output is never computed).
#include <cmath>

#include "core/error.h"
#include "reference/backward_ops.h"

namespace bmh::ref {

template <class T> Mat<T> softmax_topk_moe_backward(const MlpSpec& s, const MoeWeights<T>& w, const Mat<T>& x,
                                                    const std::vector<int64_t>& expert, const Mat<T>& dy,
                                                    MoeWeights<T>* g) {
  if (s.router != RouterKind::SoftmaxTopK) fail("softmax_topk_moe_backward: the block's router is ", to_string(s.router));
  const int E = s.n_experts, k = s.top_k;
  const Eigen::Index rows = x.rows();
  if (int64_t(expert.size()) != int64_t(rows) * k)
    fail("softmax_topk_moe_backward: ", expert.size(), " routes for ", rows, " rows x ", k, " slots");
  for (int64_t e : expert)
    if (e < 0 || e >= E) fail("softmax_topk_moe_backward: expert ", e, " outside [0, ", E, ")");
  Mat<T> logits = linear<T>(x, w.router, s.router_bias ? &w.router_b : nullptr);
  // p = softmax(logits) per row, as core/router.cpp computes it (max subtracted, in T); weight[r*k + j] the gate
  // of slot j (renormalised over the row's k slots for Mixtral).
  Mat<T> p(rows, E);
  std::vector<T> weight(size_t(rows) * k), sel_sum(rows);
  for (Eigen::Index r = 0; r < rows; ++r) {
    const T mx = logits.row(r).maxCoeff();
    T sum = 0;
    for (int e = 0; e < E; ++e) sum += std::exp(logits(r, e) - mx);
    for (int e = 0; e < E; ++e) p(r, e) = std::exp(logits(r, e) - mx) / sum;
    T ssum = 0;
    for (int j = 0; j < k; ++j) ssum += p(r, expert[r * k + j]);
    sel_sum[r] = ssum;
    for (int j = 0; j < k; ++j) weight[r * k + j] = s.renormalize ? p(r, expert[r * k + j]) / ssum : p(r, expert[r * k + j]);
  }
  // Experts: each runs on the (row, slot) pairs that chose it; d expert_out = dy * w_j, d w_j = dy . expert_out.
  Mat<T> dx = Mat<T>::Zero(rows, x.cols());
  std::vector<T> dweight(size_t(rows) * k, T(0));
  for (int e = 0; e < E; ++e) {
    std::vector<int64_t> slots;  // r * k + j
    for (int64_t i = 0; i < int64_t(expert.size()); ++i)
      if (expert[i] == e) slots.push_back(i);
    if (slots.empty()) continue;  // no token reached this expert: its gradient stays exactly zero
    const Eigen::Index n = Eigen::Index(slots.size());
    Mat<T> xe(n, x.cols()), dye(n, x.cols());
    for (Eigen::Index i = 0; i < n; ++i) {
      xe.row(i) = x.row(slots[i] / k);
      dye.row(i) = dy.row(slots[i] / k) * weight[slots[i]];
    }
    const Mat<T> out = mlp<T>(s, w.experts[e], xe);
    const Mat<T> dxe = mlp_backward<T>(s, w.experts[e], xe, dye, &g->experts[e]);
    for (Eigen::Index i = 0; i < n; ++i) {
      dweight[slots[i]] = dy.row(slots[i] / k).dot(out.row(i));
      dx.row(slots[i] / k) += dxe.row(i);
    }
  }
  // Gate weights back to the logits.
  Mat<T> dlogits(rows, E);
  for (Eigen::Index r = 0; r < rows; ++r) {
    Vec<T> dp = Vec<T>::Zero(E);
    // Mixtral: w_j = p_j / S, S = sum_i p_i  ->  dp_j = (dw_j - sum_i dw_i w_i) / S.  Jamba: dp_j = dw_j.
    T wdw = 0;
    for (int j = 0; j < k; ++j) wdw += dweight[r * k + j] * weight[r * k + j];
    for (int j = 0; j < k; ++j) {
      const T dw = dweight[r * k + j];
      dp(expert[r * k + j]) += s.renormalize ? (dw - wdw) / sel_sum[r] : dw;
    }
    // softmax backward (torch _softmax_backward_data): dlogit = p (dp - p . dp).
    const T pdp = (p.row(r).transpose().array() * dp.array()).sum();
    for (int e = 0; e < E; ++e) dlogits(r, e) = p(r, e) * (dp(e) - pdp);
  }
  dx += linear_backward<T>(dlogits, x, w.router, &g->router, s.router_bias ? &g->router_b : nullptr);
  return dx;
}

#define BMH_INSTANTIATE(T)                                                                                        \
  template Mat<T> softmax_topk_moe_backward<T>(const MlpSpec&, const MoeWeights<T>&, const Mat<T>&,              \
                                               const std::vector<int64_t>&, const Mat<T>&, MoeWeights<T>*);

BMH_INSTANTIATE(float)
BMH_INSTANTIATE(double)

}  // namespace bmh::ref
