// Batched CUDA scoring (kernels/cuda_score.cpp) on every fixture in fp32: random requests of 2-40 tokens in one
// score_groups() call (sorted, right-padded, several per forward, scored rows gathered through the LM head) against
// score() one request per forward and against the CPU reference's grouped scoring, within 1e-4 relative (fp32 on a
// GPU with TF32 off, the oracle's tolerance; other GEMM shapes per batch); identical is_greedy. --deterministic must
// give score()'s results bit for bit whatever the grouping.
#include <gtest/gtest.h>

#include <random>

#include "evals/model_loader.h"
#include "gpu_test_util.h"

namespace bmh {
namespace {

std::unique_ptr<LanguageModel> load(const std::string& fixture, const std::string& backend) {
  ModelSpec s;
  s.dir = gpu_test::fixture_dir(fixture);
  s.backend = backend;
  s.dtype = "fp32";
  return load_model(s);
}

// Groups of 1-4 requests sharing a 1-12 token prefix, then 0-20 more tokens and 1-6 scored ones.
std::vector<ScoreGroup> random_groups(int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> tok(0, vocab - 1);
  auto draw = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<ScoreGroup> groups;
  for (int g = 0; g < 12; ++g) {
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
  for (std::string f : {"blackmamba-tiny", "blackmamba-tiny-variant", "mamba-tiny-ssm", "mamba-tiny-hf", "pythia-tiny"}) {
    auto gpu = load(f, "cuda");
    auto cpu = load(f, "cpu");
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
    ASSERT_EQ(deterministic.size(), flat.size());
    for (size_t i = 0; i < flat.size(); ++i) {
      const double tol = 1e-4 * std::max(1.0, std::abs(ref[i].logprob));
      EXPECT_NEAR(batched[i].logprob, single[i].logprob, tol) << f << " request " << i;
      EXPECT_NEAR(batched[i].logprob, ref[i].logprob, tol) << f << " request " << i;
      EXPECT_EQ(batched[i].is_greedy, ref[i].is_greedy) << f << " request " << i;
      EXPECT_EQ(deterministic[i].logprob, single[i].logprob) << f << " request " << i;  // bit for bit
    }
  }
}

}  // namespace
}  // namespace bmh
