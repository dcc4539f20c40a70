#include "core/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
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
  if (o.greedy() || o.top_k == 1) return std::max_element(logits, logits + V) - logits;  // first maximum
  const double inv_t = 1.0 / o.temperature;
  std::vector<int64_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), int64_t(0));
  auto before = [&](int64_t a, int64_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  const int64_t k = o.top_k > 0 ? std::min<int64_t>(o.top_k, V) : V;
  std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
  order.resize(size_t(k));
  // Dividing by T > 0 keeps the order of the float logits, so sorting them first is the same as sorting scores.
  const double s_max = double(logits[order[0]]) * inv_t;
  std::vector<double> p(order.size());
  double total = 0;
  for (size_t i = 0; i < order.size(); ++i) total += p[i] = std::exp(double(logits[order[i]]) * inv_t - s_max);
  size_t n = p.size();
  if (o.top_p < 1) {
    double cum = 0;
    for (n = 0; n < p.size();) {
      cum += p[n++];
      if (cum >= o.top_p * total) break;
    }
    total = cum;
  }
  const double target = counter_uniform(o.seed, request, token) * total;
  double cum = 0;
  for (size_t i = 0; i < n; ++i) {
    cum += p[i];
    if (cum > target) return order[i];
  }
  return order[n - 1];  // rounding: target at the very top of the kept mass
}

}  // namespace bmh
