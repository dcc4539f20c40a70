// Latency and memory measurements: see evals/latency.h for the method.
#include "evals/latency.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <malloc.h>
#include <sstream>

#include "core/error.h"

#ifdef BMH_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace bmh {

namespace {

double status_kib(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::string(key).size();
  while (std::getline(in, line))
    if (line.compare(0, n, key) == 0) return std::stod(line.substr(n + 1)) * 1024.0;
  return 0;
}

// Bytes in use on the current device, or -1 where there is none (or the model is not on it).
double device_used(const std::string& backend) {
#ifdef BMH_HAVE_CUDA
  if (backend.rfind("cuda", 0) == 0) {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) return double(total_b - free_b);
  }
#else
  (void)backend;
#endif
  return -1;
}

Tensor token_ids(int64_t B, int64_t T, int vocab, uint64_t seed) {
  std::vector<int64_t> v(size_t(B * T));
  uint64_t s = seed;
  for (auto& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;  // LCG; the top bits are well mixed
    x = int64_t((s >> 33) % uint64_t(vocab));
  }
  return Tensor::from_i64(v, {B, T});
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::string fmt(const char* f, double a, double b) {
  char buf[128];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

}  // namespace

double current_rss_bytes() { return status_kib("VmRSS:"); }
double peak_rss_bytes() { return status_kib("VmHWM:"); }
bool reset_peak_rss() {
  malloc_trim(0);  // hand freed heap back first, so the mark restarts from the memory really in use
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return bool(f);
}

SampleSummary summarize(std::vector<double> s) {
  SampleSummary r;
  if (s.empty()) return r;
  std::sort(s.begin(), s.end());
  auto q = [&](double p) {
    const double x = p * double(s.size() - 1);
    const size_t i = size_t(x);
    const double f = x - double(i);
    return i + 1 < s.size() ? s[i] * (1 - f) + s[i + 1] * f : s[i];
  };
  r.median = q(0.5);
  r.q25 = q(0.25);
  r.q75 = q(0.75);
  r.min = s.front();
  r.max = s.back();
  return r;
}

LatencyResult measure_latency(LanguageModel& model, const LatencyOptions& opt) {
  if (opt.prompt_lengths.empty() && opt.decode_tokens <= 0) fail("latency: nothing to measure");
  if (opt.batch < 1 || opt.repeats < 1 || opt.warmup < 0 || opt.decode_prompt < 1 || opt.decode_tokens < 0)
    fail("latency: batch and repeats must be >= 1, warmup and decode_tokens >= 0, decode_prompt >= 1 (got batch ",
         opt.batch, ", repeats ", opt.repeats, ", warmup ", opt.warmup, ", decode_prompt ", opt.decode_prompt,
         ", decode_tokens ", opt.decode_tokens, ")");
  for (int L : opt.prompt_lengths)
    if (L < 1) fail("latency: prompt length ", L, " must be >= 1");
  const int V = model.config().vocab_size;
  LatencyResult r;
  r.options = opt;
  r.options.progress = nullptr;
  r.backend = model.describe();
  r.rss_before = current_rss_bytes();
  r.peak_reset = reset_peak_rss();
  auto say = [&](const std::string& s) {
    if (opt.progress) opt.progress(s);
  };

  for (int L : opt.prompt_lengths) {
    Tensor ids = token_ids(opt.batch, L, V, opt.seed + uint64_t(L));
    reset_peak_rss();
    const double base = current_rss_bytes();
    std::vector<double> ms;
    for (int i = 0; i < opt.warmup + opt.repeats; ++i) {
      auto dec = model.decoder(opt.batch);
      auto t0 = std::chrono::steady_clock::now();
      Tensor logits = dec->prefill(ids);
      const double t = ms_since(t0);
      if (logits.rank() != 2 || logits.dim(0) != opt.batch) fail("latency: prefill returned ", logits.describe());
      if (i >= opt.warmup) ms.push_back(t);
    }
    r.prompt_lengths.push_back(L);
    r.prefill.push_back(summarize(ms));
    r.prefill_ms.push_back(std::move(ms));
    r.prefill_peak_rss.push_back(peak_rss_bytes());
    r.prefill_extra_rss.push_back(std::max(0.0, r.prefill_peak_rss.back() - base));
    const double dev = device_used(r.backend);
    if (dev >= 0) r.prefill_device_used.push_back(dev);
    say(fmt("prefill %4.0f tokens: %.2f ms (median)", L, r.prefill.back().median));
  }

  if (opt.decode_tokens > 0) {
    const int S = opt.decode_tokens;
    r.decode_ms.assign(S, {});
    Tensor prompt = token_ids(opt.batch, opt.decode_prompt, V, opt.seed);
    reset_peak_rss();
    const double base = current_rss_bytes();
    for (int i = 0; i < opt.warmup + opt.repeats; ++i) {
      auto dec = model.decoder(opt.batch);
      std::vector<int64_t> next = argmax_rows(dec->prefill(prompt));
      for (int s = 0; s < S; ++s) {
        auto t0 = std::chrono::steady_clock::now();
        Tensor logits = dec->step(next);
        const double t = ms_since(t0);
        next = argmax_rows(logits);
        if (i >= opt.warmup) r.decode_ms[s].push_back(t);
      }
    }
    std::vector<double> all;
    for (int s = 0; s < S; ++s) {
      r.decode_positions.push_back(opt.decode_prompt + s);
      r.decode.push_back(summarize(r.decode_ms[s]));
      all.insert(all.end(), r.decode_ms[s].begin(), r.decode_ms[s].end());
    }
    r.decode_all = summarize(all);
    r.decode_peak_rss = peak_rss_bytes();
    r.decode_extra_rss = std::max(0.0, r.decode_peak_rss - base);
    r.decode_device_used = device_used(r.backend);
    say(fmt("decode %3.0f steps: %.3f ms/token (median)", S, r.decode_all.median));
  }
  return r;
}

namespace {
void write_summaries(h5::Group& g, const std::string& prefix, const std::vector<SampleSummary>& s,
                     const std::string& dim, const std::string& what) {
  std::vector<double> med, q25, q75, mn, mx;
  for (const auto& x : s) {
    med.push_back(x.median);
    q25.push_back(x.q25);
    q75.push_back(x.q75);
    mn.push_back(x.min);
    mx.push_back(x.max);
  }
  g.write(prefix + "_median", med, {what + ", median over repeats", "ms", {dim}});
  g.write(prefix + "_q25", q25, {what + ", 25th percentile", "ms", {dim}});
  g.write(prefix + "_q75", q75, {what + ", 75th percentile", "ms", {dim}});
  g.write(prefix + "_min", mn, {what + ", minimum", "ms", {dim}});
  g.write(prefix + "_max", mx, {what + ", maximum", "ms", {dim}});
}
std::vector<double> flatten(const std::vector<std::vector<double>>& v) {
  std::vector<double> out;
  for (const auto& r : v) out.insert(out.end(), r.begin(), r.end());
  return out;
}
}  // namespace

void write_latency_h5(const LatencyResult& r, h5::Group g) {
  const auto& o = r.options;
  g.attr("description", "prefill and decode latency through the model's Decoder (evals/latency.h: method)");
  g.attr("backend", r.backend);
  g.attr("batch", o.batch);
  g.attr("warmup", o.warmup);
  g.attr("repeats", o.repeats);
  g.attr("decode_prompt", o.decode_prompt);
  g.attr("seed", int64_t(o.seed));
  g.attr("rss_before_bytes", r.rss_before);
  g.attr("peak_reset", int64_t(r.peak_reset));
  const int64_t P = int64_t(r.prompt_lengths.size()), S = int64_t(r.decode_positions.size()), R = o.repeats;
  std::vector<int64_t> lengths(r.prompt_lengths.begin(), r.prompt_lengths.end());
  g.write("prompt_lengths", lengths, {"prompt length of each prefill measurement", "tokens", {"length"}});
  g.write("prefill_ms", flatten(r.prefill_ms), {P, R}, {"prefill time of each timed repeat", "ms", {"length", "repeat"}});
  write_summaries(g, "prefill", r.prefill, "length", "prefill time");
  g.write("prefill_peak_rss", r.prefill_peak_rss,
          {"host resident-set high-water mark during the prefills of this length", "bytes", {"length"}});
  g.write("prefill_extra_rss", r.prefill_extra_rss,
          {"that high-water mark minus the resident set just before: memory the prefills added", "bytes", {"length"}});
  if (!r.prefill_device_used.empty())
    g.write("prefill_device_used", r.prefill_device_used, {"device memory in use after the prefills", "bytes", {"length"}});
  g.write("decode_positions", r.decode_positions, {"position of the token fed at each decode step", "tokens", {"step"}});
  g.write("decode_ms", flatten(r.decode_ms), {S, R}, {"time of each decode step, each timed repeat", "ms", {"step", "repeat"}});
  write_summaries(g, "decode", r.decode, "step", "decode step time");
  g.attr("decode_ms_per_token_median", r.decode_all.median);
  g.attr("decode_ms_per_token_q25", r.decode_all.q25);
  g.attr("decode_ms_per_token_q75", r.decode_all.q75);
  g.attr("decode_peak_rss_bytes", r.decode_peak_rss);
  g.attr("decode_extra_rss_bytes", r.decode_extra_rss);
  if (r.decode_device_used >= 0) g.attr("decode_device_used_bytes", r.decode_device_used);
}

nlohmann::json latency_summary_json(const LatencyResult& r) {
  nlohmann::json j;
  j["backend"] = r.backend;
  j["batch"] = r.options.batch;
  j["repeats"] = r.options.repeats;
  j["warmup"] = r.options.warmup;
  auto& p = j["prefill"] = nlohmann::json::array();
  for (size_t i = 0; i < r.prompt_lengths.size(); ++i)
    p.push_back({{"length", r.prompt_lengths[i]},
                 {"ms_median", r.prefill[i].median},
                 {"ms_q25", r.prefill[i].q25},
                 {"ms_q75", r.prefill[i].q75},
                 {"peak_rss_bytes", r.prefill_peak_rss[i]},
                 {"extra_rss_bytes", r.prefill_extra_rss[i]}});
  j["decode_ms_per_token"] = {{"median", r.decode_all.median}, {"q25", r.decode_all.q25}, {"q75", r.decode_all.q75}};
  j["decode_tokens"] = r.options.decode_tokens;
  j["decode_prompt"] = r.options.decode_prompt;
  j["decode_peak_rss_bytes"] = r.decode_peak_rss;
  j["decode_extra_rss_bytes"] = r.decode_extra_rss;
  if (r.decode_device_used >= 0) j["decode_device_used_bytes"] = r.decode_device_used;
  j["peak_reset"] = r.peak_reset;
  return j;
}

}  // namespace bmh
