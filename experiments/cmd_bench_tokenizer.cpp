// bmh bench-tokenizer: encode throughput of the GPT-NeoX-20B tokenizer (a benchmark, not a test).
//   bmh bench-tokenizer [--input data/text/wiki.test.raw] [--threads N] [--repeats R] [--out results/tokenizer/bench.json]
// Measures, in MB of UTF-8 input per second:
//   whole file : the file as one string on one thread (what HF's tokenizer.encode(text) does);
//   lines      : the file's lines (each with its "\n"), on 1 worker thread and on N (default: all hardware
//                threads), each taking a contiguous block of lines; the workers persist across repetitions.
// "cold" runs start from empty pre-token caches; "warm" runs (best of R) find every pre-token in their thread's cache.
// The ids of the N-thread run are checked against the 1-thread run.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/tokenizer.h"
#include "experiments/command.h"

namespace bmh {
namespace {

struct BenchOptions {
  std::string tokenizer, input, out;
  int threads = 0, repeats = 5;
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

// Persistent worker threads, so that a "warm" run finds the per-thread pre-token caches its threads filled before.
class Workers {
 public:
  explicit Workers(int n) : start_(n + 1), done_(n + 1) {
    for (int k = 0; k < n; ++k) threads_.emplace_back([this, k] { loop(k); });
  }
  ~Workers() {
    stop_ = true;
    start_.arrive_and_wait();
    for (auto& t : threads_) t.join();
  }
  int size() const { return int(threads_.size()); }
  // Runs job(k) on every worker k and returns when all are done.
  void run(const std::function<void(int)>& job) {
    job_ = &job;
    start_.arrive_and_wait();
    done_.arrive_and_wait();
  }

 private:
  void loop(int k) {
    for (;;) {
      start_.arrive_and_wait();
      if (stop_) return;
      (*job_)(k);
      done_.arrive_and_wait();
    }
  }
  std::barrier<> start_, done_;
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

// Every worker encodes a contiguous block of lines of about equal bytes; returns seconds.
double encode_lines(const Tokenizer& tok, const std::vector<std::string>& lines, Workers& workers,
                    std::vector<std::vector<int32_t>>& ids) {
  const size_t threads = size_t(workers.size());
  ids.assign(lines.size(), {});
  std::vector<size_t> bounds(threads + 1, lines.size());
  size_t total = 0;
  for (const auto& l : lines) total += l.size();
  size_t acc = 0, t = 1;
  bounds[0] = 0;
  for (size_t i = 0; i < lines.size() && t < threads; ++i) {
    acc += lines[i].size();
    if (acc >= total * t / threads) bounds[t++] = i + 1;
  }
  std::vector<std::string> errors(threads);
  const std::function<void(int)> job = [&](int k) {
    try {
      for (size_t i = bounds[size_t(k)]; i < bounds[size_t(k) + 1]; ++i) ids[i] = tok.encode(lines[i]);
    } catch (const std::exception& e) {
      errors[size_t(k)] = e.what();
    }
  };
  const auto start = Clock::now();
  workers.run(job);
  const double s = seconds_since(start);
  for (const auto& e : errors)
    if (!e.empty()) fail("bench-tokenizer: ", e);
  return s;
}

void run_bench(const BenchOptions& o, const std::string& command_line) {
  const std::string load_before = load_average();
  const std::string input = o.input.empty() ? std::string(BMH_SOURCE_DIR) + "/data/text/wiki.test.raw" : o.input;
  std::ifstream f(input, std::ios::binary);
  if (!f) fail("bench-tokenizer: cannot open ", input);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  const double mb = double(text.size()) / 1e6;
  const int threads = o.threads > 0 ? o.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  const int repeats = std::max(1, o.repeats);

  const std::string tok_path = o.tokenizer.empty() ? default_tokenizer_path() : o.tokenizer;
  auto t0 = Clock::now();
  const Tokenizer tok = Tokenizer::load(tok_path);
  const double load_s = seconds_since(t0);

  // whole file, one thread
  tok.clear_cache();
  t0 = Clock::now();
  const std::vector<int32_t> whole = tok.encode(text);
  const double whole_cold = seconds_since(t0);
  const size_t cached = tok.cache_entries();
  double whole_warm = 1e30;
  for (int r = 0; r < repeats; ++r) {
    t0 = Clock::now();
    const auto again = tok.encode(text);
    whole_warm = std::min(whole_warm, seconds_since(t0));
    if (again != whole) fail("bench-tokenizer: a warm encode differs from the cold one");
  }

  // lines
  std::vector<std::string> lines;
  for (size_t i = 0; i < text.size();) {
    const size_t nl = text.find('\n', i);
    const size_t end = nl == std::string::npos ? text.size() : nl + 1;
    lines.push_back(text.substr(i, end - i));
    i = end;
  }
  std::vector<std::vector<int32_t>> ids1, idsn;
  auto best = [&](int nthreads, std::vector<std::vector<int32_t>>& ids, double* cold) {
    Workers workers(nthreads);
    tok.clear_cache();
    *cold = encode_lines(tok, lines, workers, ids);
    double warm = 1e30;
    for (int r = 0; r < repeats; ++r) warm = std::min(warm, encode_lines(tok, lines, workers, ids));
    return warm;
  };
  double lines1_cold = 0, linesn_cold = 0;
  const double lines1_warm = best(1, ids1, &lines1_cold);
  const double linesn_warm = best(threads, idsn, &linesn_cold);
  if (ids1 != idsn) fail("bench-tokenizer: ", threads, "-thread ids differ from 1-thread ids");
  size_t line_tokens = 0;
  for (const auto& v : ids1) line_tokens += v.size();

  auto rate = [&](double s) { return mb / s; };
  nlohmann::json j;
  j["command"] = command_line;
  j["machine"] = {{"cpu", cpu_model()}, {"hardware_threads", std::thread::hardware_concurrency()},
                  {"compiler", __VERSION__}, {"load_average_1_5_15_min_at_start", load_before}};
  j["input"] = {{"file", input}, {"bytes", text.size()}, {"lines", lines.size()}};
  j["tokenizer"] = {{"file", tok_path}, {"load_seconds", load_s}, {"cache_entries_after_file", cached}};
  j["whole_file_1_thread"] = {{"tokens", whole.size()}, {"cold_MB_per_s", rate(whole_cold)},
                              {"warm_MB_per_s", rate(whole_warm)}, {"warm_tokens_per_s", double(whole.size()) / whole_warm}};
  j["lines_1_thread"] = {{"tokens", line_tokens}, {"cold_MB_per_s", rate(lines1_cold)}, {"warm_MB_per_s", rate(lines1_warm)}};
  j["lines_all_threads"] = {{"threads", threads}, {"cold_MB_per_s", rate(linesn_cold)}, {"warm_MB_per_s", rate(linesn_warm)},
                            {"warm_MB_per_s_per_thread", rate(linesn_warm) / threads},
                            {"ids_equal_to_1_thread", true}};
  j["repeats"] = repeats;
  std::printf("tokenizer load: %.3f s (%s)\n", load_s, tok_path.c_str());
  std::printf("input: %s, %.2f MB, %zu lines\n", input.c_str(), mb, lines.size());
  std::printf("whole file, 1 thread : cold %7.2f MB/s, warm %7.2f MB/s (%zu tokens)\n", rate(whole_cold), rate(whole_warm),
              whole.size());
  std::printf("lines,      1 thread : cold %7.2f MB/s, warm %7.2f MB/s\n", rate(lines1_cold), rate(lines1_warm));
  std::printf("lines, %3d threads   : cold %7.2f MB/s, warm %7.2f MB/s (%.2f MB/s per thread)\n", threads,
              rate(linesn_cold), rate(linesn_warm), rate(linesn_warm) / threads);
  if (!o.out.empty()) {
    std::ofstream out(o.out);
    if (!out) fail("bench-tokenizer: cannot write ", o.out);
    out << j.dump(2) << '\n';
    std::printf("wrote %s\n", o.out.c_str());
  }
}

void add_bench_tokenizer_command(CLI::App& app) {
  auto opts = std::make_shared<BenchOptions>();
  CLI::App* c = app.add_subcommand("bench-tokenizer", "Benchmark tokenizer encode throughput (MB/s, 1 thread and all)");
  c->add_option("--tokenizer", opts->tokenizer, "tokenizer.json (default: the bundled gpt-neox-20b.json)");
  c->add_option("--input", opts->input, "UTF-8 text file (default: data/text/wiki.test.raw)");
  c->add_option("--threads", opts->threads, "threads for the parallel run (default: all hardware threads)");
  c->add_option("--repeats", opts->repeats, "warm repetitions; the best is reported (default 5)");
  c->add_option("--out", opts->out, "write the figures as JSON here");
  c->callback([opts] {
    std::string cmd = "bmh bench-tokenizer";
    for (const auto& [flag, value] : std::vector<std::pair<std::string, std::string>>{
             {"--tokenizer", opts->tokenizer}, {"--input", opts->input},
             {"--threads", opts->threads ? std::to_string(opts->threads) : ""},
             {"--repeats", std::to_string(opts->repeats)}, {"--out", opts->out}})
      if (!value.empty()) cmd += " " + flag + " " + value;
    run_bench(*opts, cmd);
  });
}

static const bool registered = register_command(&add_bench_tokenizer_command);

}  // namespace
}  // namespace bmh
