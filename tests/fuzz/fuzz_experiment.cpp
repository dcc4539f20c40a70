// Experiment files (experiments/runner_config.cpp), as `bmh run --check` reads them.
#include "experiments/runner_config.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = bmh::fuzz::write_scratch("experiment.json", data, size);
  bmh::fuzz::expect_named_errors([&] { (void)bmh::run::load_experiment(path); });
  return 0;
}
