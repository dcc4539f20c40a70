// Batched decoding: the one-pass GEMVs for 2..8 rows (gemv=rows, gemv=mma) against the row-by-row version
// (gemv=split) inside the decoder, and greedy steps whose argmax runs on the device (Decoder::step_greedy) against
// the host's argmax.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/language_model.h"
#include "gpu_test_util.h"
#include "kernels/cuda_backend.h"
#include "kernels/device.h"
#include "kernels/logits.cuh"
#include "model_test_util.h"

namespace bmh {
namespace {

using gpu_test::KernelSetGuard;
using gpu_test::kFixtures;
using gpu_test::load_fixture;
using gpu_test::rel;

// Random prompts [B, 11] and 6 steps of random tokens (teacher forcing: both decoders see the same inputs).
struct Feed {
  Tensor prompt;
  std::vector<std::vector<int64_t>> steps;
};
Feed random_feed(int B, int V, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> p(size_t(B) * 11);
  for (auto& id : p) id = int64_t(rng() % uint64_t(V));
  Feed f{Tensor::from_i64(p, {B, 11}), std::vector<std::vector<int64_t>>(6, std::vector<int64_t>(size_t(B)))};
  for (auto& s : f.steps)
    for (auto& id : s) id = int64_t(rng() % uint64_t(V));
  return f;
}

// The one-pass versions against the row-by-row one: every fixture (MoE ones take the per-row expert path, which
// gemv=mma hands to gemv=rows), fp32 (mma: rows) and bf16, 2, 5 and 8 rows. Not bit-identical: each output's K-term
// dot is summed in another order (rows: all rows per lane group; mma: tensor-core tiles). fp32: a few fp32 ulps per
// output, bound 1e-4 as the decode-vs-forward fp32 bound; bf16: that order difference can flip the bf16 rounding of
// an activation by one ulp, which later steps carry, bound 2e-2 as the decode-vs-forward bf16 bound. The prefill
// runs no GEMV: its logits must be identical.
TEST(CudaBatchedDecode, OnePassGemvsMatchSplit) {
  BMH_REQUIRE_GPU();
  for (const std::string& name : kFixtures)
    for (std::string dtype : {"fp32", "bf16"}) {
      auto m = load_fixture(name, dtype);
      for (int B : {2, 5, 8}) {
        if (B > m->max_decode_batch()) continue;
        const Feed f = random_feed(B, m->config().vocab_size, 300 + B);
        auto run = [&](const std::string& spec, Tensor& first) {
          KernelSetGuard g(spec);
          auto dec = m->decoder(B);
          first = dec->prefill(f.prompt);
          std::vector<float> out;
          for (const auto& s : f.steps) {
            const Tensor l = dec->step(s);
            out.insert(out.end(), l.data<float>(), l.data<float>() + l.numel());
          }
          return out;
        };
        Tensor first_split;
        const std::vector<float> split = run("gemv=split", first_split);
        const std::vector<double> want(split.begin(), split.end());
        for (std::string spec : {"gemv=rows", "gemv=mma"}) {
          Tensor first;
          const std::vector<float> got = run(spec, first);
          const std::string what = name + " " + dtype + " B=" + std::to_string(B) + " " + spec;
          EXPECT_EQ(std::memcmp(first.data<float>(), first_split.data<float>(), first.nbytes()), 0) << what;
          const double e = rel(got, want);
          EXPECT_LT(e, dtype == "fp32" ? 1e-4 : 2e-2) << what;
          RecordProperty(name + "_" + dtype + "_B" + std::to_string(B) + "_" + spec.substr(5) + "_rel_err",
                         std::to_string(e));
        }
      }
    }
}

// The same decoder inputs through step() (logits to the host, argmax there) and step_greedy() (argmax on the
// device): the ids must be equal at every step, for every fixture, fp32 and bf16, batch 1 and 4 (greedy feeding:
// each step's input is the previous step's choice, so the two runs see the same tokens only while they agree).
TEST(CudaBatchedDecode, DeviceGreedyEqualsHostArgmax) {
  BMH_REQUIRE_GPU();
  for (const std::string& name : kFixtures)
    for (std::string dtype : {"fp32", "bf16"}) {
      auto m = load_fixture(name, dtype);
      for (int B : {1, 4}) {
        const Feed f = random_feed(B, m->config().vocab_size, 400 + B);
        auto host = m->decoder(B), device = m->decoder(B);
        std::vector<int64_t> a = argmax_rows(host->prefill(f.prompt)), b = argmax_rows(device->prefill(f.prompt));
        ASSERT_EQ(a, b) << name << " " << dtype << " prefill";
        for (int s = 0; s < 8; ++s) {
          a = argmax_rows(host->step(a));
          b = device->step_greedy(b);
          ASSERT_EQ(a, b) << name << " " << dtype << " B=" << B << " step " << s;
        }
      }
    }
}

// The device argmax kernel on rows built to test its rule: random rows, the maximum tied at two places (the first
// wins), all -inf (index 0, as std::max_element), a +inf, and a NaN (flagged for the host, which decides).
TEST(CudaBatchedDecode, ArgmaxKernelFollowsTheHostRule) {
  BMH_REQUIRE_GPU();
  const int V = 50277, R = 6;
  std::mt19937_64 rng(9);
  std::normal_distribution<float> d(0.f, 3.f);
  std::vector<float> h(size_t(R) * V);
  for (float& x : h) x = d(rng);
  float* row[R];
  for (int r = 0; r < R; ++r) row[r] = h.data() + size_t(r) * V;
  row[1][777] = row[1][40000] = 100.f;  // tie: 777
  for (int v = 0; v < V; ++v) row[2][v] = -std::numeric_limits<float>::infinity();
  row[3][V - 1] = std::numeric_limits<float>::infinity();
  row[4][123] = std::numeric_limits<float>::quiet_NaN();
  row[5][0] = 50.f;  // the first index itself
  cuda::DeviceBuffer logits(h.size() * 4, "test logits"), ids(size_t(R) * 8, "test ids");
  cuda::DeviceBuffer nan(size_t(R) * 4, "test nan");
  cuda::upload(logits.get(), h.data(), h.size() * 4, nullptr);
  cuda::argmax_rows(logits.as<float>(), R, V, ids.as<int64_t>(), nan.as<int>(), nullptr);
  std::vector<int64_t> got(R);
  std::vector<int> flagged(R);
  cuda::download(got.data(), ids.get(), got.size() * 8, nullptr);
  cuda::download(flagged.data(), nan.get(), flagged.size() * 4, nullptr);
  const std::vector<int64_t> want = argmax_rows(Tensor::from_f32(h, {R, V}));
  for (int r = 0; r < R; ++r) {
    EXPECT_EQ(flagged[r], r == 4 ? 1 : 0) << "row " << r;
    if (r != 4) {
      EXPECT_EQ(got[r], want[r]) << "row " << r;
    }
  }
  EXPECT_EQ(want[1], 777);
  EXPECT_EQ(want[2], 0);
  EXPECT_EQ(want[3], V - 1);
  EXPECT_EQ(want[5], 0);
}

// The per-op breakdown of one decode step (bench-gpu's "decode b=B per op"): every op of the model's blocks is
// named once per block that has it, with a positive GPU time; besides those only "norm" (the op accounting; the
// kernels are the graph's, run eagerly, and checked by the tests above).
TEST(CudaBatchedDecode, StepBreakdownNamesEveryOpPerBlock) {
  BMH_REQUIRE_GPU();
  for (const std::string& name : {std::string("blackmamba-tiny"), std::string("pythia-tiny")}) {
    auto m = load_fixture(name, "bf16");
    auto* cm = dynamic_cast<cuda::CudaModel*>(m.get());
    ASSERT_NE(cm, nullptr) << name;
    int mamba = 0, attn = 0, moe = 0, mlp = 0;
    for (const BlockConfig& b : m->config().blocks) {
      mamba += b.mixer == MixerKind::Mamba;
      attn += b.mixer == MixerKind::Attention;
      moe += b.mlp == MlpKind::Moe;
      mlp += b.mlp == MlpKind::Dense;
    }
    const Feed f = random_feed(3, m->config().vocab_size, 500);
    std::map<std::string, std::pair<double, int>> got;
    for (const auto& r : cm->decode_breakdown(f.prompt)) got[r.op] = {r.ms, r.count};
    std::map<std::string, int> want = {{"embed", 1}, {"lm_head", 1}};
    for (const char* op : {"mamba.in_proj", "mamba.conv", "mamba.x_proj", "mamba.dt_proj", "mamba.state_update",
                           "mamba.out_proj"})
      if (mamba) want[op] = mamba;
    for (const char* op : {"attn.qkv", "attn.rotary", "attn.core", "attn.dense"})
      if (attn) want[op] = attn;
    for (const char* op : {"moe.router", "moe.fc1", "moe.act", "moe.fc2"})
      if (moe) want[op] = moe;
    for (const char* op : {"mlp.fc1", "mlp.act", "mlp.fc2"})
      if (mlp) want[op] = mlp;
    for (const auto& [op, n] : want) {
      ASSERT_TRUE(got.count(op)) << name << ": no " << op;
      EXPECT_EQ(got[op].second, n) << name << " " << op;
      EXPECT_GT(got[op].first, 0.0) << name << " " << op;
    }
    EXPECT_EQ(got.size(), want.size() + 1) << name << ": ops besides the blocks' and norm";  // + "norm"
    EXPECT_TRUE(got.count("norm")) << name;
  }
}

}  // namespace
}  // namespace bmh
