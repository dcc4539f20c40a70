// The files `bmh forward/generate` read besides the model: --inputs (input_ids) and --force-routes
// (route.{i}.expert), checked against the blackmamba-tiny fixture's config (experiments/route_io.cpp). One parse
// feeds both checks, as read_input_ids and read_forced_routes each parse the file and then run them.
#include "core/model_config.h"
#include "experiments/route_io.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bmh::ModelConfig cfg = bmh::load_model_config(std::string(BMH_TEST_DIR) + "/fixtures/blackmamba-tiny");
  const std::string path = "inputs.safetensors";
  bmh::fuzz::expect_named_errors([&] {
    bmh::Checkpoint ck = bmh::parse_safetensors(data, size, bmh::fuzz::borrowed(data), path);
    bmh::Tensor ids = bmh::input_ids_of(ck, path);
    bmh::check_input_ids(ids, cfg.vocab_size, path);
    (void)bmh::forced_routes_of(ck, path, cfg);
  });
  return 0;
}
