// A whole torch.save zip archive (core/torch_zip.cpp + core/pickle.cpp, through parse_torch_zip as read_torch_zip
// calls it), then every tensor's values.
#include "core/checkpoint.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bmh::fuzz::expect_named_errors([&] {
    bmh::Checkpoint ck = bmh::parse_torch_zip(data, size, "pytorch_model.bin");
    for (const auto& [name, t] : ck.tensors)
      if (bmh::dtype_is_float(t.dtype())) (void)t.to_f64();
  });
  return 0;
}
