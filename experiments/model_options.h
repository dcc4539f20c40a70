// The model-selection options every command shares: --model DIR | --preset NAME, --seed, --backend, --dtype,
// --expert-act, --router-precision.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "evals/model_loader.h"

namespace bmh {

struct ModelOptions {
  ModelSpec spec;
  std::string expert_act;
  void add_to(CLI::App* app, bool required = true);
  ModelSpec resolve() const;  // applies --expert-act
};

}  // namespace bmh
