// The runner's train step: bmh train (train/trainer.h) of one model entry with the experiment's "train"
// settings, into parts/<model>/train/ (its checkpoint is the model every later step of that entry loads).
#include <filesystem>

#include "core/error.h"
#include "evals/model_loader.h"
#include "experiments/runner.h"
#include "train/trainer.h"

namespace bmh::run {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string trained_checkpoint_dir(const std::string& work_dir) { return work_dir + "/train/checkpoint"; }

StepResult step_train(StepEnv& env, h5::Group g) {
  const ModelEntry& m = env.model;
  json j = env.exp.train;
  if (!m.config_file.empty()) j["config"] = m.json["config"];  // resolved against the source dir below
  else if (!m.spec.preset.empty()) j["preset"] = m.spec.preset;
  else j["init_from"] = m.spec.dir;
  if (m.json.contains("vocab_size")) j["vocab_size"] = m.json["vocab_size"];
  j["seed"] = m.spec.seed;
  j["dtype"] = m.spec.dtype;
  if (m.spec.backend != "cpu") fail("training runs on the cpu reference; model '", m.name, "' asks for ", m.spec.backend);
  train::TrainConfig c = train::train_config_from_json(j, env.exp.path + ": train (" + m.name + ")", source_dir());
  train::TokenData data = train::TokenData::load(c.data);
  train::TrainRunOptions opt;
  opt.out_dir = env.work_dir + "/train";
  opt.restart_on_mismatch = true;  // the step's fingerprint already decided that this run is wanted
  opt.say = env.say;
  const std::string dtype = c.dtype;
  train::TrainOutcome t = train::run_training(
      c, data, [&](const ModelConfig& cfg, const TensorMap& w) { return make_trainable(cfg, w, "cpu", dtype); }, opt);
  if (!t.summary.value("finished", false)) fail("training of ", m.name, " stopped before its last step");
  train::write_training_h5(t, g);
  g.attr("config", c.json.dump());
  StepResult r;
  r.summary = t.summary;
  r.summary["seed"] = m.spec.seed;
  r.summary["checkpoint"] = fs::relative(trained_checkpoint_dir(env.work_dir), env.work_dir + "/../..").string();
  return r;
}

}  // namespace bmh::run
