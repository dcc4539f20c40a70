#include "evals/score_plan.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace bmh::eval {

namespace {

int common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = std::min(a.size(), b.size()), i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return int(i);
}

// The longest prefix a request allows: its scored positions start at n-1-C, whose logits the prefix's last row
// may give, so prefix <= n - C.
int prefix_cap(const ScoreRequest& r) { return int(r.tokens.size()) - r.n_continuation; }

int64_t whole_tokens(const ScoreRequest& r) { return int64_t(r.tokens.size()) - 1; }

int64_t group_tokens(const PlannedGroup& g, const std::vector<const ScoreRequest*>& reqs) {
  int64_t t = g.prefix;
  for (size_t m : g.members) t += whole_tokens(*reqs[m]) - g.prefix;
  return t;
}

PlannedGroup finish(PlannedGroup g, const std::vector<const ScoreRequest*>& reqs) {
  if (g.members.size() < 2 || g.prefix < kMinSharedPrefix) g.prefix = 0;
  g.tokens = group_tokens(g, reqs);
  return g;
}

// Splits a group whose tokens exceed the budget into parts that each rerun the prefix.
void split_to_budget(PlannedGroup g, int64_t budget, const std::vector<const ScoreRequest*>& reqs,
                     std::vector<PlannedGroup>& out) {
  if (g.tokens <= budget || g.members.size() < 2) {
    out.push_back(std::move(g));
    return;
  }
  PlannedGroup part;
  part.prefix = g.prefix;
  for (size_t m : g.members) {
    PlannedGroup grown = part;
    grown.members.push_back(m);
    if (!part.members.empty() && group_tokens(grown, reqs) > budget) {
      out.push_back(finish(std::move(part), reqs));
      part = PlannedGroup{};
      part.prefix = g.prefix;
      part.members.push_back(m);
    } else {
      part = std::move(grown);
    }
  }
  out.push_back(finish(std::move(part), reqs));
}

}  // namespace

std::vector<PlannedCall> plan_score_calls(const std::vector<const ScoreRequest*>& reqs, const PlanOptions& opt) {
  if (opt.token_budget < 1) fail("--token-budget must be at least 1 (got ", opt.token_budget, ")");
  std::vector<size_t> order(reqs.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (reqs[a]->tokens != reqs[b]->tokens) return reqs[a]->tokens < reqs[b]->tokens;
    return reqs[a]->n_continuation < reqs[b]->n_continuation;
  });
  // 1. Neighbours in token order share the longest prefixes.
  std::vector<PlannedGroup> groups;
  PlannedGroup cur;
  for (size_t i : order) {
    if (!cur.members.empty() && opt.share_prefixes) {
      const size_t m = cur.members.size();
      int p = std::min({common_prefix(reqs[cur.members.back()]->tokens, reqs[i]->tokens), prefix_cap(*reqs[i]),
                        m == 1 ? prefix_cap(*reqs[cur.members[0]]) : cur.prefix});
      // Grow while the tokens saved do not shrink: m+1 members save m·p, m members saved (m-1)·prefix.
      if (p >= kMinSharedPrefix && (m == 1 || int64_t(m) * p >= int64_t(m - 1) * cur.prefix)) {
        cur.members.push_back(i);
        cur.prefix = p;
        continue;
      }
    }
    if (!cur.members.empty()) groups.push_back(finish(std::move(cur), reqs));
    cur = PlannedGroup{};
    cur.members.push_back(i);
  }
  if (!cur.members.empty()) groups.push_back(finish(std::move(cur), reqs));
  // 2. Parts within the budget.
  std::vector<PlannedGroup> parts;
  for (PlannedGroup& g : groups) split_to_budget(std::move(g), opt.token_budget, reqs, parts);
  // 3. Longest first (ties keep token order), next-fit into calls.
  std::stable_sort(parts.begin(), parts.end(),
                   [](const PlannedGroup& a, const PlannedGroup& b) { return a.tokens > b.tokens; });
  std::vector<PlannedCall> calls;
  for (PlannedGroup& g : parts) {
    if (calls.empty() || (calls.back().tokens + g.tokens > opt.token_budget && !calls.back().groups.empty()))
      calls.emplace_back();
    calls.back().tokens += g.tokens;
    calls.back().requests += g.members.size();
    calls.back().groups.push_back(std::move(g));
  }
  return calls;
}

PlanTokens plan_tokens(const std::vector<PlannedCall>& calls, const std::vector<const ScoreRequest*>& reqs) {
  PlanTokens t;
  for (const PlannedCall& c : calls) {
    t.computed += c.tokens;
    for (const PlannedGroup& g : c.groups)
      for (size_t m : g.members) t.whole += whole_tokens(*reqs[m]);
  }
  return t;
}

}  // namespace bmh::eval
