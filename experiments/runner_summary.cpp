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

// The equal-FLOPs training table: every trained model, then each architecture's mean over its seeds, and which
// architecture reached the lowest held-out loss for the training FLOPs spent.
void print_training(const json& models) {
  bool any = false;
  for (auto it = models.begin(); it != models.end(); ++it) any |= !status_of(it.value(), "train").empty();
  if (!any) return;
  std::printf("\nTraining (held-out next-token loss in nats; H1 = unigram entropy of the held-out text)\n");
  const std::vector<int> w = {18, 15, 5, 9, 10, 6, 9, 11, 7, 6, 9, 7};
  row({"model", "arch", "seed", "act-emb M", "train GFLOP", "steps", "held-out", "h-o (train)", "H1", "<H1", "load CV",
       "sec"}, w);
  struct Arch {
    std::vector<double> loss, flops;
    double h1 = 0;
  };
  std::vector<std::pair<std::string, Arch>> archs;
  for (auto it = models.begin(); it != models.end(); ++it) {
    const json& m = it.value();
    const json* t = summary_of(m, "train");
    std::string cv = "-";
    if (t && (*t)["load_cv_all"].is_array() && !(*t)["load_cv_all"].empty()) {
      double s = 0;
      for (const auto& x : (*t)["load_cv_all"]) s += x.get<double>();
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.3f", s / double((*t)["load_cv_all"].size()));
      cv = buf;
    }
    const std::string below = t ? ((*t).value("below_unigram_entropy", false) ? "yes" : "NO") : "-";
    row({it.key(), m.value("arch", ""), t ? std::to_string((*t).value("seed", 0)) : "-",
         cell(m, "train", num(t, "params_active_non_embedding", "%.4f", 1e-6)),
         cell(m, "train", num(t, "training_flops", "%.2f", 1e-9)), cell(m, "train", num(t, "steps", "%.0f")),
         cell(m, "train", num(t, "final_val_loss", "%.4f")),
         cell(m, "train", t && (*t).value("final_val_loss_train_routing", -1.0) >= 0
                              ? num(t, "final_val_loss_train_routing", "%.4f") : "-"),
         cell(m, "train", num(t, "val_unigram_entropy", "%.4f")),
         cell(m, "train", below), cell(m, "train", cv), cell(m, "train", num(t, "seconds", "%.1f"))},
        w);
    if (!t) continue;
    const std::string a = m.value("arch", "other");
    auto f = std::find_if(archs.begin(), archs.end(), [&](const auto& p) { return p.first == a; });
    if (f == archs.end()) {
      archs.push_back({a, {}});
      f = archs.end() - 1;
    }
    f->second.loss.push_back((*t).value("final_val_loss", 0.0));
    f->second.flops.push_back((*t).value("training_flops", 0.0));
    f->second.h1 = (*t).value("val_unigram_entropy", 0.0);
  }
  if (archs.empty()) return;
  std::printf("  act-emb: active parameters outside the embedding and head (matched across architectures); held-out: "
              "with the inference\n  routing (argmax of the sigmoid, switch_mlp.py; softmax top-k for Mixtral/Jamba); "
              "h-o (train): MoE models routed as\n  in training (Sinkhorn over the batch; softmax top-k routes the "
              "same in both);\n  load CV: std/mean of the tokens per expert over the "
              "whole run, mean over MoE layers\n");
  std::printf("\nPer architecture (mean over seeds, [min, max]):\n");
  const std::pair<std::string, Arch>* best = nullptr;
  double best_mean = 0;
  for (const auto& [a, s] : archs) {
    double mean = 0, lo = s.loss[0], hi = s.loss[0], fl = 0;
    for (size_t i = 0; i < s.loss.size(); ++i) {
      mean += s.loss[i];
      fl += s.flops[i];
      lo = std::min(lo, s.loss[i]);
      hi = std::max(hi, s.loss[i]);
    }
    mean /= double(s.loss.size());
    fl /= double(s.loss.size());
    std::printf("  %-16s held-out %.4f [%.4f, %.4f] over %zu seed%s at %.3g training FLOPs (%.4f below H1)\n",
                a.c_str(), mean, lo, hi, s.loss.size(), s.loss.size() > 1 ? "s" : "", fl, s.h1 - mean);
    if (!best || mean < best_mean) {
      best = &*std::find_if(archs.begin(), archs.end(), [&](const auto& p) { return p.first == a; });
      best_mean = mean;
    }
  }
  std::printf("Lowest held-out loss per training FLOP (equal FLOPs): %s (%.4f nats)\n", best->first.c_str(), best_mean);
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
  print_training(models);
  for (auto it = models.begin(); it != models.end(); ++it) {
    const std::string note = it.value().value("note", "");
    if (!note.empty()) std::printf("  %s: %s\n", it.key().c_str(), note.c_str());
  }
}

}  // namespace bmh::run
