// The experiment runner: plan, resume, run, merge, plot, summarize (see experiments/runner.h).
#include "experiments/runner.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "core/build_info.h"
#include "core/error.h"
#include "core/presets.h"
#include "evals/latency.h"
#include "evals/model_loader.h"

namespace bmh::run {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

void write_text_atomic(const std::string& path, const std::string& text) {
  fs::path p(path);
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail("cannot create ", tmp);
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n <= 0) {
      ::close(fd);
      std::remove(tmp.c_str());
      fail("cannot write ", tmp);
    }
    off += size_t(n);
  }
  ::fsync(fd);
  ::close(fd);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    fail("cannot rename ", tmp, " to ", path, ": ", ec.message());
  }
}

std::string fingerprint(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

namespace {

// Bumped when a step's output layout changes, so old parts rerun.
constexpr int kPartVersion = 1;

std::string step_fingerprint(const ExperimentConfig& e, const ModelEntry& m, const std::string& step) {
  json j = {{"version", kPartVersion}, {"model", m.json}, {"step", step}, {"options", e.step_section(step)},
            {"train_tokens", m.train_tokens}};
  return fingerprint(j.dump());
}

std::optional<json> read_part(const std::string& path, const std::string& fp) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  try {
    json j = json::parse(in);
    if (j.value("fingerprint", "") != fp) return std::nullopt;
    return j;
  } catch (const json::exception&) {
    return std::nullopt;  // a torn or foreign file: the step reruns
  }
}

std::string now_utc() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string fmt_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, s < 10 ? "%.2f s" : "%.1f s", s);
  return buf;
}

json environment() {
  json j;
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  j["host"] = host;
  j["hardware_threads"] = std::thread::hardware_concurrency();
  j["git_hash"] = build_git_hash();
#ifdef BMH_HAVE_CUDA
  j["cuda_build"] = true;
#else
  j["cuda_build"] = false;
#endif
  return j;
}

// Runs the plot scripts over results.h5; a missing Python or matplotlib is reported, not fatal.
void make_plots(const RunOptions& opt, const std::string& out_dir) {
  const std::string h5 = out_dir + "/results.h5";
  for (const char* script : {"plot_routing.py", "plot_latency.py", "plot_flops.py"}) {
    const std::string path = source_dir() + "/scripts/" + script;
    if (!fs::exists(path)) {
      std::printf("plots: %s not found; skipped\n", path.c_str());
      continue;
    }
    const std::string cmd = "'" + opt.python + "' '" + path + "' '" + h5 + "' '" + out_dir + "' 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) {
      std::printf("plots: cannot run %s\n", opt.python.c_str());
      continue;
    }
    char line[1024];
    while (std::fgets(line, sizeof line, p)) std::printf("  %s", line);
    const int rc = pclose(p);
    if (rc != 0)
      std::printf("plots: %s exited with status %d (needs %s with matplotlib and h5py: scripts/setup.sh installs "
                  "them)\n", script, WEXITSTATUS(rc), opt.python.c_str());
  }
}

}  // namespace

int run_experiment(const ExperimentConfig& exp, const RunOptions& opt) {
  const std::string out_dir = (fs::path(opt.out_root) / exp.name).string();
  const std::string parts_dir = out_dir + "/parts";
  fs::create_directories(parts_dir);
  // Temp files of a run that was killed while writing (their finished parts are intact).
  std::vector<fs::path> stale;
  for (const auto& e : fs::recursive_directory_iterator(out_dir))
    if (e.is_regular_file() && e.path().filename().string().find(".tmp.") != std::string::npos) stale.push_back(e.path());
  for (const auto& p : stale) fs::remove(p);

  // The plan: every (model, step) in canonical step order.
  struct Item {
    size_t model;
    std::string step;
  };
  std::vector<Item> plan;
  for (size_t mi = 0; mi < exp.models.size(); ++mi)
    for (const auto& s : step_names())
      if (exp.selected(exp.models[mi], s)) plan.push_back({mi, s});
  // --fresh: forget the finished parts of exactly what this invocation runs.
  if (opt.fresh)
    for (const auto& it : plan)
      for (const char* ext : {".json", ".h5"})
        fs::remove(parts_dir + "/" + exp.models[it.model].name + "/" + it.step + ext);
  std::printf("bmh run %s: %zu models, %zu steps -> %s\n", exp.name.c_str(), exp.models.size(), plan.size(),
              out_dir.c_str());
  if (!exp.description.empty()) std::printf("  %s\n", exp.description.c_str());
  for (const auto& m : exp.models)
    if (m.missing && std::any_of(plan.begin(), plan.end(), [&](const Item& it) { return &exp.models[it.model] == &m; }))
      std::printf("  missing checkpoint: %s: no config.json in %s%s%s; its steps are reported as missing\n",
                  m.name.c_str(), m.spec.dir.c_str(), m.download.empty() ? "" : " (download ",
                  m.download.empty() ? "" : (m.download + ")").c_str());
  std::fflush(stdout);

  std::optional<Tokenizer> tokenizer;
  auto get_tokenizer = [&]() -> const Tokenizer& {
    if (!tokenizer) tokenizer.emplace(Tokenizer::load(default_tokenizer_path()));
    return *tokenizer;
  };

  const auto t_run = Clock::now();
  int failures = 0;
  json statuses = json::object();  // model -> step -> {status, reason?, seconds?}
  size_t k = 0;
  for (size_t mi = 0; mi < exp.models.size(); ++mi) {
    const ModelEntry& m = exp.models[mi];
    if (std::none_of(plan.begin(), plan.end(), [&](const Item& it) { return it.model == mi; })) continue;
    std::unique_ptr<LanguageModel> lm;
    ModelConfig cfg;
    if (!m.missing) cfg = m.spec.preset.empty() ? load_model_config(m.spec.dir, m.spec.config) : preset_config(m.spec.preset);
    if (!m.spec.preset.empty() && m.spec.config.override_expert_act)
      for (auto& b : cfg.blocks)
        if (b.mlp != MlpKind::None) b.ffn.act = m.spec.config.expert_act;
    const std::string work = parts_dir + "/" + m.name;
    fs::create_directories(work);
    for (const auto& it : plan) {
      if (it.model != mi) continue;
      ++k;
      const std::string& step = it.step;
      char head[160];
      std::snprintf(head, sizeof head, "[%2zu/%zu] %-18s %-9s", k, plan.size(), m.name.c_str(), step.c_str());
      if (m.missing) {
        std::printf("%s missing checkpoint\n", head);
        statuses[m.name][step] = {{"status", "missing"}, {"reason", "no checkpoint at " + m.spec.dir}};
        continue;
      }
      const std::string fp = step_fingerprint(exp, m, step);
      const std::string part_json = work + "/" + step + ".json", part_h5 = work + "/" + step + ".h5";
      if (auto done = read_part(part_json, fp); done && fs::exists(part_h5)) {
        std::printf("%s cached (%s)\n", head, done->value("status", "ok").c_str());
        statuses[m.name][step] = {{"status", done->value("status", "ok")}, {"cached", true}};
        std::fflush(stdout);
        continue;
      }
      std::printf("%s ...\n", head);
      std::fflush(stdout);
      const auto t0 = Clock::now();
      StepEnv env{exp, m, cfg,
                  [&]() -> LanguageModel& {
                    if (!lm) {
                      std::printf("         loading %s\n", model_label(m.spec).c_str());
                      std::fflush(stdout);
                      lm = load_model(m.spec);
                    }
                    return *lm;
                  },
                  get_tokenizer, work,
                  [](const std::string& s) {
                    std::printf("         %s\n", s.c_str());
                    std::fflush(stdout);
                  }};
      try {
        StepResult r;
        {
          h5::File f(part_h5);
          r = run_step(step, env, f.root().group(step));
          f.commit();
        }
        const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
        json part = {{"fingerprint", fp}, {"model", m.name}, {"step", step}, {"status", r.status},
                     {"seconds", secs}, {"finished", now_utc()}, {"summary", r.summary}};
        if (!r.reason.empty()) part["reason"] = r.reason;
        write_text_atomic(part_json, part.dump(1));
        if (step == "eval") fs::remove(work + "/eval.journal");
        statuses[m.name][step] = {{"status", r.status}, {"seconds", secs}};
        std::printf("%s %s (%s)%s%s\n", head, r.status.c_str(), fmt_seconds(secs).c_str(),
                    r.reason.empty() ? "" : ": ", r.reason.c_str());
      } catch (const Error& e) {
        ++failures;
        statuses[m.name][step] = {{"status", "error"}, {"reason", e.what()}};
        std::printf("%s FAILED: %s\n", head, e.what());
      }
      std::fflush(stdout);
    }
  }

  // Merge every committed part of this plan into results.json and results.h5.
  json results = {{"experiment", exp.name}, {"description", exp.description}, {"config_file", exp.path},
                  {"config", exp.raw}, {"generated", now_utc()}, {"environment", environment()},
                  {"results_h5", "results.h5"}};
  json& models = results["models"] = json::object();
  {
    h5::File f(out_dir + "/results.h5");
    h5::Group root = f.root();
    root.attr("experiment", exp.name);
    root.attr("description", exp.description);
    root.attr("config", exp.raw.dump());
    root.attr("generated", now_utc());
    std::vector<std::string> order;
    for (const auto& m : exp.models) order.push_back(m.name);
    root.write("models", order, {"models in the experiment's order", "", {"model"}});
    for (const auto& m : exp.models) {
      json mj = {{"label", m.label}, {"arch", m.arch}, {"preset", m.spec.preset}, {"dir", m.spec.dir},
                 {"seed", m.spec.seed}, {"backend", m.spec.backend}, {"dtype", m.spec.dtype},
                 {"note", m.note}, {"download", m.download}, {"missing", m.missing}, {"train_tokens", m.train_tokens}};
      h5::Group mg = root.group(m.name);
      mg.attr("label", m.label);
      mg.attr("arch", m.arch);
      mg.attr("source", m.spec.preset.empty() ? m.spec.dir : "preset " + m.spec.preset);
      mg.attr("backend", m.spec.backend);
      mg.attr("dtype", m.spec.dtype);
      mg.attr("note", m.note);
      mg.attr("missing", int64_t(m.missing));
      mg.attr("train_tokens", m.train_tokens);
      json& steps = mj["steps"] = json::object();
      for (const auto& step : m.steps) {
        json st = statuses.contains(m.name) && statuses[m.name].contains(step) ? statuses[m.name][step] : json::object();
        const std::string part_json = parts_dir + "/" + m.name + "/" + step + ".json";
        auto part = m.missing ? std::nullopt : read_part(part_json, step_fingerprint(exp, m, step));
        if (part) {
          st["status"] = (*part)["status"];
          st["seconds"] = (*part)["seconds"];
          st["finished"] = (*part)["finished"];
          if (part->contains("reason")) st["reason"] = (*part)["reason"];
          st["summary"] = (*part)["summary"];
          if ((*part)["status"] == "ok")
            mg.copy_from(parts_dir + "/" + m.name + "/" + step + ".h5", "/" + step, step);
        } else if (m.missing) {
          st = {{"status", "missing"}, {"reason", "no checkpoint at " + m.spec.dir}};
        } else if (!st.contains("status")) {
          st = {{"status", "not run"}};
        }
        steps[step] = st;
      }
      models[m.name] = mj;
    }
    results["seconds_this_invocation"] = std::chrono::duration<double>(Clock::now() - t_run).count();
    f.commit();
  }
  write_text_atomic(out_dir + "/results.json", results.dump(1) + "\n");
  std::printf("wrote %s/results.json and results.h5\n", out_dir.c_str());
  if (opt.plots) make_plots(opt, out_dir);
  print_summary(results);
  std::fflush(stdout);
  return failures ? 1 : 0;
}

}  // namespace bmh::run
