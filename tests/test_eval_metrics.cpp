// CPython's random (seeding, random(), choices), Python's sum(), and lm-eval's metric math
// (lm_eval/api/metrics.py, lm_eval/api/task.py process_results) on hand-made cases. Expected values marked
// "CPython 3.12.1" were printed by that interpreter running the lm-eval functions named beside them.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "evals/cpython_random.h"
#include "evals/metrics.h"

using namespace bmh::eval;

TEST(CPythonRandom, KnownSeeds) {
  EXPECT_EQ(CPythonRandom(0).random(), 0.8444218515250481);
  EXPECT_EQ(CPythonRandom(1).random(), 0.13436424411240122);
  CPythonRandom r(42);  // CPython 3.12.1: [random.Random(42).random() for _ in range(3)]
  EXPECT_EQ(r.random(), 0.6394267984578837);
  EXPECT_EQ(r.random(), 0.025010755222666936);
  EXPECT_EQ(r.random(), 0.27502931836911926);
  // Seeds of two 32-bit words (init_by_array with a key of length 2).
  EXPECT_EQ(CPythonRandom(uint64_t(1) << 32 | 7).random(), 0.22550888929893187);
  EXPECT_EQ(CPythonRandom((uint64_t(1) << 63) + 12345).random(), 0.30477471939133105);
}

TEST(CPythonRandom, Choices) {
  // CPython 3.12.1: random.Random(123).choices(range(10), k=12)
  EXPECT_EQ(CPythonRandom(123).choices(10, 12), (std::vector<size_t>{0, 0, 4, 1, 9, 0, 5, 3, 8, 1, 3, 3}));
  // random.Random(5).choices(range(5153), k=6): the lambada_openai population size
  EXPECT_EQ(CPythonRandom(5).choices(5153, 6), (std::vector<size_t>{3209, 3822, 4097, 4856, 3812, 4752}));
}

TEST(PythonSum, NeumaierLikeCPython312) {
  EXPECT_EQ(python_sum(std::vector<double>(10, 0.1)), 1.0);  // CPython 3.12: 1.0 (3.11: 0.9999999999999999)
  EXPECT_EQ(python_sum({0.1, 0.2, 0.3, 1e16, 1.0, -1e16}), 1.6);  // CPython 3.12: 1.6 (plain: 0.0)
  EXPECT_EQ(python_sum({}), 0.0);
  EXPECT_TRUE(std::isinf(python_sum({1e308, 1e308})));  // overflow stays inf, not NaN
}

TEST(Metrics, MeanAndStderr) {
  std::vector<double> acc = {1, 0, 1, 1, 0, 0, 1};
  EXPECT_EQ(py_mean(acc), 0.5714285714285714);        // CPython 3.12.1 mean()
  EXPECT_EQ(mean_stderr(acc), 0.20203050891044214);   // CPython 3.12.1 mean_stderr()
  // By hand: mean .75, squared deviations 3 * .0625 + .5625 = .75, / 3 = .25, sd .5, / sqrt(4) = .25.
  EXPECT_DOUBLE_EQ(mean_stderr({1, 0, 1, 1}), 0.25);
  EXPECT_THROW(sample_stddev({1.0}), bmh::Error);
}

TEST(Metrics, PerplexityAndBootstrap) {
  std::vector<double> xs = {-1.5, -2.0, -0.5, -3.25, -1.0, -7.125, -0.03125};
  EXPECT_EQ(perplexity(xs), 9.033075145615104);  // exp(-mean)
  // CPython 3.12.1, bootstrap_stderr(perplexity, xs, iters=100000) (100 chunks of 1000, Random(i) per chunk).
  EXPECT_EQ(bootstrap_stderr(Statistic::Perplexity, xs, 100000), 17.389113487097728);
  // Thread count only splits the work.
  EXPECT_EQ(bootstrap_stderr(Statistic::Perplexity, xs, 100000, 1), 17.389113487097728);
  std::vector<double> ys = {-2.3025850929940455, -0.6931471805599453, -12.5, -4.75, -0.1, -3.3, -9.9, -1.7};
  EXPECT_EQ(bootstrap_stderr(Statistic::Perplexity, ys, 3000, 3), 544.9485819996705);
}

TEST(Metrics, WeightedPerplexity) {
  // weighted_perplexity = exp(-sum(ll) / sum(n)); bits_per_byte = -sum(ll) / sum(bytes) / log(2).
  std::vector<std::pair<double, int64_t>> items = {{-10.0, 4}, {-6.0, 4}};
  EXPECT_DOUBLE_EQ(weighted_perplexity(items), std::exp(2.0));
  EXPECT_DOUBLE_EQ(bits_per_byte(items), 2.0 / std::log(2.0));
}

TEST(Metrics, ArgmaxLikeNumpy) {
  EXPECT_EQ(np_argmax({-3, -1, -1, -2}), 1u);  // first maximum
  double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(np_argmax({-3, nan, 5, nan}), 1u);  // numpy: the first NaN wins
}

TEST(Metrics, MultipleChoiceAccNormDividesByCharacters) {
  // lls / len(choice): "abcd" has 4 characters, "éé" 2 characters (4 bytes). By characters -8/4 = -2 beats
  // -5/2 = -2.5; by bytes the second (-1.25) would win.
  ChoiceOutcome o = score_multiple_choice({-8, -5}, {"abcd", "\xc3\xa9\xc3\xa9"}, 0);
  EXPECT_EQ(o.pred, 1u);
  EXPECT_EQ(o.pred_norm, 0u);
  EXPECT_EQ(o.acc, 0.0);
  EXPECT_EQ(o.acc_norm, 1.0);
  // Ties go to the first choice, for acc and acc_norm alike.
  ChoiceOutcome t = score_multiple_choice({-4, -4, -6}, {"ab", "ab", "abc"}, 0);
  EXPECT_EQ(t.pred, 0u);
  EXPECT_EQ(t.pred_norm, 0u);
  EXPECT_EQ(t.acc, 1.0);
}
