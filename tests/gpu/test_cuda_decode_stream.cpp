// Batch-1 decoding through the streamed GEMV (gemv=stream) with the mixer's norm folded into its first projection
// (decode_norm=fused), at model widths where those kernels take the projections: the fixtures and tiny presets are
// 64-256 wide, below the 128 16-byte vectors gemv_stream needs, so they decode through version 2 whatever the
// variant. Here: the first two blocks of Mamba-1.4B (d 2048), Pythia-1.4B (d 2048, parallel attention + MLP) and
// BlackMamba-2.8B (d 1472, a Mamba and an MoE block), seeded random weights, the real vocabulary.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/language_model.h"
#include "core/presets.h"
#include "gpu_test_util.h"
#include "model_test_util.h"
#include "kernels/cuda_backend.h"
#include "kernels/cuda_model.h"
#include "kernels/variants.h"

namespace bmh {
namespace {

using gpu_test::KernelSetGuard;
using gpu_test::rel;

ModelConfig two_blocks(const std::string& preset) {
  ModelConfig cfg = preset_config(preset);
  cfg.blocks.resize(2);
  return cfg;
}

const std::vector<std::string> kWide = {"mamba-1.4b", "pythia-1.4b", "blackmamba-2.8b"};

// Logits of 6 teacher-forced steps after an 11-token prompt, under a kernel spec.
std::vector<float> decode_steps(LanguageModel& m, const char* spec, uint64_t seed) {
  KernelSetGuard g(spec);
  const int V = m.config().vocab_size;
  std::mt19937_64 rng(seed);
  std::vector<int64_t> p(11);
  for (auto& id : p) id = int64_t(rng() % uint64_t(V));
  auto dec = m.decoder(1);
  dec->prefill(Tensor::from_i64(p, {1, 11}));
  std::vector<float> out;
  for (int s = 0; s < 6; ++s) {
    const Tensor l = dec->step({int64_t(rng() % uint64_t(V))});
    out.insert(out.end(), l.data<float>(), l.data<float>() + l.numel());
  }
  return out;
}

// The streamed path, with the norm separate and folded, against version 2 (gemv=mma hands one row to split; the norm
// its own kernel) on the same inputs. Not bit-identical: each output's K-term fp32 sum runs in another order
// (split-K partials). fp32: a few ulps, bound 1e-5 (H200, 63e90b4: below 5e-7 for all three); bf16: an ulp moved
// early can flip a bf16 rounding that later layers and steps carry; observed 4.2e-5 (BlackMamba), 7.0e-5 (Mamba),
// 3.4e-4 (Pythia), bound 2e-3.
TEST(CudaDecodeStream, MatchesVersion2) {
  BMH_REQUIRE_GPU();
  for (const std::string& preset : kWide) {
    const ModelConfig cfg = two_blocks(preset);
    const TensorMap w = random_weights(cfg, 5);
    for (std::string dtype : {"fp32", "bf16"}) {
      auto m = make_cuda_model(cfg, w, dtype);
      const std::vector<float> v2 = decode_steps(*m, "gemv=mma,decode_norm=separate", 31);
      for (const char* norm : {"separate", "fused"}) {
        const std::vector<float> v5 = decode_steps(*m, (std::string("gemv=stream,decode_norm=") + norm).c_str(), 31);
        const double e = rel(v5, std::vector<double>(v2.begin(), v2.end()));
        EXPECT_LT(e, dtype == "fp32" ? 1e-5 : 2e-3) << preset << " " << dtype << " decode_norm=" << norm;
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.3g", e);
        RecordProperty(preset + "_" + dtype + "_" + norm + "_rel_err", buf);
      }
    }
  }
}

// Greedy decoding through the streamed path (the default for one row) against a full forward of the generated sequence (prefill: cuBLAS
// GEMMs, separate norms), bounds as CudaPreset.DecodeMatchesForward's.
TEST(CudaDecodeStream, DecodeMatchesForward) {
  BMH_REQUIRE_GPU();
  KernelSetGuard g("gemv=stream,decode_norm=separate");
  for (const std::string& preset : kWide) {
    const ModelConfig cfg = two_blocks(preset);
    const TensorMap w = random_weights(cfg, 3);
    for (std::string dtype : {"fp32", "bf16"}) {
      auto m = make_cuda_model(cfg, w, dtype);
      const int T = 9, n = 7, V = cfg.vocab_size;
      Tensor prompt = gpu_test::ids_for(1, T, V, 17);
      Tensor dec_logits;
      Tensor gen = generate_greedy(*m, prompt, n, &dec_logits);
      ForwardOutput f = m->forward(gen);
      Tensor want = Tensor::zeros(DType::F32, {1, n, V});
      std::copy_n(f.logits.data<float>() + size_t(T - 1) * V, size_t(n) * V, want.data_mut<float>());
      EXPECT_LT(rel(dec_logits, want), dtype == "fp32" ? 1e-4 : 2e-2) << preset << " " << dtype;
    }
  }
}

// The fold happens: one decode step's op list (CudaModel::decode_breakdown: one "norm" op per norm kernel) has no
// mixer norm when every mixer's first projection takes it; with decode_norm=separate every pre-norm runs.
TEST(CudaDecodeStream, MixerNormIsFolded) {
  BMH_REQUIRE_GPU();
  for (const std::string& preset : kWide) {
    const ModelConfig cfg = two_blocks(preset);
    auto m = make_cuda_model(cfg, random_weights(cfg, 9), "bf16");
    auto* cm = dynamic_cast<cuda::CudaModel*>(m.get());
    ASSERT_NE(cm, nullptr);
    auto expected = [&](bool fold) {
      int n = 1;  // the final norm
      for (const BlockConfig& b : cfg.blocks) n += (b.mixer != MixerKind::None && !fold) + (b.mlp != MlpKind::None);
      return n;
    };
    auto norms = [&](const char* spec) {
      KernelSetGuard g(spec);
      int count = 0;
      for (const auto& r : cm->decode_breakdown(gpu_test::ids_for(1, 5, cfg.vocab_size, 3)))
        if (r.op == "norm") count += r.count;
      return count;
    };
    EXPECT_EQ(norms("gemv=stream,decode_norm=fused"), expected(true)) << preset;
    EXPECT_EQ(norms("gemv=stream,decode_norm=separate"), expected(false)) << preset;
    EXPECT_LT(expected(true), expected(false)) << preset;
  }
}

}  // namespace
}  // namespace bmh
