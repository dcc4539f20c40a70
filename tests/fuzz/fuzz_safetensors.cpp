// safetensors header + data (core/safetensors.cpp, through parse_safetensors as read_safetensors calls it), then
// every tensor's values.
#include "core/checkpoint.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bmh::fuzz::expect_named_errors([&] {
    bmh::Checkpoint ck = bmh::parse_safetensors(data, size, bmh::fuzz::borrowed(data), "model.safetensors");
    double sum = 0;
    for (const auto& [name, t] : ck.tensors)
      if (bmh::dtype_is_float(t.dtype()))
        for (double v : t.to_f64()) sum += v;
      else
        for (int64_t v : t.to_i64()) sum += double(v);
    if (sum == 1234.5) std::fputs("", stderr);  // keeps the reads
  });
  return 0;
}
