// The score planner (evals/score_plan.h): requests grouped by longest common token prefix, groups split to the token
// budget, calls filled longest first. Random requests shaped as the tasks make them (choices after one context,
// WinoGrande's options inside the sentence, truncated windows); every request is planned exactly once, every
// group's prefix is common to its members and fits their scored positions, and calls keep to the budget.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "core/error.h"
#include "evals/score_plan.h"

namespace bmh::eval {
namespace {

std::vector<int32_t> random_tokens(std::mt19937& rng, int n) {
  std::uniform_int_distribution<int32_t> d(1, 50000);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

ScoreRequest make(std::vector<int32_t> ctx, const std::vector<int32_t>& cont) {
  ScoreRequest r;
  r.n_continuation = int(cont.size());
  ctx.insert(ctx.end(), cont.begin(), cont.end());
  r.tokens = std::move(ctx);
  return r;
}

// Multiple-choice documents: `choices` continuations of 1..8 tokens after one context of 5..40 tokens.
std::vector<ScoreRequest> mc_requests(std::mt19937& rng, int docs, int choices) {
  std::vector<ScoreRequest> v;
  std::uniform_int_distribution<int> ctx_len(5, 40), cont_len(1, 8);
  for (int d = 0; d < docs; ++d) {
    std::vector<int32_t> ctx = random_tokens(rng, ctx_len(rng));
    for (int c = 0; c < choices; ++c) v.push_back(make(ctx, random_tokens(rng, cont_len(rng))));
  }
  return v;
}

std::vector<const ScoreRequest*> ptrs(const std::vector<ScoreRequest>& v) {
  std::vector<const ScoreRequest*> p;
  for (const auto& r : v) p.push_back(&r);
  return p;
}

// Every request once; prefixes common and within each member's n - C; calls within budget unless one request alone
// exceeds it; token counts add up.
void check_plan(const std::vector<PlannedCall>& calls, const std::vector<ScoreRequest>& reqs, int64_t budget) {
  std::multiset<size_t> seen;
  for (const PlannedCall& c : calls) {
    int64_t tokens = 0;
    size_t n = 0;
    for (const PlannedGroup& g : c.groups) {
      ASSERT_FALSE(g.members.empty());
      if (g.prefix > 0) {
        EXPECT_GE(g.members.size(), 2u);
        EXPECT_GE(g.prefix, kMinSharedPrefix);
      }
      int64_t gt = g.prefix;
      for (size_t m : g.members) {
        seen.insert(m);
        const ScoreRequest& r = reqs[m];
        EXPECT_LE(g.prefix, int(r.tokens.size()) - r.n_continuation);
        for (int t = 0; t < g.prefix; ++t) EXPECT_EQ(r.tokens[t], reqs[g.members[0]].tokens[t]);
        gt += int64_t(r.tokens.size()) - 1 - g.prefix;
      }
      EXPECT_EQ(g.tokens, gt);
      tokens += g.tokens;
      n += g.members.size();
    }
    EXPECT_EQ(c.tokens, tokens);
    EXPECT_EQ(c.requests, n);
    if (c.groups.size() > 1 || c.groups[0].members.size() > 1) EXPECT_LE(c.tokens, budget);
  }
  EXPECT_EQ(seen.size(), reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(seen.count(i), 1u) << i;
  // Longest first.
  for (size_t c = 1; c < calls.size(); ++c)
    EXPECT_GE(calls[c - 1].groups.back().tokens, calls[c].groups.front().tokens);
}

TEST(ScorePlan, ChoicesAfterOneContextShareIt) {
  std::mt19937 rng(11);
  std::vector<ScoreRequest> reqs = mc_requests(rng, 30, 4);
  std::shuffle(reqs.begin(), reqs.end(), rng);
  for (int64_t budget : {int64_t(1), int64_t(60), int64_t(100000)}) {
    std::vector<PlannedCall> calls = plan_score_calls(ptrs(reqs), {budget, true});
    check_plan(calls, reqs, budget);
    if (budget == 100000) {
      ASSERT_EQ(calls.size(), 1u);
      // One group per document, its prefix exactly the context (distinct continuations' first tokens differ).
      EXPECT_EQ(calls[0].groups.size(), 30u);
      for (const PlannedGroup& g : calls[0].groups) {
        EXPECT_EQ(g.members.size(), 4u);
        const ScoreRequest& r = reqs[g.members[0]];
        EXPECT_EQ(g.prefix, int(r.tokens.size()) - r.n_continuation);
      }
      PlanTokens t = plan_tokens(calls, ptrs(reqs));
      EXPECT_LT(t.computed, t.whole);
    }
  }
  // Without sharing every request is whole and the tokens are the sum of n - 1.
  std::vector<PlannedCall> calls = plan_score_calls(ptrs(reqs), {500, false});
  check_plan(calls, reqs, 500);
  PlanTokens t = plan_tokens(calls, ptrs(reqs));
  EXPECT_EQ(t.computed, t.whole);
  for (const auto& c : calls)
    for (const auto& g : c.groups) EXPECT_EQ(g.prefix, 0);
}

TEST(ScorePlan, WinograndeSharesTheSentenceStart) {
  // Contexts "<start> option1" / "<start> option2", continuation the sentence's end: the start is shared.
  std::mt19937 rng(5);
  std::vector<ScoreRequest> reqs;
  std::vector<int> start_len;
  for (int d = 0; d < 20; ++d) {
    std::vector<int32_t> start = random_tokens(rng, 6 + d % 9), end = random_tokens(rng, 3 + d % 4);
    start_len.push_back(int(start.size()));
    for (int o = 0; o < 2; ++o) {
      std::vector<int32_t> ctx = start, opt = random_tokens(rng, 1 + o);
      ctx.insert(ctx.end(), opt.begin(), opt.end());
      reqs.push_back(make(ctx, end));
    }
  }
  std::vector<PlannedCall> calls = plan_score_calls(ptrs(reqs), {100000, true});
  check_plan(calls, reqs, 100000);
  size_t grouped = 0;
  for (const auto& g : calls[0].groups)
    if (g.prefix > 0) {
      ASSERT_EQ(g.members.size(), 2u);
      EXPECT_EQ(g.members[0] / 2, g.members[1] / 2);  // the two options of one sentence
      EXPECT_EQ(g.prefix, start_len[g.members[0] / 2]);
      ++grouped;
    }
  EXPECT_EQ(grouped, 20u);
}

TEST(ScorePlan, TruncatedRequestIsScoredWhole) {
  // A context longer than max_length is cut from the left per request (to_score_request), so a truncated choice
  // starts elsewhere than its siblings: it joins no group.
  std::mt19937 rng(3);
  std::vector<int32_t> ctx = random_tokens(rng, 30);
  std::vector<ScoreRequest> reqs = {make(ctx, random_tokens(rng, 2)), make(ctx, random_tokens(rng, 3)),
                                    make(std::vector<int32_t>(ctx.begin() + 7, ctx.end()), random_tokens(rng, 9))};
  std::vector<PlannedCall> calls = plan_score_calls(ptrs(reqs), {100000, true});
  check_plan(calls, reqs, 100000);
  for (const auto& g : calls[0].groups) {
    bool has_truncated = std::find(g.members.begin(), g.members.end(), size_t(2)) != g.members.end();
    if (has_truncated) {
      EXPECT_EQ(g.members.size(), 1u);
      EXPECT_EQ(g.prefix, 0);
    } else {
      EXPECT_EQ(g.prefix, 30);
    }
  }
}

TEST(ScorePlan, GroupsOverTheBudgetSplitAndRerunThePrefix) {
  std::mt19937 rng(8);
  std::vector<int32_t> ctx = random_tokens(rng, 20);
  std::vector<ScoreRequest> reqs;
  // n = 25, so a part of k requests costs 20 + k * (24 - 20) tokens.
  for (int c = 0; c < 10; ++c) reqs.push_back(make(ctx, random_tokens(rng, 5)));
  std::vector<PlannedCall> calls = plan_score_calls(ptrs(reqs), {36, true});
  check_plan(calls, reqs, 36);
  // Parts of 4 (20 + 4 * 4 = 36 tokens) and the 2 left.
  std::vector<size_t> sizes;
  for (const auto& c : calls) {
    ASSERT_EQ(c.groups.size(), 1u);
    sizes.push_back(c.groups[0].members.size());
    EXPECT_LE(c.tokens, 36);
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{4, 4, 2}));
  // A request longer than the budget gets a call of its own.
  std::vector<ScoreRequest> big = {make(random_tokens(rng, 50), random_tokens(rng, 3)), make(ctx, {7})};
  calls = plan_score_calls(ptrs(big), {10, true});
  check_plan(calls, big, 10);
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].tokens, 52);
  EXPECT_THROW(plan_score_calls(ptrs(big), {0, true}), Error);
}

}  // namespace
}  // namespace bmh::eval
