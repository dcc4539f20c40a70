// tokenizer.json (core/tokenizer_config.cpp and the BPE model it builds, through Tokenizer::from_json as
// Tokenizer::load calls it), then an encode/decode round.
#include "core/tokenizer.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bmh::fuzz::expect_named_errors([&] {
    bmh::Tokenizer tok = bmh::Tokenizer::from_json(bmh::fuzz::text(data, size), "tokenizer.json");
    std::vector<int32_t> ids = tok.encode("hello world <|endoftext|> héllo\n  12");
    (void)tok.decode(ids);
  });
  return 0;
}
