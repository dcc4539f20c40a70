// Every kernel of the op table (kernels/op_cases.h) against reference/ops.h in fp64 on fresh random inputs,
// outputs poisoned with NaN before each run. Tolerances by the dtype the output is rounded to (gpu_test_util.h);
// kernels that write fp32 from bf16/fp16 inputs compute in fp32 and are held to 1e-5 (1e-4 for cuBLAS, whose
// reduced-precision inputs go through tensor cores).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/router.h"
#include "gpu_test_util.h"
#include "kernels/device.h"
#include "kernels/bias_act.cuh"
#include "kernels/gemm.h"
#include "kernels/launch.cuh"
#include "kernels/op_cases.h"
#include "reference/ops.h"

namespace bmh {
namespace {

using cuda::Dt;
using cuda::OpCase;
using cuda::OpKind;
using gpu_test::unit_roundoff;
using M = ref::Mat<double>;
using Vd = ref::Vec<double>;

M mat(const std::vector<float>& v, int rows, int cols, int ld = -1, int col0 = 0, int row0 = 0) {
  if (ld < 0) ld = cols;
  M m(rows, cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) m(r, c) = v[size_t(row0 + r) * ld + col0 + c];
  return m;
}
Vd vec(const std::vector<float>& v, int n, int off = 0) {
  Vd x(n);
  for (int i = 0; i < n; ++i) x(i) = v[off + i];
  return x;
}
void append(std::vector<double>& out, const M& m) {
  for (int r = 0; r < m.rows(); ++r)
    for (int c = 0; c < m.cols(); ++c) out.push_back(m(r, c));
}

// Tolerance on an output's relative Frobenius error: c * u, u the unit roundoff of the dtype the output is stored in
// (gpu_test_util.h), c per op:
// - bf16/fp16 outputs are one rounding of an fp32 result, whose relative error has RMS u/sqrt(3) = 0.58u; the
//   H200 run of 2026-12-02 measured 0.43u..0.53u for every op and 0.84u for cuBLAS Linear (tensor-core products
//   summed in a different order): c = 2 for all of them, except where a kernel rounds an intermediate to the dtype
//   before the last product: attention prefill rounds the probabilities before P V (two roundings, c = 4), and the
//   fused norm + GEMV rounds the normalised row before the GEMV, as add_norm does (two roundings, c = 4).
// - fp32 outputs differ from the fp64 reference by summation order: about sqrt(K) u over K-term sums; K <= 16k
//   gives 128u, so c = 168 (1e-5). The scan and state update compound T steps of exp/multiply-add: c = 336.
double op_c(OpKind op, Dt dt) {
  if (dt != Dt::F32) return (op == OpKind::AttnPrefill || op == OpKind::NormGemv) ? 4 : 2;
  return (op == OpKind::Scan || op == OpKind::StateUpdate) ? 336 : 168;
}

// Every comparison of the running case goes through here; the largest error is recorded as the test property
// "max_rel_err", so a GPU run shows how far each op sits below its tolerance (gpu_check prints them per op).
double g_max_err = 0;
double rel_err(const std::vector<float>& a, const std::vector<double>& b) {
  const double e = gpu_test::rel_err(a, b);
  g_max_err = std::max(g_max_err, e);
  return e;
}

class OpTest : public ::testing::TestWithParam<OpCase> {};

TEST_P(OpTest, MatchesReference) {
  BMH_REQUIRE_GPU();
  const OpCase& c = GetParam();
  g_max_err = 0;
  const int R = c.rows();
  for (uint64_t seed = 1; seed <= (c.perf ? 1u : 2u); ++seed) {  // fresh input sets per case
    cuda::OpData d = cuda::make_op_inputs(c, seed * 7919 + 3);
    cuda::run_op(c, d);
    auto& in = d.in;
    auto& out = d.out;
    const double tol = op_c(c.op, c.dt) * unit_roundoff(c.dt);
    switch (c.op) {
      case OpKind::Linear: {
        M y = ref::linear<double>(mat(in["x"], c.M, c.K), mat(in["W"], c.N, c.K), nullptr);
        if (c.flag) y += mat(in["y0"], c.M, c.N);
        std::vector<double> r;
        append(r, y);
        const double t = c.flag ? (c.dt == Dt::F32 ? 1e-5 : 1e-4) : tol;
        EXPECT_LT(rel_err(out["y"], r), t) << c.name();
        break;
      }
      case OpKind::AddNorm: {
        M x = mat(in["residual"], R, c.N);
        if (c.flag) x += mat(in["delta"], R, c.N);
        Vd w = vec(in["w"], c.N), b = c.bias ? vec(in["b"], c.N) : Vd();
        M y = ref::norm<double>(c.norm, x, w, c.bias ? &b : nullptr, 1e-5);
        std::vector<double> ry, rx;
        append(ry, y);
        append(rx, x);
        EXPECT_LT(rel_err(out["y"], ry), tol) << c.name();
        EXPECT_LT(rel_err(out["residual"], rx), 1e-6) << c.name() << " residual";
        break;
      }
      case OpKind::MlpAct: {
        const int F = c.N, F1 = c.flag ? 2 * F : F;
        std::vector<double> r;
        for (int i = 0; i < R; ++i)
          for (int f = 0; f < F; ++f) {
            double a = in["h"][size_t(i) * F1 + f] + (c.bias ? in["b"][f] : 0.0);
            double v = ref::activate<double>(c.act, a);
            if (c.flag) v *= in["h"][size_t(i) * F1 + F + f] + (c.bias ? in["b"][F + f] : 0.0);
            r.push_back(v);
          }
        EXPECT_LT(rel_err(out["y"], r), tol) << c.name();
        break;
      }
      case OpKind::Conv1d:
      case OpKind::Conv1dUpdate: {
        const int Di = c.N, K = c.K;
        M w = mat(in["w"], Di, K);
        Vd b = c.bias ? vec(in["b"], Di) : Vd();
        std::vector<double> ry, rs;
        for (int s = 0; s < c.B; ++s) {
          M x = mat(in["xz"], c.T, Di, 2 * Di + c.M, 0, s * c.T);
          M hist = mat(in["state"], K - 1, Di, Di, 0, s * (K - 1));
          append(ry, ref::causal_conv1d_silu<double>(x, w, c.bias ? &b : nullptr, hist));
          M all(K - 1 + c.T, Di);
          all << hist, x;
          append(rs, M(all.bottomRows(K - 1)));
        }
        EXPECT_LT(rel_err(out["y"], ry), tol) << c.name();
        EXPECT_LT(rel_err(out["state"], rs), 1e-7) << c.name() << " state";
        break;
      }
      case OpKind::Scan:
      case OpKind::StateUpdate: {
        const int Di = c.N, N = c.K, p0 = c.M > 0 ? c.M : 3, ld = p0 + 2 * N;
        M A = mat(in["A"], Di, N);
        Vd D = vec(in["D"], Di), db = c.bias ? vec(in["delta_bias"], Di) : Vd(Vd::Zero(Di));
        std::vector<double> ry, rs;
        for (int s = 0; s < c.B; ++s) {
          const int r0 = s * c.T;
          M u = mat(in["u"], c.T, Di, Di, 0, r0), dl = mat(in["delta"], c.T, Di, Di, 0, r0);
          M Bm = mat(in["bc"], c.T, N, ld, p0, r0), Cm = mat(in["bc"], c.T, N, ld, p0 + N, r0);
          M z = c.flag ? mat(in["z"], c.T, Di, Di, 0, r0) : M();
          M st = mat(in["state"], Di, N, N, 0, s * Di);
          append(ry, ref::selective_scan<double>(u, dl, A, Bm, Cm, D, c.flag ? &z : nullptr, db, st));
          append(rs, st);
        }
        // bf16/fp16 round only the output; the state stays fp32 (its error is fp32 summation over T steps).
        EXPECT_LT(rel_err(out["y"], ry), tol) << c.name();
        EXPECT_LT(rel_err(out["state"], rs), 2e-5) << c.name() << " last state";
        break;
      }
      case OpKind::Gemv: {
        const int E = std::max(c.E, 1);
        std::vector<double> r;
        for (int b = 0; b < c.B; ++b) {
          const int e = c.flag ? int(d.ints["expert"][b]) : 0;
          M W = mat(in["W"], c.N, c.K, c.K, 0, e * c.N);
          Vd bias = c.bias ? vec(in["bias"], c.N, e * c.N) : Vd();
          M y = ref::linear<double>(mat(in["x"], 1, c.K, c.K, 0, b), W, c.bias ? &bias : nullptr);
          if (c.flag) y = y * double(in["scale"][b]) + mat(in["y0"], 1, c.N, c.N, 0, b);
          append(r, y);
        }
        (void)E;
        EXPECT_LT(rel_err(out["y"], r), c.flag ? 1e-5 : tol) << c.name();
        break;
      }
      case OpKind::NormGemv: {
        Vd w = vec(in["w"], c.K), nb = c.bias ? vec(in["b"], c.K) : Vd();
        M xn = ref::norm<double>(c.norm, mat(in["residual"], c.B, c.K), w, c.bias ? &nb : nullptr, 1e-5);
        std::vector<double> r;
        for (int b = 0; b < c.B; ++b) {
          const int e = c.flag ? int(d.ints["expert"][b]) : 0;
          M W = mat(in["W"], c.N, c.K, c.K, 0, e * c.N);
          Vd bias = c.bias ? vec(in["bias"], c.N, e * c.N) : Vd();
          M y = ref::linear<double>(M(xn.row(b)), W, c.bias ? &bias : nullptr);
          if (c.flag) y = y * double(in["scale"][b]) + mat(in["y0"], 1, c.N, c.N, 0, b);
          append(r, y);
        }
        // Both versions round the normed row to the dtype before the GEMV (add_norm writes it in the dtype): one
        // dtype rounding of x and one of y (none of y when it accumulates into fp32).
        EXPECT_LT(rel_err(out["y"], r), c.dt == Dt::F32 ? 1e-5 : tol) << c.name();
        break;
      }
      case OpKind::MoeRoute: {
        const int E = c.E, dd = c.N;
        std::vector<int64_t> want_e(R);
        std::vector<double> want_logits, want_gate(R);
        for (int r = 0; r < R; ++r) {
          std::vector<double> p(E);
          int best = 0;
          for (int e = 0; e < E; ++e) {
            double l = in["logits"][size_t(r) * E + e] + (c.bias ? in["bias"][e] : 0.0);
            want_logits.push_back(l);
            p[e] = 1 / (1 + std::exp(-l));
            if (p[e] > p[best]) best = e;
          }
          if (c.flag) best = int(d.ints["forced"][r]);
          want_e[r] = best;
          want_gate[r] = p[best];
        }
        EXPECT_EQ(d.out_ints["expert"], want_e) << c.name();
        EXPECT_LT(rel_err(out["gate"], want_gate), 1e-6) << c.name();
        EXPECT_LT(rel_err(out["logits"], want_logits), 1e-7) << c.name();
        const auto& off = d.out_ints["offsets"];
        const auto& perm = d.out_ints["perm"];
        ASSERT_EQ(off.size(), size_t(E + 1));
        EXPECT_EQ(off[0], 0);
        EXPECT_EQ(off[E], R);
        std::vector<int64_t> sorted = perm;
        std::sort(sorted.begin(), sorted.end());
        for (int r = 0; r < R; ++r) ASSERT_EQ(sorted[r], r) << "perm is not a permutation";
        std::vector<double> want_res(size_t(R) * dd), want_xs;
        for (size_t i = 0; i < want_res.size(); ++i) want_res[i] = in["residual"][i];
        for (int e = 0; e < E; ++e)
          for (int64_t i = off[e]; i < off[e + 1]; ++i) {
            const int64_t r = perm[i];
            EXPECT_EQ(want_e[r], e) << "slot " << i << " of expert " << e << " holds token " << r;
            for (int j = 0; j < dd; ++j) {
              want_xs.push_back(in["x"][size_t(r) * dd + j]);
              want_res[size_t(r) * dd + j] += want_gate[r] * in["ys"][size_t(i) * dd + j];
            }
          }
        EXPECT_EQ(rel_err(out["xs"], want_xs), 0.0) << c.name() << " permuted rows are copies";
        EXPECT_LT(rel_err(out["residual"], want_res), 1e-6) << c.name();
        break;
      }
      case OpKind::RouterTopK: {
        // core/router.h on the same logits: experts, ties and (model-dtype mode) gates bit for bit; exact fp32 gates
        // within 1e-6 (device expf vs host exp).
        MlpSpec spec;
        spec.n_experts = c.E;
        spec.top_k = c.K;
        spec.router = c.N == 1 ? RouterKind::SoftmaxTopK : RouterKind::SigmoidTop1;
        spec.renormalize = c.flag;
        const DType half = c.dt == Dt::BF16 ? DType::BF16 : c.dt == Dt::F16 ? DType::F16 : DType::F32;
        std::vector<int64_t> want_e, want_t;
        std::vector<double> want_g;
        int ties = 0;
        for (int r = 0; r < R; ++r) {
          const TokenRoute t = route_token<float>(spec, &in["logits"][size_t(r) * c.E], half);
          for (int j = 0; j < c.K; ++j) want_e.push_back(t.expert[j]), want_g.push_back(t.weight[j]);
          want_t.push_back(t.tie);
          ties += t.tie;
        }
        EXPECT_GT(ties, 0) << c.name() << ": the planted ties must reach the tie rule";
        EXPECT_EQ(d.out_ints["expert"], want_e) << c.name();
        EXPECT_EQ(d.out_ints["tie"], want_t) << c.name();
        if (half == DType::F32) {
          EXPECT_LT(rel_err(out["gate"], want_g), 1e-6) << c.name();
        } else {
          for (size_t i = 0; i < want_g.size(); ++i) EXPECT_EQ(out["gate"][i], float(want_g[i])) << c.name() << " " << i;
        }
        break;
      }
      case OpKind::AttnGqa: {
        // Host: RoPE (theta 1e6) on each q and k head at the position, the new k/v into the cache, then each query
        // head h attends with key/value head h / (H / K).
        const int H = c.H, Hkv = c.K, hd = c.hd, pos = int(d.ints["pos"][0]), W = (H + 2 * Hkv) * hd;
        std::vector<double> want;
        for (int b = 0; b < c.B; ++b) {
          std::vector<double> x(in["qkv"].begin() + size_t(b) * W, in["qkv"].begin() + size_t(b + 1) * W);
          for (int h = 0; h < H + Hkv; ++h) ref::apply_rotary<double>(&x[size_t(h) * hd], c.rd, 1e6, pos);
          for (int h = 0; h < H; ++h) {
            const int g = h / (H / Hkv);
            auto key = [&](int s, int i) {
              return s == pos ? x[size_t(H + g) * hd + i] : double(in["kcache"][((size_t(b) * Hkv + g) * c.S + s) * hd + i]);
            };
            auto val = [&](int s, int i) {
              return s == pos ? x[size_t(H + Hkv + g) * hd + i]
                              : double(in["vcache"][((size_t(b) * Hkv + g) * c.S + s) * hd + i]);
            };
            std::vector<double> sc(pos + 1);
            double mx = -INFINITY, sum = 0;
            for (int s = 0; s <= pos; ++s) {
              double acc = 0;
              for (int i = 0; i < hd; ++i) acc += x[size_t(h) * hd + i] * key(s, i);
              sc[s] = acc / std::sqrt(double(hd));
              mx = std::max(mx, sc[s]);
            }
            for (auto& v : sc) sum += (v = std::exp(v - mx));
            for (int i = 0; i < hd; ++i) {
              double o = 0;
              for (int s = 0; s <= pos; ++s) o += sc[s] * val(s, i);
              want.push_back(o / sum);
            }
          }
        }
        // bf16/fp16: the rotated q and k are rounded to the dtype before the dot products, as transformers does.
        EXPECT_LT(rel_err(out["out"], want), c.dt == Dt::F32 ? 1e-5 : 2 * tol) << c.name();
        break;
      }
      case OpKind::Rotary: {
        const int H = c.H, hd = c.hd, d3 = 3 * H * hd, pos0 = c.S - c.T;
        std::vector<double> want(in["qkv"].begin(), in["qkv"].end());
        std::vector<double> wk, wv;
        std::vector<float> gk, gv;
        for (int b = 0; b < c.B; ++b)
          for (int t = 0; t < c.T; ++t)
            for (int h = 0; h < H; ++h) {
              double* q = &want[size_t(b * c.T + t) * d3 + size_t(h) * 3 * hd];
              ref::apply_rotary<double>(q, c.rd, 10000.0, pos0 + t);
              ref::apply_rotary<double>(q + hd, c.rd, 10000.0, pos0 + t);
              const size_t cache = ((size_t(b) * H + h) * c.S + pos0 + t) * hd;
              for (int i = 0; i < hd; ++i) {
                wk.push_back(q[hd + i]);
                wv.push_back(q[2 * hd + i]);
                gk.push_back(out["kcache"][cache + i]);
                gv.push_back(out["vcache"][cache + i]);
              }
            }
        // The kernel, like transformers, rounds cos/sin to the activation dtype: one more rounding in bf16/fp16.
        EXPECT_LT(rel_err(out["qkv"], want), c.dt == Dt::F32 ? 1e-6 : tol) << c.name();
        EXPECT_LT(rel_err(gk, wk), c.dt == Dt::F32 ? 1e-6 : tol) << c.name() << " k cache";
        EXPECT_EQ(rel_err(gv, wv), 0.0) << c.name() << " v cache is a copy";
        break;
      }
      case OpKind::Softmax: {
        std::vector<double> want;
        const int pos0 = c.S - c.T;
        for (int h = 0; h < c.H; ++h)
          for (int t = 0; t < c.T; ++t) {
            const float* x = &in["scores"][(size_t(h) * c.T + t) * c.S];
            double mx = -INFINITY, sum = 0;
            for (int s = 0; s <= pos0 + t; ++s) mx = std::max(mx, double(x[s]));
            for (int s = 0; s <= pos0 + t; ++s) sum += std::exp(x[s] - mx);
            for (int s = 0; s < c.S; ++s) want.push_back(s <= pos0 + t ? std::exp(x[s] - mx) / sum : 0.0);
          }
        EXPECT_LT(rel_err(out["P"], want), tol) << c.name();
        break;
      }
      case OpKind::AttnDecode: {
        const int H = c.H, hd = c.hd, S = int(d.ints["pos"][0]) + 1;
        std::vector<double> want;
        for (int b = 0; b < c.B; ++b)
          for (int h = 0; h < H; ++h) {
            const float* q = &in["qkv"][size_t(b) * 3 * H * hd + size_t(h) * 3 * hd];
            std::vector<double> sc(S);
            double mx = -INFINITY, sum = 0;
            for (int s = 0; s < S; ++s) {
              const float* k = &in["kcache"][((size_t(b) * H + h) * c.S + s) * hd];
              double acc = 0;
              for (int i = 0; i < hd; ++i) acc += double(q[i]) * k[i];
              sc[s] = acc / std::sqrt(double(hd));
              mx = std::max(mx, sc[s]);
            }
            for (auto& x : sc) sum += (x = std::exp(x - mx));
            for (int i = 0; i < hd; ++i) {
              double o = 0;
              for (int s = 0; s < S; ++s) o += sc[s] * in["vcache"][((size_t(b) * H + h) * c.S + s) * hd + i];
              want.push_back(o / sum);
            }
          }
        EXPECT_LT(rel_err(out["out"], want), tol) << c.name();
        break;
      }
      case OpKind::AttnPrefill: {
        // Column of q, k, v of head h in a row: GPT-NeoX [q|k|v] per head, or (K > 0) grouped-query
        // [q heads | K k heads | K v heads] with query head h reading kv head h / (H / K) (transformers repeat_kv).
        const int H = c.H, hd = c.hd, gq = c.K > 0, ld = (gq ? H + 2 * c.K : 3 * H) * hd;
        auto qcol = [&](int h) { return size_t(gq ? h * hd : h * 3 * hd); };
        auto kcol = [&](int h) { return gq ? size_t(H + h / (H / c.K)) * hd : size_t(h) * 3 * hd + hd; };
        auto vcol = [&](int h) { return gq ? size_t(H + c.K + h / (H / c.K)) * hd : size_t(h) * 3 * hd + 2 * hd; };
        std::vector<double> want(size_t(R) * H * hd);
        const auto& qkv = in["qkv"];
        for (int b = 0; b < c.B; ++b)
          for (int h = 0; h < H; ++h)
            for (int t = 0; t < c.T; ++t) {
              const float* q = &qkv[size_t(b * c.T + t) * ld + qcol(h)];
              std::vector<double> sc(t + 1);
              double mx = -INFINITY, sum = 0;
              for (int s = 0; s <= t; ++s) {
                const float* k = &qkv[size_t(b * c.T + s) * ld + kcol(h)];
                double acc = 0;
                for (int i = 0; i < hd; ++i) acc += double(q[i]) * k[i];
                sc[s] = acc / std::sqrt(double(hd));
                mx = std::max(mx, sc[s]);
              }
              for (auto& x : sc) sum += (x = std::exp(x - mx));
              for (int s = 0; s <= t; ++s) {
                const float* v = &qkv[size_t(b * c.T + s) * ld + vcol(h)];
                for (int i = 0; i < hd; ++i) want[size_t(b * c.T + t) * H * hd + size_t(h) * hd + i] += sc[s] / sum * v[i];
              }
            }
        // bf16/fp16: the probabilities are rounded to the dtype before P V (both versions), then the output.
        EXPECT_LT(rel_err(out["out"], want), tol) << c.name();
        break;
      }
      case OpKind::LogSoftmax: {
        std::vector<double> want;
        for (int r = 0; r < R; ++r) {
          const float* x = &in["logits"][size_t(r) * c.V];
          int arg = int(std::max_element(x, x + c.V) - x);
          double mx = x[arg], sum = 0;
          for (int v = 0; v < c.V; ++v) sum += std::exp(x[v] - mx);
          const int64_t tg = d.ints["target"][r];
          want.push_back(x[tg] - mx - std::log(sum));
          EXPECT_EQ(d.out_ints["argmax"][r], arg) << c.name() << " row " << r;
          EXPECT_EQ(d.out_ints["greedy"][r], arg == tg ? 1 : 0) << c.name() << " row " << r;
        }
        EXPECT_EQ(d.out_ints["greedy"][0], 1) << "row 0's target was made the argmax";
        EXPECT_LT(rel_err(out["logprob"], want), 1e-6) << c.name();
        break;
      }
      case OpKind::Embedding: {
        std::vector<double> want;
        for (int r = 0; r < R; ++r)
          for (int j = 0; j < c.N; ++j) want.push_back(in["table"][size_t(d.ints["ids"][r]) * c.N + j]);
        EXPECT_EQ(rel_err(out["out"], want), 0.0) << c.name();
        break;
      }
    }
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", g_max_err);
  RecordProperty("max_rel_err", buf);
}

// The op table as tests: model-sized cases exist for timing and are checked in bf16 only (not generated in other
// dtypes, rather than skipped); BMH_OPS_CORRECTNESS_ONLY=1 (gpu_check sanitize) leaves them all out.
std::vector<OpCase> op_test_cases() {
  const char* e = std::getenv("BMH_OPS_CORRECTNESS_ONLY");
  const bool correctness_only = e && std::string(e) == "1";
  std::vector<OpCase> v;
  for (const OpCase& c : cuda::op_cases()) {
    if (c.perf && (c.dt != Dt::BF16 || correctness_only)) continue;
    // Timing-only rows: the 1 x 16384 staged scan, the scan's lane-count variants (E != 0) and the long attention
    // prefills have CPU references of ~10 s or O(T^2) each; the same kernels are checked on the 8 x 2048 scan at the
    // automatic lanes and on the T = 700 attention case (11 tiles).
    if (c.perf && c.op == OpKind::Scan && ((c.variant == 0 && c.B == 1) || c.E != 0)) continue;
    if (c.perf && c.op == OpKind::AttnPrefill) continue;
    // The scalar twins of the model-sized conv and norm rows: VectorPaths checks them against the 16-byte kernels.
    if (c.perf && (c.op == OpKind::Conv1d || c.op == OpKind::AddNorm) && c.variant != 0) continue;
    v.push_back(c);
  }
  return v;
}

INSTANTIATE_TEST_SUITE_P(Table, OpTest, ::testing::ValuesIn(op_test_cases()),
                         [](const auto& info) { return info.param.name(); });

// The 16-byte conv and norm kernels do each output's arithmetic as the scalar kernels do (same operations, same
// order, same per-thread sums), so every output must match variant 1 (the scalar kernel forced) bit for bit, on
// every conv and norm case of the table, model-sized ones included (bf16 there).
TEST(VectorPaths, BitIdenticalToScalarKernels) {
  BMH_REQUIRE_GPU();
  int compared = 0;
  for (const OpCase& c : cuda::op_cases()) {
    if ((c.op != OpKind::Conv1d && c.op != OpKind::AddNorm) || c.variant != 0) continue;
    OpCase s = c;
    s.variant = 1;
    cuda::OpData dv = cuda::make_op_inputs(c, 11), ds = dv;
    cuda::run_op(c, dv);
    cuda::run_op(s, ds);
    ASSERT_EQ(dv.out.size(), ds.out.size()) << c.name();
    for (auto& [k, a] : dv.out) {
      const std::vector<float>& b = ds.out.at(k);
      ASSERT_EQ(a.size(), b.size()) << c.name() << " " << k;
      size_t bad = 0, first = a.size();
      for (size_t i = 0; i < a.size(); ++i)
        if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0 && bad++ == 0) first = i;
      EXPECT_EQ(bad, 0u) << c.name() << " " << k << ": first difference at " << first << " ("
                         << (first < a.size() ? a[first] : 0.f) << " vs " << (first < b.size() ? b[first] : 0.f)
                         << ")";
      ++compared;
    }
  }
  EXPECT_GT(compared, 0);
}

// The fixtures were computed with TF32 off: our fp32 GEMMs must be true fp32. TF32 (10-bit mantissa inputs) would
// miss 1e-5 by two orders of magnitude on this K.
TEST(Gemm, Fp32IsNotTf32) {
  BMH_REQUIRE_GPU();
  cuda::Blas blas;
  EXPECT_EQ(blas.math_mode(), CUBLAS_DEFAULT_MATH);
  EXPECT_EQ(cuda::Blas::compute_type(), CUBLAS_COMPUTE_32F);
  OpCase c;
  c.op = OpKind::Linear;
  c.dt = Dt::F32;
  c.M = 33; c.N = 65; c.K = 8192;
  cuda::OpData d = cuda::make_op_inputs(c, 42);
  cuda::run_op(c, d);
  M y = ref::linear<double>(mat(d.in["x"], c.M, c.K), mat(d.in["W"], c.N, c.K), nullptr);
  std::vector<double> r;
  append(r, y);
  EXPECT_LT(rel_err(d.out["y"], r), 1e-5);
}

// kernels/launch.cuh: a capture inside PdlScope(true) links consecutive kernels by programmatic edges (what the
// decode graph relies on), outside it by plain ones; the graph runs and gives the bits of plain stream launches.
// A chain of 3 activations h -> a -> b -> c (each reads the previous one's output, 8192 values over 32 blocks).
TEST(PdlLaunch, ProgrammaticEdgesOnlyInsideTheScope) {
  BMH_REQUIRE_GPU();
  const int F = 8192;
  std::vector<float> h(F);
  for (int i = 0; i < F; ++i) h[i] = float((i * 37) % 101 - 50) / 7.f;
  cuda::DeviceBuffer dh(F * 4, "h"), da(F * 4, "a"), db(F * 4, "b"), dc(F * 4, "c");
  cuda::upload(dh.get(), h.data(), F * 4);
  cudaStream_t s = nullptr;
  BMH_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  auto chain = [&] {
    cuda::mlp_act(Dt::F32, Activation::Silu, false, dh.get(), F, nullptr, 1, F, da.get(), F, s);
    cuda::mlp_act(Dt::F32, Activation::Silu, false, da.get(), F, nullptr, 1, F, db.get(), F, s);
    cuda::mlp_act(Dt::F32, Activation::Silu, false, db.get(), F, nullptr, 1, F, dc.get(), F, s);
  };
  chain();
  std::vector<float> want(F), got(F);
  BMH_CUDA(cudaStreamSynchronize(s));
  cuda::download(want.data(), dc.get(), F * 4);
  for (bool on : {false, true}) {
    BMH_CUDA(cudaMemset(dc.get(), 0, F * 4));
    BMH_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    {
      cuda::PdlScope pdl(on);
      chain();
    }
    cudaGraph_t g = nullptr;
    BMH_CUDA(cudaStreamEndCapture(s, &g));
    cudaGraphNode_t from[8], to[8];
    cudaGraphEdgeData data[8];
    size_t n = 8;
    BMH_CUDA(cudaGraphGetEdges(g, from, to, data, &n));
    ASSERT_EQ(n, 2u) << "pdl " << on;
    for (size_t i = 0; i < n; ++i)
      EXPECT_EQ(int(data[i].type), on ? int(cudaGraphDependencyTypeProgrammatic) : int(cudaGraphDependencyTypeDefault))
          << "pdl " << on << " edge " << i;
    cudaGraphExec_t x = nullptr;
    BMH_CUDA(cudaGraphInstantiate(&x, g, 0));
    BMH_CUDA(cudaGraphLaunch(x, s));
    BMH_CUDA(cudaStreamSynchronize(s));
    cuda::download(got.data(), dc.get(), F * 4);
    EXPECT_EQ(std::memcmp(got.data(), want.data(), F * 4), 0) << "pdl " << on;
    cudaGraphExecDestroy(x);
    cudaGraphDestroy(g);
  }
  EXPECT_FALSE(cuda::pdl_wanted());  // the scope restored the flag
  cudaStreamDestroy(s);
}

TEST(DeviceBuffer, OutOfMemoryIsAClearError) {
  BMH_REQUIRE_GPU();
  try {
    cuda::DeviceBuffer b(size_t(1) << 50, "test tensor of 1 PiB");
    FAIL() << "a 1 PiB allocation succeeded";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("out of memory"), std::string::npos) << m;
    EXPECT_NE(m.find("test tensor of 1 PiB"), std::string::npos) << m;
    EXPECT_NE(m.find("asked 1125899906842624 bytes"), std::string::npos) << m;
    EXPECT_NE(m.find("free"), std::string::npos) << m;
    EXPECT_NE(m.find("hint"), std::string::npos) << m;
  }
  cuda::DeviceBuffer ok(1024, "after OOM");  // the device still works
  EXPECT_NE(ok.get(), nullptr);
}

}  // namespace
}  // namespace bmh
