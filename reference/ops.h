// The reference ops: plain Eigen, fp32 or fp64, one sequence at a time, no tricks. Every CUDA kernel is
// checked against these. Shapes: T tokens, d model width, Di = d_inner, N = d_state, K = d_conv, R = dt_rank,
// E experts, F expert hidden width. Matrices are row-major, one row per token.
#pragma once
#include <Eigen/Dense>
#include <cstdint>
#include <vector>

#include "core/model_config.h"
#include "core/tensor.h"

namespace bmh::ref {

template <class T> using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T> using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;

// y [T, out] = x [T, in] W^T + b;  W [out, in] as torch.nn.Linear stores it.
template <class T> Mat<T> linear(const Mat<T>& x, const Mat<T>& W, const Vec<T>* b);

// RMSNorm: x * rsqrt(mean(x^2) + eps) * w (+ b)  (Zyphra ops/triton/layernorm.py rms_norm_ref;
// mamba_ssm ops/triton/layer_norm.py; transformers MambaRMSNorm).
template <class T> Mat<T> rms_norm(const Mat<T>& x, const Vec<T>& w, const Vec<T>* b, double eps);
// LayerNorm: (x - mean) * rsqrt(biased var + eps) * w (+ b)  (torch.nn.LayerNorm).
template <class T> Mat<T> layer_norm(const Mat<T>& x, const Vec<T>& w, const Vec<T>* b, double eps);
template <class T> Mat<T> norm(NormKind kind, const Mat<T>& x, const Vec<T>& w, const Vec<T>* b, double eps);

// Elementwise activations; GeluErf = torch F.gelu default, GeluTanh = gelu_new / approximate="tanh".
template <class T> T activate(Activation a, T x);
template <class T> T softplus(T x);   // torch F.softplus (threshold 20)

// Causal depthwise conv1d + SiLU over one sequence (Zyphra mamba_layer.py: conv1d(padding=K-1)[..., :T]).
// x [T, Di], w [Di, K], b [Di] or null -> [T, Di]. The history before x is `history` [K-1, Di] (oldest
// first; zeros at the start of a sequence).
template <class T> Mat<T> causal_conv1d_silu(const Mat<T>& x, const Mat<T>& w, const Vec<T>* b,
                                             const Mat<T>& history);

// Selective scan (mamba_ssm ops/selective_scan_interface.py selective_scan_ref) over one sequence:
//   dt = softplus(delta + delta_bias); dA = exp(dt*A); h = dA*h + dt*B*u; y = C.h + D*u; y *= silu(z).
// u, delta, z [T, Di]; A [Di, N] (= -exp(A_log)); B, C [T, N]; D, delta_bias [Di].
// `state` [Di, N] is the state before the first token on entry and the last state on return.
template <class T> Mat<T> selective_scan(const Mat<T>& u, const Mat<T>& delta, const Mat<T>& A, const Mat<T>& B,
                                         const Mat<T>& C, const Vec<T>& D, const Mat<T>* z,
                                         const Vec<T>& delta_bias, Mat<T>& state);

// Mamba mixer weights of one block (canonical names blocks.{i}.mamba.*), in T.
template <class T> struct MambaWeights {
  Mat<T> in_proj;  Vec<T> in_proj_b;  bool has_in_proj_b = false;
  Mat<T> conv_w;   Vec<T> conv_b;     bool has_conv_b = false;      // conv_w [Di, K]
  Mat<T> x_proj;                                                     // [R + 2N, Di]
  Mat<T> dt_proj;  Vec<T> dt_bias;                                   // [Di, R], [Di]
  Mat<T> A;                                                          // -exp(A_log) [Di, N]
  Vec<T> dt_norm, b_norm, c_norm;                                    // Jamba inner RMSNorms [R], [N], [N]
  Vec<T> D;
  Mat<T> out_proj; Vec<T> out_proj_b; bool has_out_proj_b = false;
};

// Recurrent state of one Mamba block for one sequence.
template <class T> struct MambaState {
  Mat<T> conv;  // [K-1, Di] last inputs of the conv, oldest first
  Mat<T> ssm;   // [Di, N]
};

// Full Mamba mixer over x [T, d] starting from `state` (zeros = start of sequence); updates state.
// Zyphra mamba_layer.py MambaLayer.forward / step; mamba_ssm modules/mamba_simple.py.
template <class T> Mat<T> mamba_mixer(const MambaSpec& s, const MambaWeights<T>& w, const Mat<T>& x,
                                      MambaState<T>& state);

// MLP weights (dense MLP or one expert).
template <class T> struct MlpWeights {
  Mat<T> fc1; Vec<T> fc1_b; Mat<T> fc2; Vec<T> fc2_b;  // fc1 [F or 2F, d], fc2 [d, F]
};
// Zyphra mlp.py: fc2(act(fc1 x)) or, gated, fc2(act(h[:F]) * h[F:]).
template <class T> Mat<T> mlp(const MlpSpec& s, const MlpWeights<T>& w, const Mat<T>& x);

template <class T> struct MoeWeights {
  Mat<T> router; Vec<T> router_b;  // [E, d], [E]
  std::vector<MlpWeights<T>> experts;
};
struct MoeRoutes {
  int top_k = 1;
  std::vector<int64_t> expert;       // [T*k]
  std::vector<double> prob;          // [T*k] gate weights
  std::vector<double> router_logits; // [T*E]
  std::vector<uint8_t> tie;          // [T]
};
// y = sum over the token's k slots of weight_j * expert_{e_j}(x), routes decided by core/router.h:
// Zyphra switch_mlp.py (sigmoid top-1) or Mixtral/Jamba sparse MoE blocks (softmax top-k).
// `forced` (optional, [T*k]) replaces the choice; the weights stay the router's for the forced experts.
// `half` rounds as a bf16/fp16 run of the released code does (--router-precision model), F32 = exact in T.
template <class T> Mat<T> switch_mlp(const MlpSpec& s, const MoeWeights<T>& w, const Mat<T>& x, MoeRoutes* routes,
                                     const std::vector<int64_t>* forced = nullptr, DType half = DType::F32);

// GPT-NeoX attention (transformers models/gpt_neox/modeling_gpt_neox.py): fused qkv laid out per head as
// [q|k|v] of head_dim each; rotate_half rotary on the first rotary_dim dims of q and k; causal softmax with
// scale 1/sqrt(head_dim); dense out. x [T, d] at positions pos0..pos0+T-1; the cache holds earlier keys and
// values ([pos0, Hkv*hd] each, heads concatenated) and is extended.
// Grouped (s.grouped_qkv; modeling_mixtral.py MixtralAttention, modeling_jamba.py JambaAttention): qkv rows are
// [q heads | k heads | v heads]; query head h reads key/value head h / (H / Hkv) (repeat_kv); rotary_dim 0 =
// no positional encoding (Jamba); sliding_window masks keys more than window-1 positions back (Mistral mask).
template <class T> struct AttentionWeights {
  Mat<T> qkv; Vec<T> qkv_b; bool has_qkv_b = false;
  Mat<T> dense; Vec<T> dense_b; bool has_dense_b = false;
};
template <class T> struct KvCache {
  Mat<T> k, v;  // [positions, d]
};
template <class T> Mat<T> attention(const AttentionSpec& s, const AttentionWeights<T>& w, const Mat<T>& x,
                                    KvCache<T>& cache);
// Rotary (rotate_half, non-interleaved) applied in place to one head's vector q [head_dim] at position pos.
template <class T> void apply_rotary(T* q, int rotary_dim, double theta, int64_t pos);

}  // namespace bmh::ref
