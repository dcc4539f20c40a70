#include "evals/results_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/build_info.h"
#include "core/error.h"
#include "evals/h5_writer.h"
#include "evals/journal.h"

namespace bmh::eval {

namespace {

// The yaml fields of each task (lm_eval/tasks/<task>/*.yaml at v0.4.9.2), echoed into "configs".
struct TaskYaml {
  const char* dataset_path;
  const char* dataset_name;
  const char* split_key;
  const char* split;
  const char* doc_to_text;
  const char* doc_to_target;
  const char* doc_to_choice;   // nullptr: none
};

TaskYaml yaml_of(const std::string& task) {
  if (task == "arc_easy" || task == "arc_challenge")
    return {"allenai/ai2_arc", task == "arc_easy" ? "ARC-Easy" : "ARC-Challenge", "test_split", "test",
            "Question: {{question}}\nAnswer:", "{{choices.label.index(answerKey)}}", "{{choices.text}}"};
  if (task == "openbookqa")
    return {"openbookqa", "main", "test_split", "test", "question_stem",
            "{{choices.label.index(answerKey.lstrip())}}", "{{choices.text}}"};
  if (task == "piqa")
    return {"baber/piqa", nullptr, "validation_split", "validation", "Question: {{goal}}\nAnswer:", "label",
            "{{[sol1, sol2]}}"};
  if (task == "winogrande")
    return {"winogrande", "winogrande_xl", "validation_split", "validation", "preprocess_winogrande.doc_to_text",
            "preprocess_winogrande.doc_to_target", "preprocess_winogrande.doc_to_choice"};
  if (task == "hellaswag")
    return {"Rowan/hellaswag", nullptr, "validation_split", "validation", "{{query}}", "{{label}}", "choices"};
  if (task == "lambada_openai")
    return {"EleutherAI/lambada_openai", "default", "test_split", "test", "{{text.split(' ')[:-1]|join(' ')}}",
            "{{' '+text.split(' ')[-1]}}", nullptr};
  fail("no yaml description for task ", task);
}

const char* aggregation_of(const std::string& metric) { return metric == "perplexity" ? "perplexity" : "mean"; }

// Paths under the source tree are written relative to it, so committed results do not name a machine.
std::string display_path(const std::string& p) {
  const std::string root = std::string(BMH_SOURCE_DIR) + "/";
  return p.compare(0, root.size(), root) == 0 ? p.substr(root.size()) : p;
}

nlohmann::ordered_json metric_number(double v) {
  if (std::isfinite(v)) return v;
  return std::isnan(v) ? "NaN" : (v > 0 ? "Infinity" : "-Infinity");
}

}  // namespace

std::string source_git_hash() { return build_git_hash(); }

// How the requests were scored: packing, prefix sharing (tokens computed over tokens needed scored whole, per task
// and in all) and the packing check (a sample re-scored alone).
static nlohmann::ordered_json scoring_json(const std::vector<TaskResult>& results, const RunInfo& info) {
  using json = nlohmann::ordered_json;
  const ScoreStats& s = info.score;
  auto ratio = [](int64_t a, int64_t b) { return b > 0 ? double(a) / double(b) : 1.0; };
  json tasks = json::object();
  for (const TaskResult& tr : results)
    tasks[tr.task.name] = {{"tokens_whole", tr.tokens_whole}, {"tokens_computed", tr.tokens_shared},
                           {"computed_over_whole", ratio(tr.tokens_shared, tr.tokens_whole)}};
  json ranks = json::array();  // one entry per MPI rank (one for a plain run)
  for (const ScoreStats::RankShare& r : s.ranks)
    ranks.push_back({{"calls", r.calls}, {"requests", r.requests}, {"tokens", r.tokens},
                     {"busy_seconds", r.busy_seconds}});
  return {{"token_budget", info.token_budget},
          {"deterministic", info.deterministic},
          {"share_prefixes", info.share_prefixes},
          {"calls", s.calls},
          {"computed_requests", s.computed_requests},
          {"tokens_whole", s.tokens_whole},
          {"tokens_computed", s.tokens_computed},
          {"computed_over_whole", ratio(s.tokens_computed, s.tokens_whole)},
          {"seconds", s.seconds},
          {"requests_per_second", s.seconds > 0 ? double(s.computed_requests) / s.seconds : 0.0},
          {"tasks", tasks},
          {"ranks", ranks},
          {"budget_check", {{"against", "each request re-scored alone: a call of its own, no shared prefix"},
                            {"requests", s.budget_check_requests},
                            {"max_abs_loglikelihood_diff", s.budget_check_max_abs_diff},
                            {"is_greedy_flips", s.budget_check_greedy_flips}}}};
}

nlohmann::ordered_json results_json(const std::vector<TaskResult>& results, const RunInfo& info) {
  using json = nlohmann::ordered_json;
  json j;
  json res = json::object(), groups = json::object(), configs = json::object(), versions = json::object(),
       nshot = json::object(), hib = json::object(), nsamples = json::object();
  json files = json::object(), formats = json::object(), notes = json::object();
  for (const TaskResult& tr : results) {
    const std::string& name = tr.task.name;
    json r;
    r["alias"] = name;
    json h = json::object();
    for (const MetricValue& m : tr.metrics) {
      r[m.name + ",none"] = metric_number(m.value);
      r[m.name + "_stderr,none"] = m.has_stderr ? metric_number(m.stderr_) : json("N/A");
      h[m.name] = m.higher_is_better;
    }
    res[name] = r;
    groups[name] = json::array();
    TaskYaml y = yaml_of(name);
    json c;
    c["task"] = name;
    c["dataset_path"] = y.dataset_path;
    if (y.dataset_name) c["dataset_name"] = y.dataset_name;
    c[y.split_key] = y.split;
    c["doc_to_text"] = y.doc_to_text;
    c["doc_to_target"] = y.doc_to_target;
    if (y.doc_to_choice) c["doc_to_choice"] = y.doc_to_choice;
    c["description"] = "";
    c["target_delimiter"] = " ";
    c["fewshot_delimiter"] = "\n\n";
    c["num_fewshot"] = 0;
    json ml = json::array();
    for (const MetricValue& m : tr.metrics)
      ml.push_back({{"metric", m.name}, {"aggregation", aggregation_of(m.name)}, {"higher_is_better", m.higher_is_better}});
    c["metric_list"] = ml;
    c["output_type"] = to_string(tr.task.output_type);
    c["repeats"] = 1;
    c["should_decontaminate"] = true;
    c["metadata"] = {{"version", tr.task.version}};
    configs[name] = c;
    versions[name] = tr.task.version;
    nshot[name] = 0;
    hib[name] = h;
    nsamples[name] = {{"original", tr.n_original}, {"effective", int64_t(tr.docs.size())}};
    json fl = json::array();
    for (const DataFile& f : tr.task.files) fl.push_back({{"path", display_path(f.path)}, {"sha256", f.sha256}});
    files[name] = fl;
    formats[name] = tr.task.format;
    if (!tr.task.note.empty()) notes[name] = tr.task.note;
  }
  j["results"] = res;
  j["group_subtasks"] = groups;
  j["configs"] = configs;
  j["versions"] = versions;
  j["n-shot"] = nshot;
  j["higher_is_better"] = hib;
  j["n-samples"] = nsamples;
  j["config"] = {{"model", info.model},
                 {"model_args", info.model_args},
                 {"batch_size", "token-budget " + std::to_string(info.token_budget)},
                 {"batch_sizes", json::array()},
                 {"device", info.backend},
                 {"dtype", info.dtype},
                 {"use_cache", nullptr},
                 {"limit", info.limit > 0 ? json(info.limit) : json(nullptr)},
                 {"bootstrap_iters", info.bootstrap_iters},
                 {"gen_kwargs", nullptr}};
  j["git_hash"] = source_git_hash();
  j["date"] = info.start_time;
  j["total_evaluation_time_seconds"] = std::to_string(info.seconds);
  json stages = json::object();
  for (const auto& [stage, s] : info.stage_seconds) stages[stage] = s;
  j["bmh"] = {{"harness", "bmh eval (lm-evaluation-harness v0.4.9.2 task definitions, reimplemented)"},
              {"tokenizer", display_path(info.tokenizer)},
              {"tokenizer_sha256", info.tokenizer_sha256},
              {"unique_requests", info.unique_requests},
              {"requests_per_second", info.seconds > 0 ? double(info.unique_requests) / info.seconds : 0.0},
              {"max_length", info.max_length},
              {"stage_seconds", stages},
              {"scoring", scoring_json(results, info)},
              {"data_files", files},
              {"task_formats", formats},
              {"notes", notes},
              {"python_sum", "CPython >= 3.12 builtin sum() (Neumaier); older Pythons may differ in the last bits"}};
  return j;
}

void write_file_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail("cannot create ", tmp);
  size_t off = 0;
  while (off < text.size()) {
    ssize_t w = ::write(fd, text.data() + off, text.size() - off);
    if (w < 0) {
      ::close(fd);
      std::remove(tmp.c_str());
      fail("writing ", tmp);
    }
    off += size_t(w);
  }
  ::fsync(fd);
  ::close(fd);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    fail("cannot rename ", tmp, " to ", path, ": ", ec.message());
  }
  fsync_dir_of(path);
}

static void write_requests_h5(const std::string& path, const std::vector<TaskResult>& results, const RunInfo& info) {
  h5::File f(path);
  h5::Group root = f.root();
  root.attr("model", info.model);
  root.attr("description", "bmh eval: every lm-eval loglikelihood request and every document, per task");
  for (const TaskResult& tr : results) {
    h5::Group g = root.group(tr.task.name);
    g.attr("format", tr.task.format);
    g.attr("output_type", to_string(tr.task.output_type));
    if (!tr.task.note.empty()) g.attr("note", tr.task.note);
    h5::Group rq = g.group("requests");
    std::vector<int64_t> doc_id, idx, ctx_len, cont_len, trunc, greedy, offsets{0}, cont_ids;
    std::vector<double> ll;
    std::vector<std::string> ctx, cont;
    for (const RequestRecord& r : tr.requests) {
      doc_id.push_back(r.doc_id);
      idx.push_back(r.idx);
      ctx.push_back(r.text.context);
      cont.push_back(r.text.continuation);
      ctx_len.push_back(int64_t(r.tokens.context.size()) - r.n_truncated);
      cont_len.push_back(int64_t(r.tokens.continuation.size()));
      trunc.push_back(r.n_truncated);
      for (int32_t t : r.tokens.continuation) cont_ids.push_back(t);
      offsets.push_back(int64_t(cont_ids.size()));
      ll.push_back(r.result.logprob);
      greedy.push_back(r.result.is_greedy ? 1 : 0);
    }
    rq.write("doc_id", doc_id, {"document index in the task file", "", {"request"}});
    rq.write("idx", idx, {"Instance.idx: the choice this request scores", "", {"request"}});
    rq.write("context", ctx, {"Instance.arguments[0]", "", {"request"}});
    rq.write("continuation", cont, {"Instance.arguments[1]", "", {"request"}});
    rq.write("context_length", ctx_len, {"context tokens the model saw (after left truncation)", "tokens", {"request"}});
    rq.write("continuation_length", cont_len, {"continuation tokens scored", "tokens", {"request"}});
    rq.write("truncated", trunc, {"context tokens dropped from the left (max length)", "tokens", {"request"}});
    rq.write("continuation_offsets", offsets,
             {"request i's continuation ids are continuation_ids[offsets[i]:offsets[i+1]]", "", {"request+1"}});
    rq.write("continuation_ids", cont_ids, {"continuation token ids, all requests concatenated", "", {"token"}});
    rq.write("loglikelihood", ll, {"sum of log-softmax of the continuation tokens", "nats", {"request"}});
    rq.write("is_greedy", greedy, {"every continuation token is its position's argmax", "", {"request"}});
    h5::Group dg = g.group("docs");
    std::vector<int64_t> did, gold, pred, pred_norm, dgreedy;
    std::vector<double> acc, acc_norm, dll;
    for (const DocRecord& d : tr.docs) {
      did.push_back(d.doc_id);
      gold.push_back(d.gold);
      pred.push_back(d.pred);
      pred_norm.push_back(d.pred_norm);
      acc.push_back(d.acc);
      acc_norm.push_back(d.acc_norm);
      dll.push_back(d.loglikelihood);
      dgreedy.push_back(d.is_greedy ? 1 : 0);
    }
    dg.write("doc_id", did, {"document index in the task file", "", {"doc"}});
    dg.write("acc", acc, {"per-document acc item", "", {"doc"}});
    if (tr.task.output_type == OutputType::MultipleChoice) {
      dg.write("gold", gold, {"gold choice index", "", {"doc"}});
      dg.write("chosen", pred, {"argmax of the choices' loglikelihoods", "", {"doc"}});
      dg.write("chosen_norm", pred_norm, {"argmax of loglikelihood / len(choice) in characters", "", {"doc"}});
      dg.write("acc_norm", acc_norm, {"per-document acc_norm item", "", {"doc"}});
    } else {
      dg.write("loglikelihood", dll, {"loglikelihood of the target (perplexity item)", "nats", {"doc"}});
      dg.write("is_greedy", dgreedy, {"the target is the greedy continuation (acc item)", "", {"doc"}});
    }
  }
  f.commit();
}

void write_requests_jsonl(const std::string& out_dir, const std::vector<TaskResult>& results) {
  std::string text;
  for (const TaskResult& tr : results)
    for (const RequestRecord& r : tr.requests) {
      const std::vector<int32_t>& ctx = r.tokens.context;
      nlohmann::ordered_json j;
      j["task"] = tr.task.name;
      j["doc_id"] = r.doc_id;
      j["idx"] = r.idx;
      j["context_ids"] = std::vector<int32_t>(ctx.begin() + std::min<size_t>(size_t(r.n_truncated), ctx.size()), ctx.end());
      j["continuation_ids"] = r.tokens.continuation;
      text += j.dump() + "\n";
    }
  write_file_atomic(out_dir + "/requests.jsonl", text);
}

void write_results(const std::string& out_dir, const std::vector<TaskResult>& results, const RunInfo& info) {
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) fail("cannot create ", out_dir, ": ", ec.message());
  write_requests_h5(out_dir + "/requests.h5", results, info);
  write_file_atomic(out_dir + "/results.json", results_json(results, info).dump(2) + "\n");
}

std::string results_table(const std::vector<TaskResult>& results) {
  std::string out = "|    Tasks     |Version|Filter|n-shot|  Metric  |   |  Value  |   | Stderr |\n"
                    "|--------------|------:|------|-----:|----------|---|--------:|---|-------:|\n";
  char line[256];
  for (const TaskResult& tr : results) {
    bool first = true;
    for (const MetricValue& m : tr.metrics) {
      std::string se = m.has_stderr ? "" : "   N/A";
      if (m.has_stderr) {
        char b[32];
        std::snprintf(b, sizeof b, "%.4f", m.stderr_);
        se = b;
      }
      std::snprintf(line, sizeof line, "|%-14s|%7s|%-6s|%6s|%-10s|%s  |%9.4f|±  |%8s|\n",
                    first ? tr.task.name.c_str() : "", first ? "1" : "", first ? "none" : "", first ? "0" : "",
                    m.name.c_str(), m.higher_is_better ? "↑" : "↓", m.value, se.c_str());
      out += line;
      first = false;
    }
  }
  return out;
}

}  // namespace bmh::eval
