// config.json of every family (core/config_*.cpp, through parse_config_json as read_config_json calls it). The
// first byte picks the parser: 0 detects the family from the keys as `bmh` does (model_config_from_json, the rest
// of load_model_config), 1..4 force Zyphra, state-spaces Mamba, transformers Mamba, GPT-NeoX. A parsed config is
// then sized (expected weights, parameter and FLOP counts), which must stay bounded.
#include "core/config_parsers.h"
#include "core/flops.h"
#include "core/model_weights.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int which = data[0] % 5;
  bmh::fuzz::expect_named_errors([&] {
    bmh::ConfigJson c = bmh::parse_config_json(bmh::fuzz::text(data + 1, size - 1), "fuzz/config.json");
    bmh::ModelConfig cfg = which == 0   ? bmh::model_config_from_json(c, "fuzz")
                           : which == 1 ? bmh::parse_zyphra_config(c)
                           : which == 2 ? bmh::parse_mamba_ssm_config(c)
                           : which == 3 ? bmh::parse_hf_mamba_config(c)
                                        : bmh::parse_gpt_neox_config(c);
    (void)bmh::expected_weights(cfg);
    (void)bmh::count_parameters(cfg);
    (void)bmh::flops_per_token(cfg, 2048);
  });
  return 0;
}
