// lm-eval's metrics and their standard errors (lm_eval/api/metrics.py, lm_eval/api/task.py process_results,
// lm_eval/evaluator_utils.py TaskOutput.calculate_aggregate_metric), with Python's float arithmetic:
//   mean(arr)            sum(arr) / len(arr)
//   sample_stddev(arr)   sqrt(sum((x - mu)**2) / (len - 1));   mean_stderr = sample_stddev / sqrt(len)
//   perplexity(items)    exp(-mean(items))                      (lambada; stderr bootstrapped)
//   weighted_perplexity  exp(-sum(ll) / sum(count));  bits_per_byte = -sum(ll) / sum(bytes) / log(2)
//   bootstrap_stderr     iters // 1000 chunks; chunk i draws 1000 resamples with random.Random(i).choices(xs,
//                        k=len(xs)) (lm-eval's Pool.imap keeps chunk order); the stderr is sample_stddev of all
// Python's sum() is CPython >= 3.12's (Neumaier-compensated for floats, Python/bltinmodule.c); on older
// Pythons lm-eval's sums are plain left-to-right and may differ in the last bits.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace bmh::eval {

double python_sum(const std::vector<double>& xs);
double py_mean(const std::vector<double>& xs);
double sample_stddev(const std::vector<double>& xs);
double mean_stderr(const std::vector<double>& xs);
double perplexity(const std::vector<double>& lls);
// (loglikelihood, count) items: word/byte perplexity and bits per byte.
double weighted_perplexity(const std::vector<std::pair<double, int64_t>>& items);
double bits_per_byte(const std::vector<std::pair<double, int64_t>>& items);

enum class Statistic { Perplexity, Mean };
// lm-eval bootstrap_stderr(f, xs, iters) for f = perplexity or mean; `threads` only splits the chunks.
double bootstrap_stderr(Statistic f, const std::vector<double>& xs, int iters = 100000, int threads = 0);

// numpy.argmax over a float64 vector: the first NaN if any, else the first maximum.
size_t np_argmax(const std::vector<double>& v);

// process_results of a multiple_choice task for one document (lm_eval/api/task.py).
struct ChoiceOutcome {
  size_t pred = 0;        // argmax(lls)
  size_t pred_norm = 0;   // argmax(lls / [len(choice) for choice in choices]), lengths in code points
  double acc = 0, acc_norm = 0;
};
ChoiceOutcome score_multiple_choice(const std::vector<double>& lls, const std::vector<std::string>& choices,
                                    int gold);

// One aggregated metric as results.json shows it: the value and its stderr (NaN stands for lm-eval's "N/A",
// given when there is no stderr function or a single item).
struct MetricValue {
  std::string name;       // "acc", "acc_norm", "perplexity", "word_perplexity", ...
  double value = 0;
  double stderr_ = 0;
  bool has_stderr = false;
  bool higher_is_better = true;
};

}  // namespace bmh::eval
