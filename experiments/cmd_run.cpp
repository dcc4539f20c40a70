// bmh run [CONFIG.json]: the harness's main job. Without a file it runs experiments/default.json, the embedded
// default (tiny presets of the four architectures, bundled text and tasks, no download).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "experiments/command.h"
#include "experiments/runner.h"

namespace bmh {
namespace {

struct RunArgs {
  std::string config;
  run::LoadOptions load;
  run::RunOptions run;
  std::string models_csv, steps_csv;
  std::string summary_of;
  bool no_plots = false;
  bool check_only = false;
};

std::vector<std::string> split_csv(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ','))
    if (!x.empty()) out.push_back(x);
  return out;
}

void run_run(RunArgs& a) {
  if (!a.summary_of.empty()) {
    std::ifstream in(a.summary_of);
    if (!in) fail("cannot open ", a.summary_of);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      fail(a.summary_of, ": invalid JSON: ", e.what());
    }
    run::print_summary(j);
    return;
  }
  std::string path = a.config.empty() ? run::source_dir() + "/experiments/default.json" : a.config;
  a.load.only_models = split_csv(a.models_csv);
  a.load.only_steps = split_csv(a.steps_csv);
  run::ExperimentConfig exp = run::load_experiment(path, a.load);  // every check before anything runs
  if (a.check_only) {
    std::printf("%s: ok (%zu models)\n", path.c_str(), exp.models.size());
    for (const auto& m : exp.models) {
      std::string steps;
      for (const auto& s : m.steps)
        if (exp.selected(m, s)) steps += (steps.empty() ? "" : ",") + s;
      if (steps.empty()) continue;
      std::printf("  %-20s %-16s %s%s [%s]\n", m.name.c_str(), m.arch.c_str(),
                  m.spec.preset.empty() ? m.spec.dir.c_str() : ("preset " + m.spec.preset).c_str(),
                  m.missing ? " (MISSING)" : "", steps.c_str());
    }
    return;
  }
  a.run.plots = !a.no_plots;
  if (run::run_experiment(exp, a.run) != 0)
    fail("some steps failed (listed above); finished steps are kept: rerun to retry the others");
}

void add_run_command(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  auto* sub = app.add_subcommand(
      "run", "run an experiment (models x steps: info, forward, generate, flops, latency, routing, eval) into "
             "results/<name>/; without CONFIG, the embedded default (no download, a few minutes on a CPU)");
  sub->add_option("config", args->config, "experiment file (default: experiments/default.json)");
  sub->add_option("--models-dir", args->load.models_dir,
                  "folder of downloaded checkpoints, substituted for ${models_dir} in paper-*.json");
  sub->add_option("--out", args->run.out_root, "results root; the run writes <out>/<name>/")->default_val("results");
  sub->add_option("--backend", args->load.backend, "override every model's backend")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  sub->add_option("--router-precision", args->load.router_precision,
                  "override every model's router arithmetic: fp32 | model | bf16 | fp16 (see bmh forward --help)")
      ->check(CLI::IsMember({"fp32", "model", "bf16", "fp16"}));
  sub->add_option("--dtype", args->load.dtype, "override every model's dtype (cpu: fp32|fp64; cuda: fp32|bf16|fp16)")
      ->check(CLI::IsMember({"fp32", "fp64", "bf16", "fp16"}));
  sub->add_option("--models", args->models_csv, "only these models (comma-separated names from the file)");
  sub->add_option("--steps", args->steps_csv, "only these steps (comma-separated)");
  sub->add_flag("--fresh", args->run.fresh,
                "rerun the selected steps even where an earlier run finished them (default: resume)");
  sub->add_flag("--no-plots", args->no_plots, "do not run scripts/plot_*.py");
  sub->add_option("--python", args->run.python, "Python with matplotlib and h5py for the plots")
      ->default_val("/usr/bin/python3");
  sub->add_flag("--check", args->check_only, "check the experiment file and list what would run, then stop");
  sub->add_option("--summary", args->summary_of, "print the summary tables of an existing results.json and stop");
  sub->callback([args] { run_run(*args); });
}

const bool registered = register_command(&add_run_command);

}  // namespace
}  // namespace bmh
