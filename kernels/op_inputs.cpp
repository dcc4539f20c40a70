// Random inputs of an op-table case (see op_cases.h), seeded per case and rounded to the dtype the kernel reads.
#include <algorithm>
#include <cmath>
#include <random>

#include "core/error.h"
#include "kernels/op_cases.h"
#include "kernels/variants.h"

namespace bmh::cuda {
namespace {

float round_to(Dt dt, float x) {
  float out;
  uint16_t h;
  switch (dt) {
    case Dt::F32: return x;
    case Dt::BF16: f32_to_dt(&x, &h, dt, 1); dt_to_f32(&h, &out, dt, 1); return out;
    case Dt::F16: f32_to_dt(&x, &h, dt, 1); dt_to_f32(&h, &out, dt, 1); return out;
  }
  return x;
}

struct Gen {
  std::mt19937_64 rng;
  std::vector<float> normal(size_t n, double scale, Dt dt, double mean = 0) {
    std::normal_distribution<double> d(mean, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = round_to(dt, float(d(rng)));
    return v;
  }
  std::vector<float> uniform(size_t n, double lo, double hi, Dt dt) {
    std::uniform_real_distribution<double> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = round_to(dt, float(d(rng)));
    return v;
  }
  std::vector<int64_t> ints(size_t n, int64_t lo, int64_t hi) {
    std::uniform_int_distribution<int64_t> d(lo, hi);
    std::vector<int64_t> v(n);
    for (auto& x : v) x = d(rng);
    return v;
  }
};

}  // namespace

std::string op_inputs_key(const OpCase& c) {
  OpCase k = c;
  if (c.op == OpKind::Scan) k.variant = 0, k.E = 0;
  if (c.op == OpKind::Conv1d || c.op == OpKind::AddNorm) k.variant = 0;
  return k.name();
}

OpData make_op_inputs(const OpCase& c, uint64_t seed) {
  OpData d;
  Gen g{std::mt19937_64(seed * 0x9E3779B97F4A7C15ull + uint64_t(c.op) * 1315423911ull + c.M * 31 + c.N)};
  const Dt dt = c.dt;
  const int R = c.rows();
  auto& in = d.in;
  switch (c.op) {
    case OpKind::Linear:
      in["x"] = g.normal(size_t(c.M) * c.K, 1.0, dt);
      in["W"] = g.normal(size_t(c.N) * c.K, 1.0 / std::sqrt(double(c.K)), dt);
      if (c.flag) in["y0"] = g.normal(size_t(c.M) * c.N, 1.0, Dt::F32);
      break;
    case OpKind::AddNorm:
      in["residual"] = g.normal(size_t(R) * c.N, 1.0, Dt::F32, 0.3);
      if (c.flag) in["delta"] = g.normal(size_t(R) * c.N, 0.5, dt);
      in["w"] = g.normal(c.N, 0.1, Dt::F32, 1.0);
      if (c.bias) in["b"] = g.normal(c.N, 0.1, Dt::F32);
      break;
    case OpKind::MlpAct:
      in["h"] = g.normal(size_t(R) * (c.flag ? 2 : 1) * c.N, 1.5, dt);
      if (c.bias) in["b"] = g.normal((c.flag ? 2 : 1) * c.N, 0.3, Dt::F32);
      break;
    case OpKind::Conv1d:
    case OpKind::Conv1dUpdate:
      in["xz"] = g.normal(size_t(R) * (2 * c.N + c.M), 1.0, dt);
      in["w"] = g.normal(size_t(c.N) * c.K, 0.5, Dt::F32);
      if (c.bias) in["b"] = g.normal(c.N, 0.2, Dt::F32);
      in["state"] = g.normal(size_t(c.B) * (c.K - 1) * c.N, 1.0, Dt::F32);
      break;
    case OpKind::Scan:
    case OpKind::StateUpdate: {
      const int Di = c.N, N = c.K;
      in["u"] = g.normal(size_t(R) * Di, 1.0, dt);
      in["delta"] = g.normal(size_t(R) * Di, 1.0, dt, -2.0);   // softplus(-2 +- 1): dt ~ 0.05..0.3
      if (c.flag) in["z"] = g.normal(size_t(R) * Di, 1.0, dt);
      in["bc"] = g.normal(size_t(R) * ((c.M > 0 ? c.M : 3) + 2 * N), 1.0, dt);
      std::vector<float> A = g.uniform(size_t(Di) * N, 0.0, 1.0, Dt::F32);
      for (size_t i = 0; i < A.size(); ++i) A[i] = -std::exp(std::log(double(i % N + 1)) + 0.1 * A[i]);  // ~ -(1..N)
      in["A"] = A;
      in["D"] = g.normal(Di, 0.5, Dt::F32, 1.0);
      if (c.bias) in["delta_bias"] = g.normal(Di, 0.5, Dt::F32);
      in["state"] = g.normal(size_t(c.B) * Di * N, 0.5, Dt::F32);
      if (c.op == OpKind::StateUpdate && (c.variant & 1)) {
        // dt_proj [Di, Rk] over the bc rows' first Rk columns; in["delta"] becomes what the dt_proj GEMV would store
        // (the exact dot rounded to the dtype), so the reference check is unchanged. delta_bias shifted by -2 keeps
        // softplus(delta + bias) in the range of the other cases (delta ~ N(0, 1) here).
        const int Rk = c.M, ld = Rk + 2 * N;
        in["dt_w"] = g.normal(size_t(Di) * Rk, 1.0 / std::sqrt(double(Rk)), dt);
        for (int r = 0; r < R; ++r)
          for (int ch = 0; ch < Di; ++ch) {
            double s = 0;
            for (int k = 0; k < Rk; ++k) s += double(in["dt_w"][size_t(ch) * Rk + k]) * in["bc"][size_t(r) * ld + k];
            in["delta"][size_t(r) * Di + ch] = round_to(dt, float(s));
          }
        for (float& b : in["delta_bias"]) b -= 2.f;
      }
      break;
    }
    case OpKind::Gemv: {
      const int E = std::max(c.E, 1);
      in["W"] = g.normal(size_t(E) * c.N * c.K, 1.0 / std::sqrt(double(c.K)), dt);
      in["x"] = g.normal(size_t(c.B) * c.K, 1.0, dt);
      if (c.bias) in["bias"] = g.normal(size_t(E) * c.N, 0.2, Dt::F32);
      if (c.flag) {
        d.ints["expert"] = g.ints(c.B, 0, E - 1);
        in["scale"] = g.uniform(c.B, 0.1, 1.0, Dt::F32);
        in["y0"] = g.normal(size_t(c.B) * c.N, 1.0, Dt::F32);
      }
      break;
    }
    case OpKind::NormGemv: {
      const int E = std::max(c.E, 1);
      in["residual"] = g.normal(size_t(c.B) * c.K, 1.0, Dt::F32, 0.3);
      in["w"] = g.normal(c.K, 0.1, Dt::F32, 1.0);
      if (c.bias) in["b"] = g.normal(c.K, 0.1, Dt::F32);
      in["W"] = g.normal(size_t(E) * c.N * c.K, 1.0 / std::sqrt(double(c.K)), dt);
      if (c.bias) in["bias"] = g.normal(size_t(E) * c.N, 0.2, Dt::F32);
      if (c.flag) {
        d.ints["expert"] = g.ints(c.B, 0, E - 1);
        in["scale"] = g.uniform(c.B, 0.1, 1.0, Dt::F32);
        in["y0"] = g.normal(size_t(c.B) * c.N, 1.0, Dt::F32);
      }
      break;
    }
    case OpKind::MoeRoute:
      in["logits"] = g.normal(size_t(R) * c.E, 2.0, Dt::F32);
      if (c.bias) in["bias"] = g.normal(c.E, 0.5, Dt::F32);
      if (c.flag) d.ints["forced"] = g.ints(R, 0, c.E - 1);
      in["x"] = g.normal(size_t(R) * c.N, 1.0, dt);
      in["ys"] = g.normal(size_t(R) * c.N, 1.0, Dt::F32);
      in["residual"] = g.normal(size_t(R) * c.N, 1.0, Dt::F32);
      break;
    case OpKind::Rotary:
      in["qkv"] = g.normal(size_t(R) * 3 * c.H * c.hd, 1.0, dt);
      break;
    case OpKind::RouterTopK: {
      // Logits as the model dtype would carry them, large enough that the half-precision sigmoid saturates for
      // some; every 4th row gets k+1 equal maximal logits at experts 0..k, so the tie decides the k-th slot.
      in["logits"] = g.normal(size_t(R) * c.E, 6.0, dt);
      for (int r = 0; r < R; r += 4) {
        float* row = &in["logits"][size_t(r) * c.E];
        const float top = round_to(dt, *std::max_element(row, row + c.E) + 1.f);
        for (int e = 0; e <= c.K && e < c.E; ++e) row[e] = top;
      }
      break;
    }
    case OpKind::AttnGqa: {
      const size_t W = size_t(c.H + 2 * c.K) * c.hd;
      in["qkv"] = g.normal(size_t(c.B) * W, 1.0, dt);
      in["kcache"] = g.normal(size_t(c.B) * c.K * c.S * c.hd, 1.0, dt);
      in["vcache"] = g.normal(size_t(c.B) * c.K * c.S * c.hd, 1.0, dt);
      d.ints["pos"] = {int64_t(c.S - 4)};  // the new token at S-4 attends to 0..S-4; later slots stay unread
      break;
    }
    case OpKind::Softmax:
      in["scores"] = g.normal(size_t(c.H) * c.T * c.S, 3.0, Dt::F32);
      break;
    case OpKind::AttnDecode:
      in["qkv"] = g.normal(size_t(c.B) * 3 * c.H * c.hd, 1.0, dt);
      in["kcache"] = g.normal(size_t(c.B) * c.H * c.S * c.hd, 1.0, dt);
      in["vcache"] = g.normal(size_t(c.B) * c.H * c.S * c.hd, 1.0, dt);
      // attend to all but the last 3 cached positions, or to the first K when K is set
      d.ints["pos"] = {int64_t(c.K > 0 ? c.K - 1 : c.S - 1 - (c.S > 4 ? 3 : 0))};
      break;
    case OpKind::AttnPrefill:  // GPT-NeoX [q|k|v] per head, or (K > 0) grouped [q heads | K k heads | K v heads]
      in["qkv"] = g.normal(size_t(R) * (c.K > 0 ? c.H + 2 * c.K : 3 * c.H) * c.hd, 1.0, dt);
      break;
    case OpKind::LogSoftmax:
      in["logits"] = g.normal(size_t(R) * c.V, 3.0, Dt::F32);
      d.ints["target"] = g.ints(R, 0, c.V - 1);
      break;
    case OpKind::Embedding:
      in["table"] = g.normal(size_t(c.V) * c.N, 1.0, dt);
      d.ints["ids"] = g.ints(R, 0, c.V - 1);
      break;
  }
  // LogSoftmax: make the first row's target its argmax so the greedy flag is exercised both ways.
  if (c.op == OpKind::LogSoftmax && R > 0) {
    auto& l = in["logits"];
    l[size_t(d.ints["target"][0])] = 1e3f;
  }
  return d;
}

}  // namespace bmh::cuda
