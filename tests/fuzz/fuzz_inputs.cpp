// The files `bmh forward/generate` read besides the model: --inputs (input_ids) and --force-routes
// (route.{i}.expert), checked against the blackmamba-tiny fixture's config (experiments/route_io.cpp).
#include "core/model_config.h"
#include "experiments/route_io.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bmh::ModelConfig cfg = bmh::load_model_config(std::string(BMH_TEST_DIR) + "/fixtures/blackmamba-tiny");
  const std::string path = bmh::fuzz::write_scratch("inputs.safetensors", data, size);
  bmh::fuzz::expect_named_errors([&] {
    bmh::Tensor ids = bmh::read_input_ids(path);
    bmh::check_input_ids(ids, cfg.vocab_size, path);
    (void)bmh::read_forced_routes(path, cfg);
  });
  return 0;
}
