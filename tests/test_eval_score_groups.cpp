// Scoring on the CPU reference (reference/score.cpp) against full-sequence scoring, on every fixture and every tiny
// preset (Mamba, BlackMamba's MoE, attention with rotary): random requests in groups sharing random prefixes (some
// ending exactly where the continuation starts, some earlier, some with nothing left after the prefix), scored in
// one packed call with prefixes run once, must equal each request run whole by RefModel::run; packed rows must
// equal their sequences run alone; and with `deterministic` every result is bit-identical whatever the packing.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "core/error.h"
#include "core/presets.h"
#include "evals/model_loader.h"
#include "reference/model.h"
#include "test_util.h"

namespace bmh {
namespace {

struct Case {
  std::string name;
  ModelSpec spec;
};

std::vector<Case> cases(const std::string& dtype) {
  std::vector<Case> v;
  for (std::string f : {"blackmamba-tiny", "blackmamba-tiny-variant", "mamba-tiny-hf", "mamba-tiny-ssm", "pythia-tiny"}) {
    ModelSpec s;
    s.dir = test::fixture_dir(f);
    s.dtype = dtype;
    v.push_back({f, s});
  }
  for (const std::string& p : preset_names())
    if (p.rfind("tiny-", 0) == 0) {
      ModelSpec s;
      s.preset = p;
      s.seed = 3;
      s.dtype = dtype;
      v.push_back({p, s});
    }
  return v;
}

// Each model built once per test binary (the 50k-vocabulary presets take a moment).
LanguageModel& model(const Case& c) {
  static std::map<std::string, std::unique_ptr<LanguageModel>> cache;
  auto& m = cache[c.name + "/" + c.spec.dtype];
  if (!m) m = load_model(c.spec);
  return *m;
}

// Groups of 1-4 requests: a shared prefix of 1-12 random tokens, then 0-4 more context tokens and 1-5
// continuation tokens per request.
std::vector<ScoreGroup> random_groups(int vocab, uint64_t seed, int n_groups) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> tok(0, vocab - 1);
  auto draw = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<ScoreGroup> groups;
  for (int g = 0; g < n_groups; ++g) {
    ScoreGroup grp;
    grp.prefix = draw(1, 12);
    std::vector<int32_t> prefix(size_t(grp.prefix));
    for (auto& t : prefix) t = tok(rng);
    for (int m = draw(1, 4); m > 0; --m) {
      ScoreRequest r;
      r.tokens = prefix;
      for (int k = draw(0, 4); k > 0; --k) r.tokens.push_back(tok(rng));
      r.n_continuation = draw(1, 5);
      for (int k = 0; k < r.n_continuation; ++k) r.tokens.push_back(tok(rng));
      grp.requests.push_back(std::move(r));
    }
    groups.push_back(std::move(grp));
  }
  return groups;
}

// Full-sequence scoring: RefModel::run over tokens[:-1] from a fresh state, every position through the LM head.
template <class T> ScoreResult score_whole(const ref::RefModel<T>& m, const ScoreRequest& r) {
  std::vector<int64_t> in(r.tokens.begin(), r.tokens.end() - 1);
  ref::SequenceState<T> st = m.new_state();
  ref::Mat<T> logits = m.run(in, st, nullptr);
  ScoreResult s{0, true};
  const int64_t n = int64_t(r.tokens.size());
  for (int64_t p = n - 1 - r.n_continuation; p < n - 1; ++p) {
    auto [lp, is_max] = log_softmax_at(logits.row(p).data(), logits.cols(), r.tokens[size_t(p + 1)]);
    s.logprob += lp;
    s.is_greedy = s.is_greedy && is_max;
  }
  return s;
}

template <class T> void check_against_whole(const Case& c, double tol) {
  auto& m = dynamic_cast<ref::RefModel<T>&>(model(c));
  std::vector<ScoreGroup> groups = random_groups(m.config().vocab_size, 17, 6);
  std::vector<ScoreResult> got = m.score_groups(groups, {});
  size_t i = 0;
  double worst = 0;
  for (const ScoreGroup& g : groups)
    for (const ScoreRequest& r : g.requests) {
      ScoreResult want = score_whole(m, r);
      const double diff = std::abs(got[i].logprob - want.logprob) / std::max(1.0, std::abs(want.logprob));
      worst = std::max(worst, diff);
      EXPECT_LE(diff, tol) << c.name << " request " << i;
      EXPECT_EQ(got[i].is_greedy, want.is_greedy) << c.name << " request " << i;
      ++i;
    }
  ASSERT_EQ(got.size(), i);
  std::printf("%s: worst relative difference %.3g\n", c.name.c_str(), worst);
}

// fp64: rounding only (observed <= 6e-16 relative), bound 1e-13; fp32: observed <= 8e-7 relative (products over
// other row counts than in the whole run, so GEMM blocking differs), bound 1e-5.
TEST(ScoreGroups, SharedPrefixesEqualFullSequenceFp64) {
  for (const Case& c : cases("fp64")) check_against_whole<double>(c, 1e-13);
}
TEST(ScoreGroups, SharedPrefixesEqualFullSequenceFp32) {
  for (const Case& c : cases("fp32")) check_against_whole<float>(c, 1e-5);
}

// Packed rows (segments with fresh states) give each sequence's logits as if it ran alone: bit for bit when every
// product runs row by row, within fp32 rounding otherwise.
TEST(ScoreGroups, PackedRowEqualsSequencesAlone) {
  for (const Case& c : cases("fp32")) {
    auto& m = dynamic_cast<ref::RefModel<float>&>(model(c));
    std::mt19937_64 rng(29);
    std::uniform_int_distribution<int64_t> tok(0, m.config().vocab_size - 1);
    std::vector<std::vector<int64_t>> seqs;
    for (int len : {7, 1, 3, 12, 2}) {
      seqs.emplace_back(size_t(len));
      for (auto& t : seqs.back()) t = tok(rng);
    }
    for (bool row_invariant : {true, false}) {
      ref::row_invariant_products() = row_invariant;
      std::vector<int64_t> tokens, head;
      std::vector<ref::SequenceState<float>> states(seqs.size(), m.new_state());
      ref::PackedSegments<float> segs;
      for (size_t s = 0; s < seqs.size(); ++s) {
        segs.start.push_back(int64_t(tokens.size()));
        segs.state.push_back(&states[s]);
        tokens.insert(tokens.end(), seqs[s].begin(), seqs[s].end());
      }
      for (int64_t r = 0; r < int64_t(tokens.size()); ++r) head.push_back(r);
      ref::Mat<float> packed = m.run_packed(tokens, segs, head);
      int64_t row = 0;
      for (size_t s = 0; s < seqs.size(); ++s) {
        ref::SequenceState<float> st = m.new_state();
        ref::Mat<float> alone = m.run(seqs[s], st, nullptr);
        ref::Mat<float> part = packed.middleRows(row, alone.rows());
        EXPECT_EQ(states[s].position, int64_t(seqs[s].size()));
        if (row_invariant) {
          EXPECT_TRUE(part == alone) << c.name << " sequence " << s << ": max diff "
                                     << (part - alone).cwiseAbs().maxCoeff();
        } else {
          // fp32 logits of order 1-10: the GEMMs' blocking over other row counts moves them by a few ulps.
          EXPECT_LE((part - alone).cwiseAbs().maxCoeff(), 1e-4f * std::max(1.0f, alone.cwiseAbs().maxCoeff()))
              << c.name << " sequence " << s;
        }
        row += alone.rows();
      }
    }
    ref::row_invariant_products() = false;
  }
}

// --deterministic: one call with prefixes shared, each request alone, and another split of the same requests give
// bit-identical log-likelihoods.
TEST(ScoreGroups, DeterministicIsBitIdenticalAcrossPackings) {
  for (const Case& c : cases("fp32")) {
    LanguageModel* lm = &model(c);
    ASSERT_TRUE(lm->batch_invariant());
    std::vector<ScoreGroup> groups = random_groups(lm->config().vocab_size, 41, 8);
    ScoreBatchOptions det;
    det.deterministic = true;
    std::vector<ScoreResult> together = lm->score_groups(groups, det);
    std::vector<ScoreResult> alone, reversed;
    for (const ScoreGroup& g : groups)
      for (const ScoreRequest& r : g.requests) alone.push_back(lm->score_groups({ScoreGroup{0, {r}}}, det).at(0));
    // Reversed group order in two calls, the second half without shared prefixes.
    std::vector<ScoreGroup> first(groups.rbegin(), groups.rbegin() + 4), second(groups.rbegin() + 4, groups.rend());
    for (ScoreGroup& g : second) g.prefix = 0;
    for (const auto& part : {first, second})
      for (const ScoreResult& r : lm->score_groups(part, det)) reversed.push_back(r);
    size_t n = together.size();
    ASSERT_EQ(alone.size(), n);
    ASSERT_EQ(reversed.size(), n);
    // `reversed` lists groups backwards: map each request back.
    std::vector<size_t> offset;
    size_t k = 0;
    for (const ScoreGroup& g : groups) {
      offset.push_back(k);
      k += g.requests.size();
    }
    size_t j = 0;
    for (size_t g = groups.size(); g-- > 0;)
      for (size_t r = 0; r < groups[g].requests.size(); ++r, ++j) {
        const size_t i = offset[g] + r;
        EXPECT_EQ(together[i].logprob, alone[i].logprob) << c.name << " request " << i;
        EXPECT_EQ(together[i].logprob, reversed[j].logprob) << c.name << " request " << i;
        EXPECT_EQ(together[i].is_greedy, alone[i].is_greedy) << c.name << " request " << i;
        EXPECT_EQ(together[i].is_greedy, reversed[j].is_greedy) << c.name << " request " << i;
      }
  }
}

TEST(ScoreGroups, BadGroupsFailWithTheirPosition) {
  ModelSpec s;
  s.dir = test::fixture_dir("mamba-tiny-hf");
  std::unique_ptr<LanguageModel> lm = load_model(s);
  auto expect_error = [&](const ScoreGroup& g, const std::string& needle) {
    try {
      lm->score_groups({g}, {});
      ADD_FAILURE() << "accepted: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error({3, {{{1, 2, 3, 4}, 2}}}, "shared prefix of 3 tokens does not fit request 0");
  expect_error({2, {{{1, 2, 3, 4}, 1}, {{1, 5, 3, 4}, 1}}}, "request 1 differs from request 0 at position 1");
  expect_error({0, {{{1, 2, 999999}, 1}}}, "id 999999 at position 2 is outside the vocabulary");
  expect_error({0, {{{1, 2}, 2}}}, "at least one context token");
}

}  // namespace
}  // namespace bmh
