// The CUDA backend at model level (Mixtral and Jamba included: their routes, which transformers' oracles do not
// store, are checked against the CPU reference's): fp32 against every shared fixture (logits, hidden states and router logits
// within 1e-4 relative, the oracle's tolerance for fp32 on a GPU with TF32 off; identical routes and greedy tokens),
// bf16/fp16 with the fixture's routes forced within 2e-2 (a handful of bf16 roundings per block on logits of
// O(1)), decode-vs-forward parity, CUDA vs the CPU reference on presets, fused scoring vs the generic path, the
// router precision modes and NaN routes, batched greedy decoding and the decode variants. The long-running model
// tests (the flash prefill's tensor-core path, batched scoring groups, leaks, out-of-memory) are in
// test_cuda_model_long.cpp.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <tuple>

#include "core/batched_generate.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/presets.h"
#include "core/router.h"
#include "evals/model_loader.h"
#include "gpu_test_util.h"
#include "model_test_util.h"
#include "kernels/cuda_model.h"
#include "kernels/variants.h"
#include "reference/model.h"

namespace bmh {
namespace {

using gpu_test::kFixtures;

using gpu_test::expected;
using gpu_test::load_fixture;
using gpu_test::rel;

// The model tests run twice: with the default kernels ("v2": states scan (chunked for one long sequence), split-key decode attention, flash
// prefill, stream GEMV for one row where it takes the shape -- model widths of >= 1024 bf16, so none of these
// fixtures: test_cuda_decode_stream.cpp -- and split otherwise, mma for 2..8) and with the version-1 set ("v1": staged, per_head, cuBLAS +
// softmax, warp), so both stay checked against the oracles and the CPU reference at the same dtype tolerances.
using gpu_test::KernelSetGuard;
const std::vector<std::string> kKernelSets = {"v2", "v1"};

// A test name: the parameter with non-alphanumerics as '_', and "_v1kernels" for the version-1 pass (the default
// set keeps the names the tests had before the sets existed).
std::string param_name(const std::string& what, const std::string& set) {
  std::string s = what;
  for (char& ch : s)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return set == "v2" ? s : s + "_" + set + "kernels";
}

class KernelSetTest : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {
 protected:
  void SetUp() override { guard_ = std::make_unique<KernelSetGuard>(std::get<1>(GetParam())); }
  void TearDown() override { guard_.reset(); }
  // The fixture or preset name.
  const std::string& name() const { return std::get<0>(GetParam()); }

 private:
  std::unique_ptr<KernelSetGuard> guard_;
};

class CudaFixture : public KernelSetTest {};

TEST_P(CudaFixture, Fp32ForwardMatchesOracle) {
  BMH_REQUIRE_GPU();
  const std::string name = this->name();
  TensorMap exp = expected(name);
  auto model = load_fixture(name, "fp32");
  EXPECT_EQ(model->describe(), "cuda fp32");
  ForwardOptions opt;
  opt.hidden_states = true;
  ForwardOutput f = model->forward(exp.at("input_ids"), opt);
  EXPECT_LT(rel(f.logits, exp.at("logits")), 1e-4) << name;
  int n_routes = 0;
  for (const auto& [k, t] : exp) n_routes += k.rfind("route.", 0) == 0 && k.find(".expert") != std::string::npos;
  // transformers' oracles (Mixtral, Jamba) store no routes: theirs are checked against the CPU reference instead.
  if (n_routes > 0) {
    EXPECT_EQ(int(f.routes.size()), n_routes);
  }
  if (n_routes == 0 && !f.routes.empty()) {
    ModelSpec s;
    s.dir = gpu_test::fixture_dir(name);
    ForwardOutput c = load_model(s)->forward(exp.at("input_ids"));
    ASSERT_EQ(c.routes.size(), f.routes.size());
    for (size_t l = 0; l < f.routes.size(); ++l) {
      EXPECT_EQ(f.routes[l].top_k, c.routes[l].top_k);
      EXPECT_EQ(f.routes[l].expert, c.routes[l].expert) << name << " block " << f.routes[l].block;
      std::vector<double> w(c.routes[l].prob.begin(), c.routes[l].prob.end());
      EXPECT_LT(rel(f.routes[l].prob, w), 1e-5) << name << " block " << f.routes[l].block;
    }
  }
  for (const RouteRecord& r : n_routes > 0 ? f.routes : std::vector<RouteRecord>{}) {
    const std::string p = "route." + std::to_string(r.block) + ".";
    ASSERT_TRUE(exp.count(p + "expert")) << "fixture has no routes for block " << r.block;
    EXPECT_EQ(r.expert, exp.at(p + "expert").to_i64()) << name << " block " << r.block;
    EXPECT_LT(rel(r.prob, exp.at(p + "prob").to_f64()), 1e-5) << name << " block " << r.block;
    EXPECT_LT(rel(r.router_logits, exp.at(p + "router_logits").to_f64()), 1e-4) << name << " block " << r.block;
  }
  for (size_t i = 0; exp.count("hidden_states." + std::to_string(i)); ++i) {
    ASSERT_LT(i, f.hidden_states.size());
    EXPECT_LT(rel(f.hidden_states[i], exp.at("hidden_states." + std::to_string(i))), 1e-4)
        << name << " hidden_states." << i;
  }
}

TEST_P(CudaFixture, Fp32GreedyDecodeMatchesOracle) {
  BMH_REQUIRE_GPU();
  const std::string name = this->name();
  TensorMap exp = expected(name);
  auto model = load_fixture(name, "fp32");
  const Tensor& want = exp.at("generated_ids");
  const int n_new = int(want.dim(1) - exp.at("input_ids").dim(1));
  Tensor logits;
  Tensor ids = generate_greedy(*model, exp.at("input_ids"), n_new, &logits);
  EXPECT_EQ(ids.to_i64(), want.to_i64()) << name;
  EXPECT_LT(rel(logits, exp.at("generated_logits")), 1e-4) << name;
}

// bf16 and fp16: routes forced to the oracle's, so a near-tie cannot send a token to another expert and the Mamba
// state carry the difference. Logits within 2e-2 (bf16: 5e-3..1.1e-2 measured on H100) and 3e-3 (fp16: <= 1.1e-3
// measured). Free running, the router still computes in fp32 from half-precision activations: no fixture token may
// change expert against the fp32 oracle. Jamba's tiny mixer renormalises dt, B and C of width 4..16 (its
// dt/b/c_layernorm), which magnifies half-precision rounding: measured on the H200 3.7e-2 (bf16) and 5.2e-3 (fp16)
// with forced routes, and 1 of 152 top-2 slots flipped at a near-tie in bf16; its bounds are 5e-2, 1e-2 and 2 slots.
TEST_P(CudaFixture, HalfPrecisionMatchesOracle) {
  BMH_REQUIRE_GPU();
  const std::string name = this->name();
  TensorMap exp = expected(name);
  std::vector<std::pair<int, std::vector<int64_t>>> routes;
  for (const auto& [k, t] : exp)
    if (k.rfind("route.", 0) == 0 && k.size() > 7 && k.substr(k.size() - 7) == ".expert")
      routes.push_back({std::stoi(k.substr(6, k.size() - 13)), t.to_i64()});
  if (routes.empty()) {  // Mixtral/Jamba: the CPU reference's routes (k slots), which reproduce the oracle's logits
    ModelSpec s;
    s.dir = gpu_test::fixture_dir(name);
    for (const RouteRecord& r : load_model(s)->forward(exp.at("input_ids")).routes) routes.push_back({r.block, r.expert});
  }
  for (std::string dtype : {"bf16", "fp16"}) {
    auto model = load_fixture(name, dtype);
    ForwardOptions opt;
    opt.force_routes = &routes;
    ForwardOutput f = model->forward(exp.at("input_ids"), opt);
    const double e = rel(f.logits, exp.at("logits"));
    const bool jamba = name == "jamba-tiny";
    EXPECT_LT(e, dtype == "bf16" ? (jamba ? 5e-2 : 2e-2) : (jamba ? 1e-2 : 3e-3)) << name << " " << dtype;
    ForwardOutput free_run = model->forward(exp.at("input_ids"));
    int flips = 0, total = 0;
    for (const RouteRecord& r : free_run.routes) {
      std::vector<int64_t> w;
      for (const auto& [b, e] : routes)
        if (b == r.block) w = e;
      for (size_t i = 0; i < w.size(); ++i) flips += r.expert[i] != w[i];
      total += int(w.size());
    }
    EXPECT_LE(flips, jamba ? 2 : 0) << name << " " << dtype << ": free-running route flips out of " << total;
    RecordProperty(dtype + "_logits_rel_err", std::to_string(e));
  }
}

INSTANTIATE_TEST_SUITE_P(Oracle, CudaFixture, ::testing::Combine(::testing::ValuesIn(kFixtures), ::testing::ValuesIn(kKernelSets)),
                         [](const auto& info) { return param_name(std::get<0>(info.param), std::get<1>(info.param)); });

// Tiny presets with the real vocabulary and seeded random weights: every block kind the presets use.
const std::vector<std::string> kPresets = {"tiny-blackmamba-50k", "tiny-mamba-50k", "tiny-pythia-50k", "tiny-transformer-moe-50k",
                                           "tiny-mixtral-50k", "tiny-jamba-50k"};

class CudaPreset : public KernelSetTest {};

using gpu_test::ids_for;

TEST_P(CudaPreset, Fp32MatchesReference) {
  BMH_REQUIRE_GPU();
  ModelConfig cfg = preset_config(name());
  TensorMap w = random_weights(cfg, 7);
  auto gpu = make_cuda_model(cfg, w, "fp32");
  auto cpu = ref::make_reference_model(cfg, w, "fp32");
  Tensor ids = ids_for(2, 23, cfg.vocab_size, 11);
  ForwardOutput a = gpu->forward(ids), b = cpu->forward(ids);
  EXPECT_LT(rel(a.logits, b.logits), 1e-4) << name();
  ASSERT_EQ(a.routes.size(), b.routes.size());
  for (size_t i = 0; i < a.routes.size(); ++i) EXPECT_EQ(a.routes[i].expert, b.routes[i].expert);
}

// Decode (GEMV steps replayed from a CUDA graph) against a full forward of the generated sequence.
TEST_P(CudaPreset, DecodeMatchesForward) {
  BMH_REQUIRE_GPU();
  ModelConfig cfg = preset_config(name());
  TensorMap w = random_weights(cfg, 3);
  for (std::string dtype : {"fp32", "bf16"}) {
    auto m = make_cuda_model(cfg, w, dtype);
    // Above 8 rows the decoder's dense projections run through cuBLAS and MoE experts through the grouped GEMV
    // (rows listed per expert on the device; bf16 on tensor cores, fp32 through gemv_warp); 40 rows give some
    // expert more than the grouped kernel's 32 rows per pass.
    EXPECT_EQ(m->max_decode_batch(), 256) << name();
    const bool moe = !cfg.moe_blocks().empty();
    std::vector<int> batches = {1, 3, 12};
    if (moe) batches.push_back(40);
    for (int B : batches) {
      Tensor prompt = ids_for(B, 9, cfg.vocab_size, 5 + B);
      const int n = 7, T = 9;
      Tensor dec_logits;
      Tensor gen = generate_greedy(*m, prompt, n, &dec_logits);
      ForwardOutput f = m->forward(gen);
      const int V = cfg.vocab_size, Tg = T + n;
      Tensor want = Tensor::zeros(DType::F32, {B, n, V});
      for (int b = 0; b < B; ++b)
        for (int s = 0; s < n; ++s)
          std::copy_n(f.logits.data<float>() + (size_t(b) * Tg + T - 1 + s) * V, V,
                      want.data_mut<float>() + (size_t(b) * n + s) * V);
      // fp32: two summation orders (cuBLAS vs GEMV), 1e-4. bf16: the two paths round the same intermediates to
      // bf16 but accumulate in different orders; one bf16 ulp moved early can move a later one, 2e-2.
      EXPECT_LT(rel(dec_logits, want), dtype == "fp32" ? 1e-4 : 2e-2) << name() << " " << dtype << " B=" << B;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, CudaPreset, ::testing::Combine(::testing::ValuesIn(kPresets), ::testing::ValuesIn(kKernelSets)),
                         [](const auto& info) { return param_name(std::get<0>(info.param), std::get<1>(info.param)); });

// Fused log-softmax scoring (only the continuation rows reach the LM head) vs the generic forward-based path.
TEST(CudaScore, FusedMatchesGenericPath) {
  BMH_REQUIRE_GPU();
  auto m = load_fixture("blackmamba-tiny", "fp32");
  const int V = m->config().vocab_size;
  Tensor prompt = ids_for(1, 6, V, 99);
  Tensor gen = generate_greedy(*m, prompt, 4);
  std::vector<ScoreRequest> reqs;
  std::vector<int64_t> g = gen.to_i64();
  reqs.push_back({std::vector<int32_t>(g.begin(), g.end()), 4});  // greedy continuation
  for (int k = 0; k < 4; ++k) {
    Tensor r = ids_for(1, 5 + 3 * k, V, 1000 + k);
    std::vector<int64_t> v = r.to_i64();
    reqs.push_back({std::vector<int32_t>(v.begin(), v.end()), 1 + k});
  }
  std::vector<ScoreResult> fused = m->score(reqs), generic = m->LanguageModel::score(reqs);
  ASSERT_EQ(fused.size(), generic.size());
  EXPECT_TRUE(fused[0].is_greedy) << "the greedy continuation must score as greedy";
  for (size_t i = 0; i < fused.size(); ++i) {
    EXPECT_NEAR(fused[i].logprob, generic[i].logprob, 1e-4 * std::max(1.0, std::abs(generic[i].logprob))) << i;
    EXPECT_EQ(fused[i].is_greedy, generic[i].is_greedy) << i;
  }
}

// --router-precision model on CUDA: from the router logits the device computed (recorded in fp32), the routes and
// gates equal core/router.h's model-dtype rule exactly (ties included), in bf16 and fp16, for the sigmoid top-1
// and both softmax top-k routers; fp32 mode on the same logits gives the exact rule.
TEST(CudaRouterPrecision, ModelModeFollowsTheHostRuleExactly) {
  BMH_REQUIRE_GPU();
  for (std::string name : {"blackmamba-tiny", "mixtral-tiny", "jamba-tiny"})
    for (std::string dtype : {"bf16", "fp16"}) {
      ModelSpec s;
      s.dir = gpu_test::fixture_dir(name);
      s.backend = "cuda";
      s.dtype = dtype;
      s.router_precision = "model";
      auto m = load_model(s);
      const DType half = dtype == "bf16" ? DType::BF16 : DType::F16;
      ForwardOutput f = m->forward(expected(name).at("input_ids"));
      ASSERT_FALSE(f.routes.empty());
      for (const RouteRecord& r : f.routes) {
        const MlpSpec& spec = m->config().blocks[r.block].ffn;
        const int E = r.n_experts, k = r.top_k;
        for (size_t t = 0; t * E < r.router_logits.size(); ++t) {
          const TokenRoute want = route_token<float>(spec, &r.router_logits[t * E], half);
          for (int j = 0; j < k; ++j) {
            EXPECT_EQ(r.expert[t * k + j], want.expert[j]) << name << " " << dtype << " block " << r.block << " t " << t;
            EXPECT_EQ(r.prob[t * k + j], float(want.weight[j])) << name << " " << dtype << " block " << r.block;
          }
          EXPECT_EQ(bool(r.tie[t]), want.tie) << name << " " << dtype << " block " << r.block << " t " << t;
        }
      }
    }
}

// Zyphra's half-precision oracle (tests/fixtures/blackmamba-tiny-halfroute, scripts/gpu_peers/routing_oracle.py):
// our bf16/fp16 forward with --router-precision model, end to end; the per-layer route agreement is printed for
// the note (the rest of the network rounds differently from Zyphra's, so it is measured, not asserted equal).
TEST(CudaRouterPrecision, HalfRouteOracleAgreementEndToEnd) {
  BMH_REQUIRE_GPU();
  const std::string dir = gpu_test::fixture_dir("blackmamba-tiny-halfroute");
  for (std::string dtype : {"bf16", "fp16"}) {
    const std::string file = dir + "/expected-" + dtype + ".safetensors";
    std::FILE* fh = std::fopen(file.c_str(), "rb");
    if (!fh) GTEST_SKIP() << file << " not committed yet";
    std::fclose(fh);
    TensorMap exp = read_safetensors(file).tensors;
    for (std::string mode : {"model", "fp32"}) {
      ModelSpec s;
      s.dir = dir;
      s.backend = "cuda";
      s.dtype = dtype;
      s.router_precision = mode;
      ForwardOutput f = load_model(s)->forward(exp.at("input_ids"));
      for (const RouteRecord& r : f.routes) {
        const std::vector<int64_t> want = exp.at("route." + std::to_string(r.block) + ".expert").to_i64();
        int agree = 0;
        for (size_t t = 0; t < want.size(); ++t) agree += r.expert[t] == want[t];
        std::printf("[ info ] halfroute %s, router %s: block %d agrees with Zyphra on %d / %zu routes\n",
                    dtype.c_str(), mode.c_str(), r.block, agree, want.size());
        RecordProperty(dtype + "_" + mode + "_block" + std::to_string(r.block) + "_agree", agree);
        ASSERT_EQ(want.size(), r.expert.size());
        // Measured on the H200 (df63226): model mode 80 and 79 of 80 (bf16), 80 and 80 (fp16) -- the one bf16
        // miss is our bf16 hidden state differing from torch's by rounding, upstream of the router; fp32 mode
        // 49/42 (bf16) and 60/55 (fp16). Bound: model mode within 2 of 80 per layer, fp32 mode clearly worse
        // (this router saturates by design), so a regression to fp32 semantics in "model" mode fails.
        if (mode == "model") EXPECT_GE(agree, static_cast<int>(want.size()) - 2) << dtype << " block " << r.block;
        else EXPECT_LE(agree, static_cast<int>(want.size()) - 10) << dtype << " block " << r.block;
      }
    }
  }
}

// A NaN router logit used to leave the top-1 argmax at INT_MAX and the count kernel wrote out of bounds; now the row
// goes to expert 0 and a device flag, read at the existing synchronisation, fails the run naming the block.
TEST(CudaRouterNan, IsAnErrorNamingTheBlockInForwardAndDecode) {
  BMH_REQUIRE_GPU();
  for (std::string preset : {"tiny-blackmamba-50k", "tiny-mixtral-50k"}) {
    ModelConfig cfg = preset_config(preset);
    TensorMap w = random_weights(cfg, 5);
    const int block = cfg.moe_blocks().back();
    Tensor& r = w.at("blocks." + std::to_string(block) + ".moe.router.weight");
    float* p = r.data_mut<float>();
    for (int64_t i = 0; i < r.numel(); ++i) p[i] = std::nanf("");
    auto m = make_cuda_model(cfg, w, "fp32");
    Tensor ids = ids_for(2, 5, cfg.vocab_size, 1);
    for (int pass = 0; pass < 2; ++pass) {
      try {
        if (pass == 0) m->forward(ids);
        else generate_greedy(*m, ids, 2);
        FAIL() << preset << ": NaN router logits were accepted";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("MoE block " + std::to_string(block)), std::string::npos)
            << preset << ": " << e.what();
      }
    }
  }
}

// Continuous batching on CUDA (core/batched_generate.h): Mamba-only models decode their slots together (per-slot
// prefill into a one-row state, rows copied into the batch state, kernels/cuda_slot_state.cpp); models with
// attention run one request at a time. Either way every request's greedy tokens are those of generate_greedy on its
// prompt alone, with prompts of 1..17 tokens and max_new 0..7 so slots are freed and refilled mid-run. fp32 with
// exact token equality: the decode GEMV computes each row on its own, so a row's logits do not depend on the batch.
TEST_P(CudaFixture, BatchedGreedyEqualsEachPromptAlone) {
  BMH_REQUIRE_GPU();
  const std::string name = this->name();
  auto m = load_fixture(name, "fp32");
  const int V = m->config().vocab_size;
  std::vector<GenerateRequest> reqs;
  uint64_t x = 77;
  auto next = [&] { return (x = x * 6364136223846793005ULL + 1442695040888963407ULL) >> 33; };
  for (int r = 0; r < 11; ++r) {
    GenerateRequest q;
    q.max_new = r == 0 ? 7 : int(next() % 8);
    const int T = 1 + int(next() % 17);
    for (int t = 0; t < T; ++t) q.prompt.push_back(int64_t(next() % uint64_t(V)));
    reqs.push_back(q);
  }
  const bool mamba_only = std::none_of(m->config().blocks.begin(), m->config().blocks.end(),
                                       [](const BlockConfig& b) { return b.mixer == MixerKind::Attention; });
  std::vector<std::vector<int64_t>> alone(reqs.size());
  for (size_t r = 0; r < reqs.size(); ++r) {
    if (reqs[r].max_new == 0) continue;
    const std::vector<int64_t> all =
        generate_greedy(*m, Tensor::from_i64(reqs[r].prompt, {1, int64_t(reqs[r].prompt.size())}), reqs[r].max_new)
            .to_i64();
    alone[r].assign(all.begin() + int64_t(reqs[r].prompt.size()), all.end());
  }
  for (int max_batch : {3, 256}) {
    BatchedGenerateOptions o;
    o.max_batch = max_batch;
    BatchedGenerateStats st;
    const auto res = generate_batched(*m, reqs, o, &st);
    EXPECT_EQ(st.batched, mamba_only) << name;
    if (mamba_only) {  // slots: the batch asked, the requests there are, and what the decoder takes (256 without MoE)
      EXPECT_EQ(st.slots, std::min({max_batch, int(reqs.size()), m->max_decode_batch()})) << name;
    }
    for (size_t r = 0; r < reqs.size(); ++r)
      EXPECT_EQ(res[r].generated, alone[r]) << name << " request " << r << " max_batch " << max_batch;
  }
  // Sampling: the same tokens at every batch size (core/sampling.h's rule).
  BatchedGenerateOptions s;
  s.sampling.temperature = 1.0;
  s.sampling.top_p = 0.9;
  s.sampling.seed = 4;
  s.max_batch = 1;
  const auto one = generate_batched(*m, reqs, s);
  s.max_batch = 8;
  const auto eight = generate_batched(*m, reqs, s);
  for (size_t r = 0; r < reqs.size(); ++r) EXPECT_EQ(one[r].generated, eight[r].generated) << name << " request " << r;
}

// Programmatic dependent launch in the decode graph (kernels/launch.cuh, pdl=on) changes only when each kernel is
// scheduled, never what it computes: every kernel waits for its predecessor before reading activations or writing.
// So greedy decoding with pdl=on must give the same bits as pdl=off, on every fixture, for both kernel sets (the
// parameter: v2 exercises the split GEMV (B = 1), the mma GEMV (B = 3, bf16) and the cluster attention launch, v1
// the warp GEMV and per-head attention), fp32 and bf16, batch 1 and 3, random prompts, 7 graph replays after the
// prefill. A missing wait would race with the previous kernel and show here as differing logits (not reliably on
// every run: a race is timing-dependent).
TEST_P(CudaFixture, PdlDecodeIsBitIdentical) {
  BMH_REQUIRE_GPU();
  const std::string name = this->name();
  for (std::string dtype : {"fp32", "bf16"}) {
    auto m = load_fixture(name, dtype);
    const int V = m->config().vocab_size;
    for (int B : {1, 3}) {
      std::mt19937_64 rng(100 + B);
      std::vector<int64_t> p(size_t(B) * 11);
      for (auto& id : p) id = int64_t(rng() % uint64_t(V));
      const Tensor prompt = Tensor::from_i64(p, {B, 11});
      Tensor logits[2], ids[2];
      for (int on : {0, 1}) {
        KernelSetGuard g(on ? "pdl=on" : "pdl=off");
        ids[on] = generate_greedy(*m, prompt, 8, &logits[on]);
      }
      const std::string what = name + " " + dtype + " B=" + std::to_string(B);
      EXPECT_EQ(ids[1].to_i64(), ids[0].to_i64()) << what;
      ASSERT_EQ(logits[0].numel(), logits[1].numel()) << what;
      const float* a = logits[0].data<float>();
      const float* b = logits[1].data<float>();
      int64_t differ = 0;
      for (int64_t i = 0; i < logits[0].numel(); ++i) differ += std::memcmp(a + i, b + i, sizeof(float)) != 0;
      EXPECT_EQ(differ, 0) << what << ": logits that differ in any bit, of " << logits[0].numel();
    }
  }
}

// Teacher-forced decoding of one model under two kernel specs (spec[0] the reference): random prompts of 11 tokens
// at batch B, then 7 fed steps. Returns the relative error of spec[1]'s step logits against spec[0]'s, after
// asserting that the prefill (which neither spec's decode variants touch) is bit-identical, and that a model without
// Mamba blocks decodes bit-identically.
double decode_under_two_specs(const std::string& name, const std::string& dtype, int B, const char* const spec[2]) {
  auto m = load_fixture(name, dtype);
  const int V = m->config().vocab_size;
  const bool has_mamba = std::any_of(m->config().blocks.begin(), m->config().blocks.end(),
                                     [](const BlockConfig& b) { return b.mixer == MixerKind::Mamba; });
  std::mt19937_64 rng(200 + B);
  std::vector<int64_t> p(size_t(B) * 11);
  for (auto& id : p) id = int64_t(rng() % uint64_t(V));
  std::vector<std::vector<int64_t>> feed(7, std::vector<int64_t>(B));
  for (auto& f : feed)
    for (auto& id : f) id = int64_t(rng() % uint64_t(V));
  std::vector<float> out[2];
  Tensor first[2];
  for (int k : {0, 1}) {
    KernelSetGuard g(spec[k]);
    auto dec = m->decoder(B);
    first[k] = dec->prefill(Tensor::from_i64(p, {B, 11}));
    for (const auto& f : feed) {
      const Tensor l = dec->step(f);
      out[k].insert(out[k].end(), l.data<float>(), l.data<float>() + l.numel());
    }
  }
  const std::string what = name + " " + dtype + " B=" + std::to_string(B);
  EXPECT_EQ(std::memcmp(first[0].data<float>(), first[1].data<float>(), first[0].nbytes()), 0) << what;
  if (!has_mamba) {
    EXPECT_EQ(out[1], out[0]) << what << ": no Mamba block, nothing may change";
  }
  return rel(out[1], std::vector<double>(out[0].begin(), out[0].end()));
}

// dt_proj folded into the decode state update (decode_dt=fused, here together with pdl=on) against the separate
// GEMV (decode_dt=gemv, pdl=off), fp32 and bf16, batch 1 and 3. Not bit-identical: the fused kernel sums the
// dt_rank-term dot in another order (16 lanes per channel) than the GEMV. fp32: ~sqrt(dt_rank) fp32 ulps per delta,
// bound 1e-4 as the decode-vs-forward test's fp32 bound. bf16: that order difference can flip the bf16 rounding of a
// delta by one ulp (as between the two GEMV versions), which later steps carry; bound 2e-2 as the decode-vs-forward
// test's bf16 bound, for the same reason. Fixtures without Mamba blocks (pythia, mixtral) must be bit-identical.
TEST_P(CudaFixture, FusedDecodeDtMatchesGemv) {
  BMH_REQUIRE_GPU();
  const char* const spec[2] = {"decode_dt=gemv,pdl=off", "decode_dt=fused,pdl=on"};
  for (std::string dtype : {"fp32", "bf16"})
    for (int B : {1, 3}) {
      const double e = decode_under_two_specs(name(), dtype, B, spec);
      EXPECT_LT(e, dtype == "fp32" ? 1e-4 : 2e-2) << name() << " " << dtype << " B=" << B;
      RecordProperty(dtype + "_B" + std::to_string(B) + "_rel_err", std::to_string(e));
    }
}

// The tile state update (4 states per lane, 2 rows per thread) against the lanes version (one state per lane),
// fp32 and bf16, batch 1, 3 (a thread's second row empty) and 8. The per-state update is the same expression; only
// the C . h sum runs in another order (4 states in a lane, then the lanes, vs 16 lanes), ~1 fp32 ulp of y per step.
// fp32: bound 1e-5 (the fp32 ops' op-table bound; a few ulps carried through 7 steps and the fixtures' layers).
// bf16: such an ulp can flip a bf16 rounding of y, which later steps carry: 2e-2 as the decode-vs-forward bf16 bound.
TEST_P(CudaFixture, TileStateUpdateMatchesLanes) {
  BMH_REQUIRE_GPU();
  const char* const spec[2] = {"state_update=lanes", "state_update=tile"};
  for (std::string dtype : {"fp32", "bf16"})
    for (int B : {1, 3, 8}) {
      const double e = decode_under_two_specs(name(), dtype, B, spec);
      EXPECT_LT(e, dtype == "fp32" ? 1e-5 : 2e-2) << name() << " " << dtype << " B=" << B;
      RecordProperty(dtype + "_B" + std::to_string(B) + "_rel_err", std::to_string(e));
    }
}

}  // namespace
}  // namespace bmh
