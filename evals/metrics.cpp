#include "evals/metrics.h"

#include <cmath>
#include <thread>

#include "core/error.h"
#include "evals/cpython_random.h"
#include "evals/task_python_text.h"

namespace bmh::eval {

// Python/bltinmodule.c builtin_sum_impl (3.12+): the int start 0 plus the first float is that float, then
// Neumaier's compensated loop; the compensation is added at the end when it is non-zero and finite.
double python_sum(const std::vector<double>& xs) {
  double s = 0.0, c = 0.0;
  for (double x : xs) {
    double t = s + x;
    if (std::fabs(s) >= std::fabs(x)) {
      c += (s - t) + x;
    } else {
      c += (x - t) + s;
    }
    s = t;
  }
  if (c != 0.0 && std::isfinite(c)) s += c;
  return s;
}

double py_mean(const std::vector<double>& xs) {
  if (xs.empty()) fail("mean of no items");
  return python_sum(xs) / double(xs.size());
}

double sample_stddev(const std::vector<double>& xs) {
  if (xs.size() < 2) fail("sample stddev of ", xs.size(), " items");
  double mu = py_mean(xs);
  std::vector<double> sq(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) sq[i] = (xs[i] - mu) * (xs[i] - mu);
  return std::sqrt(python_sum(sq) / double(xs.size() - 1));
}

double mean_stderr(const std::vector<double>& xs) { return sample_stddev(xs) / std::sqrt(double(xs.size())); }

double perplexity(const std::vector<double>& lls) { return std::exp(-py_mean(lls)); }

static double weighted_mean(const std::vector<std::pair<double, int64_t>>& items) {
  std::vector<double> a;
  int64_t b = 0;  // a Python int sum: exact
  for (const auto& [ll, n] : items) {
    a.push_back(ll);
    b += n;
  }
  if (b == 0) fail("weighted mean with a zero total count");
  return python_sum(a) / double(b);
}

double weighted_perplexity(const std::vector<std::pair<double, int64_t>>& items) {
  return std::exp(-weighted_mean(items));
}

double bits_per_byte(const std::vector<std::pair<double, int64_t>>& items) {
  return -weighted_mean(items) / std::log(2.0);
}

double bootstrap_stderr(Statistic f, const std::vector<double>& xs, int iters, int threads) {
  const int chunk = std::min(1000, iters);
  const int n_chunks = iters / chunk;
  std::vector<double> res(size_t(n_chunks) * size_t(chunk));
  auto run_chunk = [&](int i) {
    CPythonRandom rnd{uint64_t(i)};
    std::vector<double> sample(xs.size());
    for (int r = 0; r < chunk; ++r) {
      for (double& s : sample) s = xs[rnd.choice_index(xs.size())];
      double m = py_mean(sample);
      res[size_t(i) * size_t(chunk) + size_t(r)] = f == Statistic::Perplexity ? std::exp(-m) : m;
    }
  };
  if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
  threads = std::min(threads, n_chunks);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int i = t; i < n_chunks; i += threads) run_chunk(i);
    });
  for (auto& th : pool) th.join();
  return sample_stddev(res);
}

size_t np_argmax(const std::vector<double>& v) {
  if (v.empty()) fail("argmax of an empty sequence");
  size_t best = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (std::isnan(v[i])) return i;
    if (v[i] > v[best]) best = i;
  }
  return best;
}

ChoiceOutcome score_multiple_choice(const std::vector<double>& lls, const std::vector<std::string>& choices,
                                    int gold) {
  if (lls.size() != choices.size()) fail("score_multiple_choice: ", lls.size(), " lls for ", choices.size(), " choices");
  ChoiceOutcome o;
  o.pred = np_argmax(lls);
  std::vector<double> norm(lls.size());
  for (size_t i = 0; i < lls.size(); ++i) norm[i] = lls[i] / double(py_len(choices[i]));
  o.pred_norm = np_argmax(norm);
  o.acc = int(o.pred) == gold ? 1.0 : 0.0;
  o.acc_norm = int(o.pred_norm) == gold ? 1.0 : 0.0;
  return o;
}

}  // namespace bmh::eval
