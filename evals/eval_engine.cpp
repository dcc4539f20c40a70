#include "evals/eval_engine.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "core/error.h"
#include "evals/distributed.h"
#include "evals/journal.h"
#include "evals/score_plan.h"
#include "evals/task_sha256.h"

namespace bmh::eval {

namespace {

// "label [#######.......] 1234/5678  56.7 req/s  ETA 0:01:23" on stderr: redrawn in place on a terminal,
// a line every 10% (or 30 s) otherwise. The ETA extrapolates by tokens, since requests run longest first.
class ProgressBar {
 public:
  ProgressBar(std::string label, size_t total, int64_t total_tokens, bool enabled)
      : label_(std::move(label)), total_(total), total_tokens_(total_tokens), enabled_(enabled && total > 0),
        tty_(::isatty(2)), start_(Clock::now()), last_(start_) {}

  void update(size_t done, int64_t done_tokens) {
    if (!enabled_) return;
    auto now = Clock::now();
    double since = std::chrono::duration<double>(now - last_).count();
    bool finished = done == total_;
    if (tty_ ? (since < 0.2 && !finished) : (!finished && since < 30 && done * 10 / total_ == last_decile_)) return;
    last_ = now;
    last_decile_ = done * 10 / total_;
    double elapsed = std::chrono::duration<double>(now - start_).count();
    double eta = done_tokens > 0 ? elapsed * double(total_tokens_ - done_tokens) / double(done_tokens) : 0;
    const int width = 30;
    int fill = int(double(done) / double(total_) * width);
    std::string bar(size_t(fill), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "%s%s [%s] %zu/%zu  %.1f req/s  %s %s%s", tty_ ? "\r" : "", label_.c_str(), bar.c_str(),
                 done, total_, elapsed > 0 ? double(done) / elapsed : 0.0, finished ? "took" : "ETA",
                 hms(finished ? elapsed : eta).c_str(), tty_ && !finished ? "" : "\n");
    std::fflush(stderr);
  }

 private:
  using Clock = std::chrono::steady_clock;
  static std::string hms(double s) {
    long t = long(std::lround(s));
    char buf[32];
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    return buf;
  }
  std::string label_;
  size_t total_;
  int64_t total_tokens_;
  bool enabled_, tty_;
  Clock::time_point start_, last_;
  size_t last_decile_ = 0;
};

// One scored request between ranks: its index in the pending list, its log-likelihood, is_greedy. A message is
// the call's index then its results (the same binary on both ends: plain bytes).
struct WireResult {
  uint64_t index;
  double logprob;
  uint64_t is_greedy;
};

std::vector<uint8_t> pack_results(size_t call, const std::vector<WireResult>& v) {
  std::vector<uint8_t> b(8 + v.size() * sizeof(WireResult));
  const uint64_t c = call;
  std::memcpy(b.data(), &c, 8);
  if (!v.empty()) std::memcpy(b.data() + 8, v.data(), v.size() * sizeof(WireResult));
  return b;
}

std::vector<WireResult> unpack_results(const std::vector<uint8_t>& b, size_t n_index, size_t n_calls, size_t& call) {
  if (b.size() < 8 || (b.size() - 8) % sizeof(WireResult) != 0) fail("scoring: a rank sent a malformed message");
  uint64_t c = 0;
  std::memcpy(&c, b.data(), 8);
  if (c >= n_calls) fail("scoring: a rank sent results of call ", c, " of ", n_calls);
  call = size_t(c);
  std::vector<WireResult> v((b.size() - 8) / sizeof(WireResult));
  if (!v.empty()) std::memcpy(v.data(), b.data() + 8, v.size() * sizeof(WireResult));
  for (const WireResult& w : v)
    if (w.index >= n_index) fail("scoring: a rank sent result ", w.index, " of ", n_index);
  return v;
}

}  // namespace

// Re-scores a sample of the computed requests alone (one call each, no shared prefix): the largest difference
// from the packed results is what packing changes.
static void budget_check(LanguageModel& model, const std::vector<const ScoreRequest*>& reqs,
                         const std::vector<ScoreResult>& got, const ScoreOptions& opt, ScoreStats& st) {
  if (opt.budget_check == 0 || reqs.empty()) return;
  const size_t stride = std::max<size_t>(1, reqs.size() / opt.budget_check);
  ScoreBatchOptions bo;
  bo.deterministic = opt.deterministic;
  // Under MPI the sample is the same and its j-th request is re-scored by rank j % size.
  size_t j = 0;
  std::vector<int64_t> counts = {0, 0};   // requests, greedy flips
  std::vector<double> max_diff = {0};
  for (size_t i = 0; i < reqs.size() && j < opt.budget_check; i += stride, ++j) {
    if (int(j % size_t(dist::size())) != dist::rank()) continue;
    ScoreResult alone = model.score_groups({ScoreGroup{0, {*reqs[i]}}}, bo).at(0);
    max_diff[0] = std::max(max_diff[0], std::abs(alone.logprob - got[i].logprob));
    counts[1] += alone.is_greedy != got[i].is_greedy;
    ++counts[0];
  }
  dist::allreduce_sum(counts);
  dist::allreduce_max(max_diff);
  st.budget_check_requests = size_t(counts[0]);
  st.budget_check_greedy_flips = size_t(counts[1]);
  st.budget_check_max_abs_diff = max_diff[0];
  if (dist::is_root() && opt.deterministic && (st.budget_check_max_abs_diff != 0 || st.budget_check_greedy_flips != 0))
    std::fprintf(stderr, "%s: warning: --deterministic results changed with the packing (max |diff| %.3g)\n",
                 opt.label.c_str(), st.budget_check_max_abs_diff);
}

std::vector<ScoreResult> score_requests(LanguageModel& model, const std::vector<ScoreRequest>& requests,
                                        const ScoreOptions& opt) {
  if (opt.token_budget < 1) fail("--token-budget must be at least 1 (got ", opt.token_budget, ")");
  if (opt.deterministic && !model.batch_invariant())
    fail("--deterministic: backend ", model.describe(), " does not guarantee batch-invariant scores");
  // One entry per unique (tokens, n_continuation).
  std::vector<std::string> keys(requests.size());
  std::unordered_map<std::string, size_t> unique_of;
  std::vector<size_t> unique_first;        // index of a request carrying each unique key
  std::vector<size_t> slot(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    keys[i] = request_key(requests[i]);
    auto [it, inserted] = unique_of.emplace(keys[i], unique_first.size());
    if (inserted) unique_first.push_back(i);
    slot[i] = it->second;
  }
  std::vector<ScoreResult> unique_result(unique_first.size());
  // Rank 0 alone holds the journal (the other ranks get none): it says what is already done, and the others take
  // its word, so every rank plans the same pending list.
  std::vector<uint8_t> done_flag(unique_first.size(), 0);
  if (opt.journal && dist::is_root())
    for (size_t u = 0; u < unique_first.size(); ++u) {
      auto it = opt.journal->done().find(keys[unique_first[u]]);
      if (it == opt.journal->done().end()) continue;
      unique_result[u] = it->second;
      done_flag[u] = 1;
    }
  dist::broadcast(done_flag);
  std::vector<size_t> pending;             // unique ids still to score
  for (size_t u = 0; u < unique_first.size(); ++u)
    if (!done_flag[u]) pending.push_back(u);
  std::vector<const ScoreRequest*> todo;
  for (size_t u : pending) todo.push_back(&requests[unique_first[u]]);
  PlanOptions po;
  po.token_budget = opt.token_budget;
  po.share_prefixes = opt.share_prefixes;
  std::vector<PlannedCall> calls = plan_score_calls(todo, po);
  ScoreStats st;
  st.unique_requests = unique_first.size();
  st.computed_requests = todo.size();
  st.calls = calls.size();
  PlanTokens pt = plan_tokens(calls, todo);
  st.tokens_whole = pt.whole;
  st.tokens_computed = pt.computed;
  if (opt.journal && opt.journal->resumed() > 0)
    std::fprintf(stderr, "%s: resuming: %zu of %zu unique requests already in %s\n", opt.label.c_str(),
                 unique_first.size() - pending.size(), unique_first.size(), opt.journal->path().c_str());
  // Whole calls of the one-process plan go to the ranks, so each request is computed in exactly the call it would
  // be in one process: results are bit-identical to it on any backend, --deterministic or not.
  std::vector<int64_t> call_tokens;
  for (const PlannedCall& c : calls) call_tokens.push_back(c.tokens);
  const std::vector<int> owner = dist::assign_by_tokens(call_tokens, dist::size());
  st.ranks.resize(size_t(dist::size()));
  for (size_t c = 0; c < calls.size(); ++c) {
    ScoreStats::RankShare& sh = st.ranks[size_t(owner[c])];
    ++sh.calls, sh.requests += calls[c].requests, sh.tokens += calls[c].tokens;
  }
  if (dist::size() > 1 && dist::is_root())
    for (int r = 0; r < dist::size(); ++r) {
      const ScoreStats::RankShare& sh = st.ranks[size_t(r)];
      std::fprintf(stderr, "%s: rank %d of %d: %zu calls, %zu requests, %lld tokens\n", opt.label.c_str(), r,
                   dist::size(), sh.calls, sh.requests, (long long)sh.tokens);
    }
  std::vector<double> busy(size_t(dist::size()), 0.0);   // this rank's seconds in model calls
  auto t0 = std::chrono::steady_clock::now();
  ProgressBar bar(opt.label, todo.size(), pt.computed, opt.progress && dist::is_root());
  ScoreBatchOptions bo;
  bo.deterministic = opt.deterministic;
  std::vector<ScoreResult> todo_result(todo.size());
  size_t done = 0;
  int64_t done_tokens = 0;
  // Rank 0: a call's results (its own or a message from another rank) into the tables, the journal and the bar.
  auto take = [&](size_t call, const std::vector<WireResult>& got) {
    if (got.size() != calls[call].requests) fail("scoring: call ", call, " came back with ", got.size(), " results");
    std::vector<std::pair<std::string, ScoreResult>> journal_batch;
    for (const WireResult& w : got) {
      ScoreResult r{w.logprob, w.is_greedy != 0};
      todo_result[w.index] = r;
      unique_result[pending[w.index]] = r;
      journal_batch.emplace_back(keys[unique_first[pending[w.index]]], r);
    }
    if (opt.journal) opt.journal->append(journal_batch);
    done += calls[call].requests;
    done_tokens += calls[call].tokens;
    bar.update(done, done_tokens);
  };
  auto take_message = [&](const std::vector<uint8_t>& msg) {
    size_t call = 0;
    std::vector<WireResult> got = unpack_results(msg, todo.size(), calls.size(), call);
    take(call, got);
  };
  std::vector<uint8_t> msg;
  for (size_t c = 0; c < calls.size(); ++c) {
    if (owner[c] != dist::rank()) continue;
    const PlannedCall& call = calls[c];
    std::vector<ScoreGroup> groups;
    for (const PlannedGroup& g : call.groups) {
      ScoreGroup sg;
      sg.prefix = g.prefix;
      for (size_t m : g.members) sg.requests.push_back(*todo[m]);
      groups.push_back(std::move(sg));
    }
    auto tc = std::chrono::steady_clock::now();
    std::vector<ScoreResult> got = model.score_groups(groups, bo);
    busy[size_t(dist::rank())] += std::chrono::duration<double>(std::chrono::steady_clock::now() - tc).count();
    if (got.size() != call.requests)
      fail("model ", model.describe(), " returned ", got.size(), " scores for a call of ", call.requests, " requests");
    std::vector<WireResult> wire;
    size_t k = 0;
    for (const PlannedGroup& g : call.groups)
      for (size_t m : g.members) wire.push_back({uint64_t(m), got[k].logprob, uint64_t(got[k].is_greedy)}), ++k;
    if (dist::is_root()) {
      take(c, wire);
      while (dist::poll_from_any(msg)) take_message(msg);
    } else {
      dist::send_to_root(pack_results(c, wire));
    }
  }
  if (dist::is_root()) {
    while (done < todo.size()) {
      dist::receive_from_any(msg);
      take_message(msg);
    }
  } else {
    dist::finish_sends();
  }
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  dist::allreduce_max(busy);
  for (size_t r = 0; r < busy.size(); ++r) st.ranks[r].busy_seconds = busy[r];
  // Every rank gets every result (each computes the same metrics; rank 0 alone writes them).
  if (dist::size() > 1) {
    std::vector<WireResult> all;
    if (dist::is_root())
      for (size_t u = 0; u < unique_result.size(); ++u)
        all.push_back({uint64_t(u), unique_result[u].logprob, uint64_t(unique_result[u].is_greedy)});
    std::vector<uint8_t> bytes = dist::is_root() ? pack_results(0, all) : std::vector<uint8_t>{};
    dist::broadcast(bytes);
    size_t ignored = 0;
    all = unpack_results(bytes, unique_result.size(), 1, ignored);
    if (all.size() != unique_result.size()) fail("scoring: rank 0 sent ", all.size(), " of ", unique_result.size(), " results");
    for (const WireResult& w : all) unique_result[w.index] = ScoreResult{w.logprob, w.is_greedy != 0};
    for (size_t m = 0; m < todo.size(); ++m) todo_result[m] = unique_result[pending[m]];
  }
  budget_check(model, todo, todo_result, opt, st);
  if (opt.unique_requests) *opt.unique_requests = unique_first.size();
  if (opt.stats) *opt.stats = st;
  std::vector<ScoreResult> out(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) out[i] = unique_result[slot[i]];
  return out;
}

LoadedTasks load_tasks(const EvalOptions& opt) {
  if (opt.limit < 0) fail("--limit must be positive (got ", opt.limit, ")");
  if (opt.tasks.empty()) fail("no tasks given");
  LoadedTasks out;
  for (const std::string& name : opt.tasks) {
    Task t = load_task(name, opt.task_options);
    out.n_original.push_back(int64_t(t.docs.size()));
    if (opt.limit > 0 && int64_t(t.docs.size()) > opt.limit) t.docs.resize(size_t(opt.limit));
    out.tasks.push_back(std::move(t));
  }
  return out;
}

static MetricValue mean_metric(const std::string& name, const std::vector<double>& items) {
  MetricValue m;
  m.name = name;
  m.value = py_mean(items);
  m.has_stderr = items.size() > 1;  // evaluator_utils: "N/A" unless len(items) > 1
  if (m.has_stderr) m.stderr_ = mean_stderr(items);
  return m;
}

std::vector<TaskResult> run_tasks(LanguageModel& model, const Encoder& encode, const EvalOptions& opt) {
  return run_tasks(model, encode, opt, load_tasks(opt));
}

std::vector<TaskResult> run_tasks(LanguageModel& model, const Encoder& encode, const EvalOptions& opt,
                                  LoadedTasks loaded) {
  std::vector<Task>& tasks = loaded.tasks;
  const std::vector<int64_t>& n_original = loaded.n_original;
  const int max_length = model.config().max_seq_len;
  if (max_length < 1) fail("model ", model.describe(), " has max_seq_len ", max_length);

  std::vector<TaskResult> results;
  std::vector<ScoreRequest> all;
  StageTimer stage(opt.stage_seconds);
  std::unordered_map<std::string, std::vector<int32_t>> cache;  // MC choices share a context
  auto cached_encode = [&](std::string_view s) -> std::vector<int32_t> {
    auto it = cache.find(std::string(s));
    if (it != cache.end()) return it->second;
    std::vector<int32_t> ids = encode(s);
    if (cache.size() > 200000) cache.clear();
    cache.emplace(std::string(s), ids);
    return ids;
  };
  for (size_t ti = 0; ti < tasks.size(); ++ti) {
    TaskResult tr;
    tr.task = std::move(tasks[ti]);
    tr.n_original = n_original[ti];
    for (const Doc& d : tr.task.docs) {
      for (size_t k = 0; k < d.requests.size(); ++k) {
        RequestRecord rec;
        rec.doc_id = d.id;
        rec.idx = int(k);
        rec.text = d.requests[k];
        try {
          rec.tokens = encode_request(rec.text.context, rec.text.continuation, cached_encode, opt.prefix_token);
          ScoreRequest sr = to_score_request(rec.tokens, max_length);
          rec.n_truncated = int(rec.tokens.context.size() + rec.tokens.continuation.size() - sr.tokens.size());
          all.push_back(std::move(sr));
        } catch (const Error& e) {
          fail(tr.task.name, " doc ", d.id, " request ", k, ": ", e.what());
        }
        tr.requests.push_back(std::move(rec));
      }
    }
    results.push_back(std::move(tr));
  }

  // Prefix sharing per task, planned for each task alone (what --token-budget packs across tasks is the same or
  // better).
  size_t first = 0;
  for (TaskResult& tr : results) {
    std::unordered_map<std::string, const ScoreRequest*> uniq;
    for (size_t i = first; i < first + tr.requests.size(); ++i) uniq.emplace(request_key(all[i]), &all[i]);
    first += tr.requests.size();
    std::vector<const ScoreRequest*> reqs;
    for (const auto& [k, r] : uniq) reqs.push_back(r);
    PlanOptions po;
    po.token_budget = opt.score.token_budget;
    po.share_prefixes = opt.score.share_prefixes;
    PlanTokens pt = plan_tokens(plan_score_calls(reqs, po), reqs);
    tr.tokens_whole = pt.whole;
    tr.tokens_shared = pt.computed;
  }

  stage.done("tokenize");
  std::vector<ScoreResult> scores = score_requests(model, all, opt.score);
  stage.done("score");
  size_t next = 0;
  for (TaskResult& tr : results) {
    for (RequestRecord& r : tr.requests) r.result = scores[next++];
    size_t ri = 0;
    std::vector<double> acc, acc_norm, lls;
    for (const Doc& d : tr.task.docs) {
      DocRecord dr;
      dr.doc_id = d.id;
      if (tr.task.output_type == OutputType::MultipleChoice) {
        std::vector<double> doc_lls;
        for (size_t k = 0; k < d.requests.size(); ++k) doc_lls.push_back(tr.requests[ri++].result.logprob);
        ChoiceOutcome o = score_multiple_choice(doc_lls, d.choices, d.gold);
        dr.gold = d.gold;
        dr.pred = int(o.pred);
        dr.pred_norm = int(o.pred_norm);
        dr.acc = o.acc;
        dr.acc_norm = o.acc_norm;
        acc.push_back(o.acc);
        acc_norm.push_back(o.acc_norm);
      } else {
        const ScoreResult& s = tr.requests[ri++].result;
        dr.loglikelihood = s.logprob;
        dr.is_greedy = s.is_greedy;
        dr.acc = s.is_greedy ? 1 : 0;  // {"acc": int(is_greedy)}
        lls.push_back(s.logprob);
        acc.push_back(dr.acc);
      }
      tr.docs.push_back(dr);
    }
    for (const std::string& m : tr.task.metrics) {
      if (m == "acc") {
        tr.metrics.push_back(mean_metric("acc", acc));
      } else if (m == "acc_norm") {
        tr.metrics.push_back(mean_metric("acc_norm", acc_norm));
      } else if (m == "perplexity") {
        MetricValue pm;
        pm.name = "perplexity";
        pm.higher_is_better = false;
        pm.value = perplexity(lls);
        pm.has_stderr = lls.size() > 1;
        if (pm.has_stderr) pm.stderr_ = bootstrap_stderr(Statistic::Perplexity, lls, opt.bootstrap_iters);
        tr.metrics.push_back(pm);
      } else {
        fail("task ", tr.task.name, ": no aggregation for metric ", m);
      }
    }
  }
  stage.done("metrics");
  return results;
}

std::string run_fingerprint(const nlohmann::json& what) { return sha256_hex(what.dump()).substr(0, 32); }

}  // namespace bmh::eval
