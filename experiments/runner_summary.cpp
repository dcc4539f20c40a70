// The summary tables `bmh run` prints from its merged results.json.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "experiments/runner.h"

namespace bmh::run {

namespace {

using json = nlohmann::json;

// The summary of a step, or null when it did not finish ok.
const json* summary_of(const json& model, const std::string& step) {
  if (!model.contains("steps") || !model["steps"].contains(step)) return nullptr;
  const json& s = model["steps"][step];
  if (s.value("status", "") != "ok" || !s.contains("summary")) return nullptr;
  return &s["summary"];
}

std::string status_of(const json& model, const std::string& step) {
  if (!model.contains("steps") || !model["steps"].contains(step)) return "";
  return model["steps"][step].value("status", "");
}

std::string num(const json* s, const char* key, const char* f, double scale = 1) {
  if (!s || !s->contains(key) || !(*s)[key].is_number()) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, (*s)[key].get<double>() * scale);
  return buf;
}

// "-" for not run, "n/a" for skipped, "missing" for a missing checkpoint, "error" for a failure.
std::string cell(const json& model, const std::string& step, const std::string& value) {
  const std::string st = status_of(model, step);
  if (st == "ok") return value;
  if (st == "skipped") return "n/a";
  if (st.empty()) return "-";
  return st;
}

void row(const std::vector<std::string>& cells, const std::vector<int>& widths) {
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) {
    char buf[128];
    std::snprintf(buf, sizeof buf, i == 0 ? "%-*s" : " %*s", widths[i], cells[i].c_str());
    line += buf;
  }
  std::printf("%s\n", line.c_str());
}

}  // namespace

void print_summary(const json& results) {
  const json& models = results["models"];
  std::printf("\nSummary: %s\n", results.value("experiment", "").c_str());
  const std::vector<std::string> head = {"model", "arch", "params M", "active M", "act-emb M", "fwd ms/tok", "ppl",
                                         "gen ms/tok", "parity", "GFLOP/tok", "prefill ms", "decode ms/tok",
                                         "route CV", "CV last", "acc mean"};
  const std::vector<int> w = {18, 15, 9, 9, 9, 10, 9, 10, 8, 9, 10, 13, 8, 8, 8};
  row(head, w);
  std::string prefill_len;
  for (auto it = models.begin(); it != models.end(); ++it) {
    const json& m = it.value();
    const json *info = summary_of(m, "info"), *fwd = summary_of(m, "forward"), *gen = summary_of(m, "generate"),
               *fl = summary_of(m, "flops"), *lat = summary_of(m, "latency"), *rt = summary_of(m, "routing"),
               *ev = summary_of(m, "eval");
    const json* params = info ? info : fl;
    std::string prefill = "-";
    if (lat && (*lat)["prefill"].is_array() && !(*lat)["prefill"].empty()) {
      const json& last = (*lat)["prefill"].back();
      prefill = num(&last, "ms_median", "%.2f");
      prefill_len = std::to_string(last.value("length", 0));
    }
    std::string decode = lat ? num(&(*lat)["decode_ms_per_token"], "median", "%.3f") : "-";
    std::string parity = gen ? ((*gen).value("parity_ok", false) ? "ok" : "FAIL") : "-";
    const std::string params_step = info ? "info" : "flops";
    row({it.key(), m.value("arch", ""), cell(m, params_step, num(params, "params_total", "%.3f", 1e-6)),
         cell(m, params_step, num(params, "params_active", "%.3f", 1e-6)),
         cell(m, "info", num(info, "params_active_non_embedding", "%.4f", 1e-6)),
         cell(m, "forward", num(fwd, "ms_per_token", "%.3f")), cell(m, "forward", num(fwd, "perplexity", "%.0f")),
         cell(m, "generate", num(gen, "ms_per_token", "%.2f")), cell(m, "generate", parity),
         cell(m, "flops", num(fl, "forward_flops_per_token", "%.4f", 1e-9)), cell(m, "latency", prefill),
         cell(m, "latency", decode), cell(m, "routing", num(rt, "cv_mean", "%.3f")),
         cell(m, "routing", num(rt, "cv_last", "%.3f")), cell(m, "eval", num(ev, "acc_mean", "%.3f"))},
        w);
  }
  std::printf("  act-emb: active parameters without embedding and head; fwd: one forward over bundled text (ppl: its "
              "perplexity);\n  gen: greedy decoding incl. prefill, parity = decode logits vs full forward; GFLOP/tok: analytic forward FLOPs per token");
  for (auto it = models.begin(); it != models.end(); ++it)
    if (const json* fl = summary_of(it.value(), "flops")) {
      std::printf(" at context %d", (*fl).value("reference_context", 0));
      break;
    }
  if (!prefill_len.empty()) std::printf("; prefill ms: %s-token prompt (median)", prefill_len.c_str());
  std::printf("; route CV: load imbalance mean over MoE layers\n");

  // Zero-shot accuracy per task.
  std::vector<std::string> tasks;
  for (auto it = models.begin(); it != models.end(); ++it)
    if (const json* ev = summary_of(it.value(), "eval"))
      for (auto t = (*ev)["tasks"].begin(); t != (*ev)["tasks"].end(); ++t)
        if (std::find(tasks.begin(), tasks.end(), t.key()) == tasks.end()) tasks.push_back(t.key());
  bool any_eval = false;
  for (auto it = models.begin(); it != models.end(); ++it) any_eval |= !status_of(it.value(), "eval").empty();
  if (any_eval) {
    const json& cfg = results["config"];
    const int64_t limit = cfg.contains("eval") && cfg["eval"].contains("limit") ? cfg["eval"]["limit"].get<int64_t>() : 0;
    std::printf("\nZero-shot (acc; lambada: acc, ppl)%s\n",
                limit > 0 ? (" on the first " + std::to_string(limit) + " documents of each task").c_str()
                          : " on the full test sets");
    std::vector<std::string> h = {"model"};
    std::vector<int> ww = {18};
    for (const auto& t : tasks) {
      h.push_back(t.size() > 13 ? t.substr(0, 13) : t);
      ww.push_back(13);
    }
    row(h, ww);
    for (auto it = models.begin(); it != models.end(); ++it) {
      const json& m = it.value();
      std::vector<std::string> r = {it.key()};
      const json* ev = summary_of(m, "eval");
      for (const auto& t : tasks) {
        std::string v = "-";
        if (ev && (*ev)["tasks"].contains(t)) {
          const json& mt = (*ev)["tasks"][t]["metrics"];
          v = mt.contains("acc") ? num(&mt["acc"], "value", "%.3f") : "-";
          if (mt.contains("perplexity")) v += " " + num(&mt["perplexity"], "value", "%.3g");
        }
        r.push_back(cell(m, "eval", v));
      }
      row(r, ww);
    }
  }
  for (auto it = models.begin(); it != models.end(); ++it) {
    const std::string note = it.value().value("note", "");
    if (!note.empty()) std::printf("  %s: %s\n", it.key().c_str(), note.c_str());
  }
}

}  // namespace bmh::run
