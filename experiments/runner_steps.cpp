// The runner's steps: info, forward, generate, flops, latency, routing, eval. Each returns a JSON summary and
// writes its arrays, self-described, under the given HDF5 group.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/flops.h"
#include "core/model_weights.h"
#include "evals/eval_engine.h"
#include "evals/journal.h"
#include "evals/latency.h"
#include "evals/router_precision.h"
#include "evals/routing_stats.h"
#include "experiments/runner.h"

namespace bmh::run {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::vector<int64_t> to_i64(const std::vector<int32_t>& v) { return {v.begin(), v.end()}; }

// The first `n` tokens of a text file (reads only as much of it as needed).
std::vector<int32_t> file_tokens(const Tokenizer& tok, const std::string& path, int64_t n) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open text file ", path);
  const auto size = int64_t(std::filesystem::file_size(path));
  for (int64_t bytes = std::min<int64_t>(size, 8 * n + 4096);; bytes = std::min<int64_t>(size, bytes * 4)) {
    std::string text(size_t(bytes), '\0');
    in.clear();
    in.seekg(0);
    in.read(text.data(), bytes);
    // Do not cut a UTF-8 sequence: drop trailing continuation bytes and their lead byte.
    if (bytes < size) {
      size_t k = text.size();
      while (k > 0 && (static_cast<unsigned char>(text[k - 1]) & 0xC0) == 0x80) --k;
      if (k > 0 && static_cast<unsigned char>(text[k - 1]) >= 0xC0) --k;
      text.resize(k);
    }
    std::vector<int32_t> ids = tok.encode(text);
    // The last token may be cut by the byte limit; keep only tokens before it when the file goes on.
    if (int64_t(ids.size()) > n || bytes == size) {
      if (int64_t(ids.size()) < n) fail(path, " holds only ", ids.size(), " tokens; ", n, " are needed");
      ids.resize(size_t(n));
      return ids;
    }
  }
}

double relative_frobenius(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Mean negative log-likelihood of ids[t+1] given the logits at t, per position.
std::vector<double> next_token_nll(const Tensor& logits, const std::vector<int64_t>& ids) {
  const int64_t T = logits.dim(1), V = logits.dim(2);
  const float* lp = logits.data<float>();
  std::vector<double> out;
  for (int64_t t = 0; t + 1 < T; ++t) {
    const float* row = lp + t * V;
    double mx = row[0];
    for (int64_t v = 1; v < V; ++v) mx = std::max(mx, double(row[v]));
    double se = 0;
    for (int64_t v = 0; v < V; ++v) se += std::exp(double(row[v]) - mx);
    out.push_back(mx + std::log(se) - double(row[ids[t + 1]]));
  }
  return out;
}

// ---- info -------------------------------------------------------------------------------------------------
StepResult step_info(StepEnv& env, h5::Group g) {
  const ModelConfig& c = env.cfg;
  auto t0 = Clock::now();
  LanguageModel& lm = env.lm();
  const double load_s = seconds_since(t0);
  ParamCount pc = count_parameters(c);
  ParamBreakdown pb = param_breakdown(c);
  std::vector<std::string> kinds;
  for (const auto& b : c.blocks) kinds.push_back(block_kind(b));
  StepResult r;
  r.summary = {{"family", c.family}, {"backend", lm.describe()}, {"d_model", c.d_model}, {"vocab", c.vocab_size},
               {"blocks", c.n_blocks()}, {"moe_blocks", c.moe_blocks().size()},
               {"params_total", pc.total}, {"params_active", pc.active}, {"params_embedding", pc.embedding},
               {"params_active_non_embedding", pb.active - pb.embedding - pb.head},
               {"load_seconds_first_use", load_s}};
  g.attr("description", "model shape and parameter counts (core/model_weights.h, core/flops.h)");
  g.attr("family", c.family);
  g.attr("backend", lm.describe());
  g.write("block_kind", kinds, {"mixer+mlp of each block", "", {"block"}});
  g.write("params", std::vector<int64_t>{pc.total, pc.active, pc.embedding, pb.mixer, pb.mlp_dense, pb.moe_total,
                                         pb.moe_active},
          {"parameters: total, active per token, embedding (+ untied head), mixers, dense MLPs, MoE total, MoE active",
           "parameters", {"kind"}});
  g.write("params_kind", std::vector<std::string>{"total", "active", "embedding", "mixer", "mlp_dense", "moe_total",
                                                  "moe_active"},
          {"names of the entries of params", "", {"kind"}});
  return r;
}

// ---- forward ----------------------------------------------------------------------------------------------
StepResult step_forward(StepEnv& env, h5::Group g) {
  const auto& e = env.exp;
  LanguageModel& lm = env.lm();
  std::vector<int64_t> ids = to_i64(file_tokens(env.tokenizer(), e.forward_text, e.forward_tokens));
  const int64_t T = int64_t(ids.size());
  lm.forward(Tensor::from_i64(std::vector<int64_t>(ids.begin(), ids.begin() + std::min<int64_t>(T, 8)),
                              {1, std::min<int64_t>(T, 8)}));  // warm-up
  auto t0 = Clock::now();
  ForwardOutput out = lm.forward(Tensor::from_i64(ids, {1, T}));
  const double ms = seconds_since(t0) * 1e3;
  for (float v : out.logits.to_f32())
    if (!std::isfinite(v)) fail("forward of ", T, " tokens produced a non-finite logit");
  std::vector<double> nll = next_token_nll(out.logits, ids);
  double mean = 0;
  for (double x : nll) mean += x;
  mean /= double(nll.size());
  StepResult r;
  r.summary = {{"tokens", T}, {"ms", ms}, {"ms_per_token", ms / double(T)}, {"nll_mean", mean},
               {"perplexity", std::exp(mean)}, {"text", std::filesystem::path(e.forward_text).filename().string()}};
  g.attr("description", "one forward pass over the first tokens of a text file: time and next-token loss");
  g.attr("text", e.forward_text);
  g.attr("ms", ms);
  g.attr("ms_per_token", ms / double(T));
  g.attr("perplexity", std::exp(mean));
  g.write("input_ids", ids, {"tokens of the text", "", {"position"}});
  g.write("nll", nll, {"-log p(token t+1 | tokens <= t)", "nats", {"position"}});
  return r;
}

// ---- generate ---------------------------------------------------------------------------------------------
StepResult step_generate(StepEnv& env, h5::Group g) {
  const auto& e = env.exp;
  LanguageModel& lm = env.lm();
  const Tokenizer& tok = env.tokenizer();
  std::vector<int64_t> prompt = to_i64(tok.encode(e.generate_prompt));
  const int64_t T = int64_t(prompt.size()), n = e.generate_tokens, V = lm.config().vocab_size;
  Tensor gen_logits;
  auto t0 = Clock::now();
  Tensor out = generate_greedy(lm, Tensor::from_i64(prompt, {1, T}), int(n), &gen_logits);
  const double ms = seconds_since(t0) * 1e3;
  std::vector<int64_t> all = out.to_i64();
  // The recurrent path must agree with a full forward over the same tokens.
  std::vector<int64_t> fwd_ids(all.begin(), all.end() - 1);
  ForwardOutput f = lm.forward(Tensor::from_i64(fwd_ids, {1, T + n - 1}));
  std::vector<float> fl = f.logits.to_f32();
  std::vector<float> ref(fl.begin() + (T - 1) * V, fl.end());
  const double diff = relative_frobenius(gen_logits.to_f32(), ref);
  const std::string dt = env.model.spec.dtype;
  const double tol = dt == "fp64" ? 1e-9 : dt == "fp32" ? 1e-4 : 5e-2;
  std::vector<int32_t> new_ids(all.begin() + T, all.end());
  const std::string text = tok.decode(new_ids, false);
  StepResult r;
  r.summary = {{"prompt", e.generate_prompt}, {"prompt_tokens", T}, {"new_tokens", n}, {"ms", ms},
               {"ms_per_token", ms / double(n)}, {"text", text}, {"decode_vs_forward_rel_diff", diff},
               {"parity_tolerance", tol}, {"parity_ok", diff <= tol}};
  g.attr("description", "greedy generation through the recurrent path (prefill + steps), checked against a full "
                        "forward over the same tokens");
  g.attr("prompt", e.generate_prompt);
  g.attr("text", text);
  g.attr("ms", ms);
  g.attr("ms_per_token", ms / double(n));
  g.attr("decode_vs_forward_rel_diff", diff);
  g.write("generated_ids", all, {"prompt and generated tokens", "", {"position"}});
  if (diff > tol)
    fail("decoding disagrees with the full forward: relative difference ", diff, " > ", tol, " (", dt, ")");
  return r;
}

// ---- flops ------------------------------------------------------------------------------------------------
StepResult step_flops(StepEnv& env, h5::Group g) {
  const auto& e = env.exp;
  const ModelConfig& c = env.cfg;
  std::vector<double> decode, prefill, train, weights, mstate, kv;
  for (int64_t ctx : e.flops_contexts) {
    decode.push_back(flops_per_token(c, ctx).flops());
    const double seq = flops_sequence(c, ctx).flops() / double(ctx);
    prefill.push_back(seq);
    train.push_back(3 * seq);
    MemoryEstimate m = memory_estimate(c, ctx, 1, e.weight_bytes, e.state_bytes);
    weights.push_back(m.weights);
    mstate.push_back(m.mamba_state);
    kv.push_back(m.kv_cache);
  }
  const int64_t R = e.flops_reference_context;
  ModelFlops ref = flops_sequence(c, R);
  std::vector<std::string> names;
  std::vector<double> term_flops, term_macs;
  for (const auto& t : ref.by_term()) {
    names.push_back(t.name);
    term_flops.push_back(t.flops() / double(R));
    term_macs.push_back(t.macs / double(R));
  }
  ParamBreakdown p = param_breakdown(c);
  const double fwd_ref = ref.flops() / double(R);
  StepResult r;
  r.summary = {{"reference_context", R}, {"forward_flops_per_token", fwd_ref},
               {"training_flops_per_token", 3 * fwd_ref}, {"decode_flops_per_token", flops_per_token(c, R).flops()},
               {"params_total", p.total}, {"params_active", p.active},
               {"weights_bytes", weights[0]}, {"weight_bytes_per_param", e.weight_bytes}};
  if (env.model.train_tokens > 0) r.summary["training_flops_total"] = 3 * fwd_ref * env.model.train_tokens;
  json mem = json::array();
  for (size_t i = 0; i < e.flops_contexts.size(); ++i)
    mem.push_back({{"context", e.flops_contexts[i]}, {"mamba_state_bytes", mstate[i]}, {"kv_cache_bytes", kv[i]}});
  r.summary["memory"] = mem;

  g.attr("description", "analytic FLOPs, parameters and memory (core/flops.h states the conventions)");
  g.attr("reference_context", R);
  g.attr("forward_flops_per_token", fwd_ref);
  g.attr("training_flops_per_token", 3 * fwd_ref);
  g.attr("train_tokens", env.model.train_tokens);
  if (env.model.train_tokens > 0) g.attr("training_flops_total", 3 * fwd_ref * env.model.train_tokens);
  g.attr("params_total", p.total);
  g.attr("params_active", p.active);
  g.write("contexts", e.flops_contexts, {"context length", "tokens", {"context"}});
  g.write("decode_flops_per_token", decode, {"forward FLOPs of one new token at this context", "FLOPs", {"context"}});
  g.write("prefill_flops_per_token", prefill,
          {"forward FLOPs per token of a sequence of this length (causal mean)", "FLOPs", {"context"}});
  g.write("training_flops_per_token", train, {"3 x prefill_flops_per_token", "FLOPs", {"context"}});
  g.write("weights_bytes", weights, {"weights at weight_bytes per parameter", "bytes", {"context"}});
  g.write("mamba_state_bytes", mstate, {"Mamba conv + SSM state of one sequence", "bytes", {"context"}});
  g.write("kv_cache_bytes", kv, {"attention KV cache of one sequence", "bytes", {"context"}});
  g.write("term_names", names, {"cost terms (block type.op)", "", {"term"}});
  g.write("term_flops_per_token", term_flops, {"FLOPs per token at the reference context", "FLOPs", {"term"}});
  g.write("term_macs_per_token", term_macs, {"multiply-adds per token at the reference context", "MACs", {"term"}});
  return r;
}

// ---- latency ----------------------------------------------------------------------------------------------
StepResult step_latency(StepEnv& env, h5::Group g) {
  LatencyOptions o = env.exp.latency;
  o.progress = env.say;
  LatencyResult res = measure_latency(env.lm(), o);
  write_latency_h5(res, g);
  StepResult r;
  r.summary = latency_summary_json(res);
  return r;
}

// ---- routing ----------------------------------------------------------------------------------------------
StepResult step_routing(StepEnv& env, h5::Group g) {
  StepResult r;
  if (env.cfg.moe_blocks().empty()) {
    r.status = "skipped";
    r.reason = "no MoE blocks";
    return r;
  }
  const auto& e = env.exp;
  LanguageModel& lm = env.lm();
  const Tokenizer& tok = env.tokenizer();
  RoutingOptions ro;
  ro.top_tokens = e.routing_top_tokens;
  RoutingAccumulator acc(env.cfg, ro);
  // With a model-dtype router (router_precision), also count per layer the routes exact fp32 routing would change.
  std::unique_ptr<RouterPrecisionComparison> cmp;
  if (lm.router_precision().model_dtype) cmp = std::make_unique<RouterPrecisionComparison>(lm, lm.router_precision());
  const int64_t L = e.routing_seq_len;
  int64_t tokens = 0;
  for (const auto& src : e.routing_sources) {
    std::vector<std::vector<int64_t>> seqs;
    if (!src.file.empty()) {
      std::vector<int32_t> ids = file_tokens(tok, src.file, int64_t(src.sequences) * L);
      for (int s = 0; s < src.sequences; ++s) seqs.emplace_back(ids.begin() + s * L, ids.begin() + (s + 1) * L);
    } else {
      eval::EvalOptions eo;
      eo.tasks = {src.task};
      eo.limit = src.limit;
      for (const auto& task : eval::load_tasks(eo).tasks)
        for (const auto& d : task.docs) {
          const auto& q = d.requests[d.gold >= 0 && d.gold < int(d.requests.size()) ? d.gold : 0];
          std::vector<int64_t> ids = to_i64(tok.encode(q.context + q.continuation));
          if (int64_t(ids.size()) > L) ids.resize(size_t(L));
          if (!ids.empty()) seqs.push_back(std::move(ids));
        }
    }
    for (size_t b0 = 0; b0 < seqs.size(); b0 += size_t(e.routing_batch)) {
      const size_t b1 = std::min(seqs.size(), b0 + size_t(e.routing_batch));
      int64_t T = 0;
      for (size_t b = b0; b < b1; ++b) T = std::max<int64_t>(T, int64_t(seqs[b].size()));
      std::vector<int64_t> ids(size_t(int64_t(b1 - b0) * T), 0);
      std::vector<int> lengths;
      for (size_t b = b0; b < b1; ++b) {
        std::copy(seqs[b].begin(), seqs[b].end(), ids.begin() + int64_t(b - b0) * T);
        lengths.push_back(int(seqs[b].size()));
        tokens += int64_t(seqs[b].size());
      }
      Tensor t = Tensor::from_i64(ids, {int64_t(b1 - b0), T});
      ForwardOutput out = lm.forward(t);
      acc.add(out.routes, t, src.name, &lengths);  // right padding is causal-safe and excluded by lengths
      if (cmp) cmp->add(t, &lengths);
    }
    env.say(src.name + ": " + std::to_string(seqs.size()) + " sequences");
  }
  RoutingStats s = acc.finish();
  auto decode = [&](int64_t id) { return tok.decode({int32_t(id)}, false); };
  write_routing_h5(s, g, decode);
  r.summary = routing_summary_json(s, decode);
  double cv = 0;
  for (const auto& l : s.layers) cv += l.cv;
  r.summary["tokens"] = tokens;
  r.summary["cv_mean"] = cv / double(s.layers.size());
  r.summary["cv_last"] = s.layers.back().cv;
  if (cmp) {
    json layers = json::array();
    for (const auto& l : cmp->layers())
      layers.push_back({{"block", l.block}, {"tokens", l.tokens}, {"differ_from_fp32", l.differ},
                        {"ties_model", l.ties_model}, {"ties_fp32", l.ties_exact}});
    r.summary["router_precision"] = {{"mode", lm.router_precision().describe()}, {"layers", layers}};
  }
  return r;
}

// ---- eval -------------------------------------------------------------------------------------------------
StepResult step_eval(StepEnv& env, h5::Group g) {
  const auto& e = env.exp;
  LanguageModel& lm = env.lm();
  const Tokenizer& tok = env.tokenizer();
  eval::EvalOptions eo;
  eo.tasks = e.eval_tasks;
  eo.limit = e.eval_limit;
  eo.bootstrap_iters = e.eval_bootstrap_iters;
  eo.score.batch_size = e.eval_batch_size;
  eo.score.label = env.model.name;
  json fp = {{"model", env.model.json}, {"eval", e.step_section("eval")}};
  eval::Journal journal(env.work_dir + "/eval.journal", eval::run_fingerprint(fp));
  eo.score.journal = &journal;
  if (journal.resumed() > 0) env.say("resuming " + std::to_string(journal.resumed()) + " scored requests");
  eval::Encoder encode = [&tok](std::string_view s) { return tok.encode(s); };
  std::vector<eval::TaskResult> results = eval::run_tasks(lm, encode, eo);
  StepResult r;
  json tasks = json::object();
  std::vector<std::string> names;
  std::vector<double> acc, acc_se;
  for (const auto& t : results) {
    json m = json::object();
    h5::Group tg = g.group(t.task.name);
    tg.attr("documents", int64_t(t.docs.size()));
    tg.attr("documents_in_file", t.n_original);
    if (!t.task.note.empty()) tg.attr("note", t.task.note);
    std::vector<std::string> mn;
    std::vector<double> mv, ms;
    for (const auto& x : t.metrics) {
      m[x.name] = {{"value", x.value}, {"stderr", x.has_stderr ? json(x.stderr_) : json(nullptr)}};
      mn.push_back(x.name);
      mv.push_back(x.value);
      ms.push_back(x.has_stderr ? x.stderr_ : std::nan(""));
    }
    tg.write("metric_names", mn, {"lm-eval metric names", "", {"metric"}});
    tg.write("metric_values", mv, {"metric values", "", {"metric"}});
    tg.write("metric_stderr", ms, {"standard errors (NaN: none)", "", {"metric"}});
    std::vector<double> doc_acc;
    for (const auto& d : t.docs) doc_acc.push_back(t.task.output_type == eval::OutputType::MultipleChoice ? d.acc : double(d.is_greedy));
    tg.write("doc_acc", doc_acc, {"per-document accuracy (lambada: greedy continuation)", "", {"doc"}});
    tasks[t.task.name] = {{"documents", t.docs.size()}, {"metrics", m}};
    for (const auto& x : t.metrics)
      if (x.name == "acc") {
        names.push_back(t.task.name);
        acc.push_back(x.value);
        acc_se.push_back(x.has_stderr ? x.stderr_ : std::nan(""));
      }
  }
  g.attr("description", "zero-shot tasks as lm-evaluation-harness defines them (evals/eval_engine.h)");
  g.attr("limit", e.eval_limit);
  g.write("acc_tasks", names, {"tasks reporting acc", "", {"task"}});
  g.write("acc", acc, {"accuracy per task", "fraction", {"task"}});
  g.write("acc_stderr", acc_se, {"standard error of acc", "fraction", {"task"}});
  double mean = 0;
  for (double a : acc) mean += a;
  r.summary = {{"tasks", tasks}, {"limit", e.eval_limit},
               {"acc_mean", acc.empty() ? json(nullptr) : json(mean / double(acc.size()))}};
  return r;  // the runner deletes the journal once this step's part is committed
}

}  // namespace

bool step_needs_model(const std::string& step) { return step != "flops"; }

StepResult run_step(const std::string& step, StepEnv& env, h5::Group g) {
  if (step == "info") return step_info(env, g);
  if (step == "forward") return step_forward(env, g);
  if (step == "generate") return step_generate(env, g);
  if (step == "flops") return step_flops(env, g);
  if (step == "latency") return step_latency(env, g);
  if (step == "routing") return step_routing(env, g);
  if (step == "eval") return step_eval(env, g);
  fail("unknown step '", step, "'");
}

}  // namespace bmh::run
