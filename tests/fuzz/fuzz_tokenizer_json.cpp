// tokenizer.json (core/tokenizer_config.cpp and the BPE model it builds), then an encode/decode round.
#include "core/tokenizer.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = bmh::fuzz::write_scratch("tokenizer.json", data, size);
  bmh::fuzz::expect_named_errors([&] {
    bmh::Tokenizer tok = bmh::Tokenizer::load(path);
    std::vector<int32_t> ids = tok.encode("hello world <|endoftext|> héllo\n  12");
    (void)tok.decode(ids);
  });
  return 0;
}
