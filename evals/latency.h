// Inference latency and memory of a LanguageModel on its own backend, through its Decoder (the path generation
// uses): prefill time vs prompt length, decode time per token vs position, and peak memory.
//
// Method: token ids are a fixed pseudo-random sequence (seeded; the time of these models does not depend on the
// ids). Every measurement runs `warmup` times untimed, then `repeats` times timed with a steady clock; each
// prefill gets a fresh Decoder (the Decoder's creation is not timed). Decode: after a prefill of
// `decode_prompt` tokens, `decode_tokens` steps each timed alone, feeding back the greedy token; position p is
// the 0-based index of the token fed in. Results keep every sample and report the median and the interquartile
// range (25th-75th percentile, linear interpolation). Backends return logits on the host, so each call is
// complete when it returns (a device backend synchronizes inside).
//
// Memory: host peak RSS (VmHWM of /proc/self/status, reset through /proc/self/clear_refs before each
// measurement where the kernel allows it, after malloc_trim returns freed heap to the system; `peak_reset` says
// whether it could). The mark includes the weights and whatever else the process holds, so the "extra" arrays
// give the mark minus the resident set measured right before: the memory the measured calls added. And the backend's device memory
// in use where a CUDA build has a device (cudaMemGetInfo: total - free, after the measurement).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/language_model.h"
#include "evals/h5_writer.h"

namespace bmh {

struct LatencyOptions {
  std::vector<int> prompt_lengths = {16, 64, 256};
  int batch = 1;
  int decode_prompt = 16;
  int decode_tokens = 64;
  int warmup = 1;
  int repeats = 3;
  uint64_t seed = 1234;
  // Called after each finished measurement with a short description ("prefill 64: 12.3 ms"); may be empty.
  std::function<void(const std::string&)> progress;
};

struct SampleSummary {
  double median = 0, q25 = 0, q75 = 0, min = 0, max = 0;
};
SampleSummary summarize(std::vector<double> samples);  // quantiles with linear interpolation (numpy default)

struct LatencyResult {
  LatencyOptions options;
  std::string backend;                        // model.describe()
  std::vector<int> prompt_lengths;            // [P]
  std::vector<std::vector<double>> prefill_ms;  // [P][repeats]
  std::vector<SampleSummary> prefill;         // [P]
  std::vector<double> prefill_peak_rss;       // [P] bytes, host high-water mark during those prefills
  std::vector<double> prefill_extra_rss;      // [P] bytes, that mark minus the resident set just before
  std::vector<double> prefill_device_used;    // [P] bytes in use on the device after; empty without a device
  std::vector<int64_t> decode_positions;      // [S] position of each decode step
  std::vector<std::vector<double>> decode_ms; // [S][repeats]
  std::vector<SampleSummary> decode;          // [S]
  SampleSummary decode_all;                   // over every decode sample
  double decode_peak_rss = 0;
  double decode_extra_rss = 0;
  double decode_device_used = -1;             // -1: no device
  double rss_before = 0;                      // resident bytes before anything ran (weights loaded)
  bool peak_reset = false;                    // whether the high-water mark could be reset per measurement
};

LatencyResult measure_latency(LanguageModel& model, const LatencyOptions& opt);

void write_latency_h5(const LatencyResult& r, h5::Group g);
nlohmann::json latency_summary_json(const LatencyResult& r);

// Host memory of this process in bytes: current resident set and its high-water mark.
double current_rss_bytes();
double peak_rss_bytes();
bool reset_peak_rss();  // false where /proc/self/clear_refs is not writable

}  // namespace bmh
