// The long-running CUDA model tests, kept out of the compute-sanitizer pass over test_cuda_model.cpp: the flash
// prefill's tensor-core path inside widened attention presets, batched scoring groups (~300 forwards), no
// device-memory leak over 1000 generate calls, and out-of-memory as a clear error.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>

#include "core/batched_generate.h"
#include "core/error.h"
#include "core/presets.h"
#include "evals/model_loader.h"
#include "gpu_test_util.h"
#include "kernels/cuda_model.h"
#include "kernels/variants.h"
#include "model_test_util.h"
#include "reference/model.h"

namespace bmh {
namespace {

using gpu_test::expected;
using gpu_test::ids_for;
using gpu_test::KernelSetGuard;
using gpu_test::load_fixture;
using gpu_test::rel;

using gpu_test::kFixtures;

// The flash prefill's tensor-core path (bf16/fp16, head_dim 64 or 128) inside the model, which the fixtures and
// tiny presets (head_dim 16: the row-wise fallback) do not reach: the attention presets with their heads widened,
// B = 2 sequences of T = 150 (two full 64-query tiles and a partial one; 3 key tiles through the double buffer),
// GPT-NeoX (partial rotary, per-head qkv), Mixtral (GQA, 2 query heads per kv head, full rotary) and Jamba (GQA,
// no rotary), MoE routes forced to the CPU reference's. The qkv weights are scaled by 8: at the presets' 0.02 init
// the scores q.k/sqrt(hd) have a spread of ~0.03, the softmax is nearly uniform and a wrong query, rotary or mask
// would hardly show; scaled, the scores spread ~1.6 and attention dominates the residual (checked below: zeroing
// the attention output projections must move the logits by more than 5x the bound). The same model object runs
// both attention paths, so only the attention kernels differ: their logits agree within the model-level bounds
// these tests use per dtype (bf16 2e-2, fp16 3e-3; Jamba's inner norms 5e-2 / 1e-2). Both are also compared with
// the CPU reference in fp32: flash within 1.5x the cuBLAS path's error plus the same bound.
TEST(CudaFlashPrefill, TensorCorePathMatchesGemmPathInTheModel) {
  BMH_REQUIRE_GPU();
  for (std::string preset : {"tiny-pythia-50k", "tiny-mixtral-50k", "tiny-jamba-50k"})
    for (int hd : {64, 128}) {
      ModelConfig cfg = preset_config(preset);
      for (BlockConfig& b : cfg.blocks)
        if (b.mixer == MixerKind::Attention) {
          const bool neox = !b.attn.grouped_qkv;
          b.attn.rotary_dim = neox ? hd / 4 : (b.attn.rotary_dim > 0 ? hd : 0);  // as the presets derive it
          b.attn.head_dim = hd;
        }
      TensorMap w = random_weights(cfg, 21);
      TensorMap w_noattn = random_weights(cfg, 21);
      for (int i = 0; i < cfg.n_blocks(); ++i) {
        if (cfg.blocks[i].mixer != MixerKind::Attention) continue;
        const std::string pre = "blocks." + std::to_string(i) + ".attn.";
        for (TensorMap* m : {&w, &w_noattn}) {
          Tensor& q = m->at(pre + "qkv.weight");
          for (int64_t k = 0; k < q.numel(); ++k) q.data_mut<float>()[k] *= 8.f;
        }
        Tensor& dense = w_noattn.at(pre + "dense.weight");
        std::fill_n(dense.data_mut<float>(), dense.numel(), 0.f);
      }
      Tensor ids = ids_for(2, 150, cfg.vocab_size, 31);
      const ForwardOutput cpu_out = ref::make_reference_model(cfg, w, "fp32")->forward(ids);
      const Tensor& cpu = cpu_out.logits;
      // Routes forced to the reference's, so a near-tie cannot send a token elsewhere in one run only.
      std::vector<std::pair<int, std::vector<int64_t>>> routes;
      for (const RouteRecord& r : cpu_out.routes) routes.push_back({r.block, r.expert});
      ForwardOptions opt;
      opt.force_routes = &routes;
      const bool jamba = preset == "tiny-jamba-50k";
      for (std::string dtype : {"bf16", "fp16"}) {
        auto m = make_cuda_model(cfg, w, dtype);
        Tensor flash, gemm;
        {
          KernelSetGuard g("attn_prefill=flash");
          flash = m->forward(ids, opt).logits;
        }
        {
          KernelSetGuard g("attn_prefill=gemm");
          gemm = m->forward(ids, opt).logits;
        }
        const double bound = dtype == "bf16" ? (jamba ? 5e-2 : 2e-2) : (jamba ? 1e-2 : 3e-3);
        const double e_fg = rel(flash, gemm), e_gc = rel(gemm, cpu), e_fc = rel(flash, cpu);
        std::printf("[ info ] %s head_dim %d %s: flash vs cuBLAS path %.2e; vs CPU fp32: flash %.2e, cuBLAS %.2e\n",
                    preset.c_str(), hd, dtype.c_str(), e_fg, e_fc, e_gc);
        EXPECT_LT(e_fg, bound) << preset << " head_dim " << hd << " " << dtype;
        EXPECT_LT(e_fc, 1.5 * e_gc + bound) << preset << " head_dim " << hd << " " << dtype;
        if (dtype == "bf16") {  // the test's power: what removing attention altogether does to these logits
          const double e_off = rel(make_cuda_model(cfg, w_noattn, dtype)->forward(ids, opt).logits, flash);
          std::printf("[ info ] %s head_dim %d: logits without attention differ by %.2e\n", preset.c_str(), hd, e_off);
          EXPECT_GT(e_off, 5 * bound) << preset << " head_dim " << hd << ": attention barely moves these logits";
        }
      }
    }
}

// Batched CUDA scoring (kernels/cuda_score.cpp) on the fixtures in fp32: random groups of requests of 2-40 tokens
// in one score_groups() call (sorted, right-padded, several per forward, scored rows gathered through the LM head)
// against score() one request per forward and the CPU reference's grouped scoring, within 1e-4 relative (fp32 on a
// GPU with TF32 off, the oracle's tolerance; the batched GEMMs have other shapes, so other summation orders);
// identical is_greedy. --deterministic must give score()'s results bit for bit whatever the grouping.
std::vector<ScoreGroup> random_groups(int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> tok(0, vocab - 1);
  auto draw = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<ScoreGroup> groups;
  for (int g = 0; g < 12; ++g) {  // groups of 1-4 requests sharing a 1-12 token prefix, 0-20 more, 1-6 scored
    ScoreGroup grp;
    grp.prefix = draw(1, 12);
    std::vector<int32_t> prefix(static_cast<size_t>(grp.prefix));
    for (auto& t : prefix) t = tok(rng);
    for (int m = draw(1, 4); m > 0; --m) {
      ScoreRequest r;
      r.tokens = prefix;
      for (int k = draw(0, 20); k > 0; --k) r.tokens.push_back(tok(rng));
      r.n_continuation = draw(1, 6);
      for (int k = 0; k < r.n_continuation; ++k) r.tokens.push_back(tok(rng));
      grp.requests.push_back(std::move(r));
    }
    groups.push_back(std::move(grp));
  }
  return groups;
}

TEST(CudaScoreGroups, BatchedEqualsOneByOneAndTheReference) {
  BMH_REQUIRE_GPU();
  for (std::string f : kFixtures) {
    auto gpu = load_fixture(f, "fp32");
    ModelSpec cs;
    cs.dir = gpu_test::fixture_dir(f);
    auto cpu = load_model(cs);
    std::vector<ScoreGroup> groups = random_groups(gpu->config().vocab_size, 5);
    std::vector<ScoreRequest> flat;
    for (const auto& g : groups) flat.insert(flat.end(), g.requests.begin(), g.requests.end());
    std::vector<ScoreResult> batched = gpu->score_groups(groups, {});
    std::vector<ScoreResult> single = gpu->score(flat);
    std::vector<ScoreResult> ref = cpu->score_groups(groups, {});
    ScoreBatchOptions det;
    det.deterministic = true;
    std::vector<ScoreResult> deterministic = gpu->score_groups(groups, det);
    ASSERT_EQ(batched.size(), flat.size());
    ASSERT_EQ(single.size(), flat.size());
    ASSERT_EQ(ref.size(), flat.size());
    ASSERT_EQ(deterministic.size(), flat.size());
    double worst = 0;
    for (size_t i = 0; i < flat.size(); ++i) {
      const double scale = std::max(1.0, std::abs(ref[i].logprob)), tol = 1e-4 * scale;
      worst = std::max({worst, std::abs(batched[i].logprob - single[i].logprob) / scale,
                        std::abs(batched[i].logprob - ref[i].logprob) / scale});
      EXPECT_NEAR(batched[i].logprob, single[i].logprob, tol) << f << " request " << i;
      EXPECT_NEAR(batched[i].logprob, ref[i].logprob, tol) << f << " request " << i;
      EXPECT_EQ(batched[i].is_greedy, ref[i].is_greedy) << f << " request " << i;
      EXPECT_EQ(deterministic[i].logprob, single[i].logprob) << f << " request " << i;  // bit for bit
      EXPECT_EQ(deterministic[i].is_greedy, single[i].is_greedy) << f << " request " << i;
    }
    std::printf("[ info ] %s: %zu requests, largest batched-vs-single/reference log-likelihood error %.2e (relative)\n",
                f.c_str(), flat.size(), worst);
  }
}

TEST(CudaMemory, NoLeakOver1000GenerateCalls) {
  BMH_REQUIRE_GPU();
  auto m = load_fixture("blackmamba-tiny", "bf16");
  Tensor prompt = ids_for(1, 8, m->config().vocab_size, 3);
  generate_greedy(*m, prompt, 3);  // workspaces reach their size
  BMH_CUDA(cudaDeviceSynchronize());
  size_t free0 = 0, free1 = 0, total = 0;
  BMH_CUDA(cudaMemGetInfo(&free0, &total));
  for (int i = 0; i < 1000; ++i) generate_greedy(*m, prompt, 3);
  BMH_CUDA(cudaDeviceSynchronize());
  BMH_CUDA(cudaMemGetInfo(&free1, &total));
  // Every decoder allocates its states, workspaces and graph (tens of KB): a leak of any of them over 1000 calls
  // would exceed the 2 MiB allocation granularity allowed here.
  EXPECT_GE(free1 + (2u << 20), free0) << "device memory free before " << free0 << ", after " << free1;
}

TEST(CudaMemory, NoLeakOver1000BatchedGenerateCalls) {
  BMH_REQUIRE_GPU();
  auto m = load_fixture("blackmamba-tiny", "bf16");
  std::vector<GenerateRequest> reqs = {{{1, 2, 3}, 3}, {{4}, 1}, {{5, 6, 7, 8, 9}, 4}, {{10, 11}, 2}};
  BatchedGenerateOptions o;
  o.max_batch = 2;  // slots refilled: per-slot prefill state, graph and buffers made and freed each call
  generate_batched(*m, reqs, o);
  BMH_CUDA(cudaDeviceSynchronize());
  size_t free0 = 0, free1 = 0, total = 0;
  BMH_CUDA(cudaMemGetInfo(&free0, &total));
  for (int i = 0; i < 1000; ++i) generate_batched(*m, reqs, o);
  BMH_CUDA(cudaDeviceSynchronize());
  BMH_CUDA(cudaMemGetInfo(&free1, &total));
  EXPECT_GE(free1 + (2u << 20), free0) << "device memory free before " << free0 << ", after " << free1;
}

TEST(CudaMemory, OutOfMemoryIsAClearError) {
  BMH_REQUIRE_GPU();
  // The cuBLAS attention path's [H, T, T] scores are what overflows here; the flash path keeps no T x T buffer
  // (and its fp32 fallback refuses T > 51200 before allocating anything).
  KernelSetGuard gemm("attn_prefill=gemm");
  auto m = load_fixture("pythia-tiny", "fp32");
  Tensor huge = ids_for(1, 1 << 20, m->config().vocab_size, 1);  // attention scores alone: 4 x 2^40 floats
  try {
    m->forward(huge);
    FAIL() << "a 16 TiB workspace was allocated";
  } catch (const Error& e) {
    std::string s = e.what();
    EXPECT_NE(s.find("out of memory"), std::string::npos) << s;
    EXPECT_NE(s.find("bytes"), std::string::npos) << s;
    EXPECT_NE(s.find("hint"), std::string::npos) << s;
  }
  // Still usable afterwards.
  TensorMap exp = expected("pythia-tiny");
  EXPECT_LT(rel(m->forward(exp.at("input_ids")).logits, exp.at("logits")), 1e-4);
}

}  // namespace
}  // namespace bmh
