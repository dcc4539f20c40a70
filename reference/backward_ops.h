// Exact backward of the reference ops (reference/ops.h), fp32 or fp64. Each function takes the op's forward
// inputs and the gradient of the loss with respect to its output, returns the gradient with respect to its input
// and ADDS the parameter gradients into the given accumulators (same shapes as the weights; zero them first with
// zeros_like). Intermediates are recomputed from the inputs with the forward's own formulas, so nothing but the
// inputs has to be kept between the forward and the backward pass.
// Every formula names the official file whose forward it differentiates; PyTorch autograd through those files is
// the oracle (tests/fixtures/*/grads.safetensors).
#pragma once
#include <cstdint>
#include <vector>

#include "reference/ops.h"

namespace bmh::ref {

// y = x W^T + b (torch.nn.Linear):  dx = dy W,  dW += dy^T x,  db += sum_rows dy.  db may be null.
template <class T> Mat<T> linear_backward(const Mat<T>& dy, const Mat<T>& x, const Mat<T>& W, Mat<T>* dW, Vec<T>* db);

// RMSNorm (Zyphra ops/triton/layernorm.py rms_norm_ref, transformers MambaRMSNorm), xhat = x r, r = rsqrt(mean x^2
// + eps): dw += sum dy xhat, db += sum dy, dx = r (g - xhat mean(g xhat)), g = dy w.
// LayerNorm (torch.nn.LayerNorm, biased variance): dx = r (g - mean(g) - xhat mean(g xhat)).
template <class T> Mat<T> norm_backward(NormKind kind, const Mat<T>& dy, const Mat<T>& x, const Vec<T>& w,
                                        double eps, Vec<T>* dw, Vec<T>* db);

// d activate(a, x) / dx for the activations of reference/ops.h (torch's gelu / gelu tanh / silu / relu backward).
template <class T> T activation_grad(Activation a, T x);
// d softplus / dx with torch's threshold: 1 above 20, sigmoid(x) below (torch F.softplus backward).
template <class T> T softplus_grad(T x);

// Causal depthwise conv1d + SiLU from a zero history (Zyphra mamba_layer.py: act(conv1d(x)[..., :T])).
template <class T> Mat<T> causal_conv1d_silu_backward(const Mat<T>& dy, const Mat<T>& x, const Mat<T>& w,
                                                      const Vec<T>* b, Mat<T>* dw, Vec<T>* db);

// Selective scan from a zero state (mamba_ssm / Zyphra ops/selective_scan_interface.py selective_scan_ref with
// delta_bias and delta_softplus), differentiated by the reverse-time recurrence. Outputs are written (not added)
// for the per-token inputs and added for the per-channel parameters. dz may be null when z is.
template <class T> struct ScanGrads {
  Mat<T> du, ddelta, dB, dC, dz;  // per token
  Mat<T> dA;                      // [Di, N], accumulated
  Vec<T> dD, ddelta_bias;         // [Di], accumulated
  Mat<T> out;                     // the scan's forward output (recomputed on the way), for out_proj's gradient
};
template <class T> void selective_scan_backward(const Mat<T>& dy, const Mat<T>& u, const Mat<T>& delta,
                                                const Mat<T>& A, const Mat<T>& B, const Mat<T>& C, const Vec<T>& D,
                                                const Mat<T>* z, const Vec<T>& delta_bias, ScanGrads<T>* g);

// The whole Mamba mixer over one sequence from a zero state. The gradient of A is returned for A_log
// (A = -exp(A_log) so dA_log = dA * A) in g->A. With s.inner_norms (Jamba) also through the dt/B/C RMSNorms
// (g->dt_norm, b_norm, c_norm).
template <class T> Mat<T> mamba_mixer_backward(const MambaSpec& s, const MambaWeights<T>& w, const Mat<T>& x,
                                               const Mat<T>& dy, MambaWeights<T>* g);

// Dense MLP / one expert (Zyphra mlp.py, GPT-NeoX GPTNeoXMLP), any number of rows.
template <class T> Mat<T> mlp_backward(const MlpSpec& s, const MlpWeights<T>& w, const Mat<T>& x, const Mat<T>& dy,
                                       MlpWeights<T>* g);

// Zyphra switch_mlp.py with the experts already chosen (expert[row]): y = expert_e(x) * sigmoid(logit_e).
// Gradient through the expert and through the sigmoid gate value (router weight and bias, and x through the
// router); the argmax itself is not differentiated, as in PyTorch. Rows are independent, so x is any set of rows.
// A SoftmaxTopK block (expert [rows * k]) is passed on to softmax_topk_moe_backward.
template <class T> Mat<T> switch_mlp_backward(const MlpSpec& s, const MoeWeights<T>& w, const Mat<T>& x,
                                              const std::vector<int64_t>& expert, const Mat<T>& dy,
                                              MoeWeights<T>* g);

// Mixtral / Jamba sparse MoE (modeling_mixtral.py, modeling_jamba.py) with the k experts of each row already
// chosen (expert [rows * k], slot order): y = sum_j w_j expert_{e_j}(x), w_j the softmax weight of e_j (fp32 softmax
// over all E logits), divided by the sum over the row's k slots when s.renormalize (Mixtral). Gradient through
// the experts, the k weights, the renormalisation and the softmax (so every router row gets a gradient); top-k
// itself is not differentiated (reference/backward_moe.cpp).
template <class T> Mat<T> softmax_topk_moe_backward(const MlpSpec& s, const MoeWeights<T>& w, const Mat<T>& x,
                                                    const std::vector<int64_t>& expert, const Mat<T>& dy,
                                                    MoeWeights<T>* g);

// Causal attention over one sequence from position 0, both layouts of reference/ops.h attention: GPT-NeoX
// (modeling_gpt_neox.py, eager path) and grouped q/k/v with GQA, full or no RoPE and the optional sliding window
// (modeling_mixtral.py, modeling_jamba.py); the fused qkv gradient keeps the fused row order.
template <class T> Mat<T> attention_backward(const AttentionSpec& s, const AttentionWeights<T>& w, const Mat<T>& x,
                                             const Mat<T>& dy, AttentionWeights<T>* g);

// Mean next-token cross-entropy over the rows of `logits` [rows, V] whose target is >= 0 (torch F.cross_entropy,
// computed in double). Adds (softmax - onehot) * scale to dlogits when given (scale = 1 / number of targets
// of the whole batch). Returns the sum (not the mean) of the row losses.
template <class T> double cross_entropy_sum(const Mat<T>& logits, const std::vector<int64_t>& target,
                                            Mat<T>* dlogits, double scale);

// Zero-filled accumulators shaped like the weights.
template <class T> MambaWeights<T> zeros_like(const MambaWeights<T>& w);
template <class T> MlpWeights<T> zeros_like(const MlpWeights<T>& w);
template <class T> MoeWeights<T> zeros_like(const MoeWeights<T>& w);
template <class T> AttentionWeights<T> zeros_like(const AttentionWeights<T>& w);
// a += b, field by field (per-sequence gradients summed in a fixed order, so the result is deterministic).
template <class T> void add_into(MambaWeights<T>& a, const MambaWeights<T>& b);
template <class T> void add_into(AttentionWeights<T>& a, const AttentionWeights<T>& b);

}  // namespace bmh::ref
