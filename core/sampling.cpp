#include "core/sampling.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "core/error.h"

namespace bmh {

void check_sampling_options(const SamplingOptions& o) {
  if (!std::isfinite(o.temperature) || o.temperature < 0)
    fail("--temperature ", o.temperature, " must be a finite number >= 0 (0 = greedy)");
  if (o.top_k < 0) fail("--top-k ", o.top_k, " must be >= 0 (0 = no top-k filter)");
  if (!(o.top_p > 0 && o.top_p <= 1)) fail("--top-p ", o.top_p, " must be in (0, 1]");
  if (o.greedy() && (o.top_k != 0 || o.top_p != 1))
    fail("--top-k/--top-p need --temperature > 0 (temperature 0 is greedy, which they would not change)");
}

namespace {
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
}  // namespace

double counter_uniform(uint64_t seed, uint64_t request, uint64_t token) {
  const uint64_t h = splitmix64(splitmix64(splitmix64(seed) ^ request) ^ token);
  return double(h >> 11) * 0x1p-53;
}

int64_t choose_token(const float* logits, int64_t V, const SamplingOptions& o, uint64_t request, uint64_t token) {
  if (V < 1) fail("choose_token: empty logits row");
  if (o.greedy()) return std::max_element(logits, logits + V) - logits;  // first maximum, as torch.argmax
  const double inv_t = 1.0 / o.temperature;
  // Dividing by T > 0 keeps the order of the float logits, so the float logits order the scores.
  const double s_max = double(*std::max_element(logits, logits + V)) * inv_t;
  std::vector<double> p(static_cast<size_t>(V));
  for (int64_t i = 0; i < V; ++i) p[size_t(i)] = std::exp(double(logits[i]) * inv_t - s_max);
  const double u = counter_uniform(o.seed, request, token);
  // Walks `ids` (ascending) and returns the first whose running sum of p exceeds u * (their total).
  auto draw = [&](auto&& each) {
    double total = 0;
    each([&](int64_t i) { total += p[size_t(i)]; return false; });
    const double target = u * total;
    double cum = 0;
    int64_t chosen = -1, last = -1;
    each([&](int64_t i) {
      last = i;
      cum += p[size_t(i)];
      if (cum > target) chosen = i;
      return chosen >= 0;
    });
    return chosen >= 0 ? chosen : last;  // rounding: target at the very top of the mass
  };
  if (o.top_k == 0 && o.top_p == 1)  // no filter: every token, no sort
    return draw([&](auto&& f) {
      for (int64_t i = 0; i < V; ++i)
        if (f(i)) return;
    });
  // (-logit, id) ascending is logit descending, equal logits by id ascending; contiguous keys sort fast.
  std::vector<std::pair<float, int64_t>> order(static_cast<size_t>(V));
  for (int64_t i = 0; i < V; ++i) order[size_t(i)] = {-logits[i], i};
  size_t n = size_t(V);
  if (o.top_k > 0 && o.top_k < V) {
    // HF TopKLogitsWarper removes scores < the k-th largest score: every token tied with the k-th is kept too.
    std::nth_element(order.begin(), order.begin() + (o.top_k - 1), order.end());
    const float kth = order[size_t(o.top_k - 1)].first;  // minus the k-th largest logit
    n = size_t(std::partition(order.begin(), order.end(), [&](const auto& x) { return x.first <= kth; }) -
               order.begin());
  }
  if (o.top_p < 1) {
    double total = 0;
    for (size_t i = 0; i < n; ++i) total += p[size_t(order[i].second)];
    // Sort the first 256 only, which hold a peaked distribution's nucleus; else all of them.
    for (size_t m = std::min<size_t>(n, 256);; m = n) {
      std::partial_sort(order.begin(), order.begin() + m, order.begin() + n);
      double cum = 0;
      size_t j = 0;
      while (j < m && (cum += p[size_t(order[j].second)], ++j, cum < o.top_p * total)) {}
      if (cum >= o.top_p * total || m == n) {
        n = j;
        break;
      }
    }
  }
  std::vector<int64_t> kept(n);
  for (size_t i = 0; i < n; ++i) kept[i] = order[i].second;
  std::sort(kept.begin(), kept.end());
  return draw([&](auto&& f) {
    for (int64_t i : kept)
      if (f(i)) return;
  });
}

}  // namespace bmh
