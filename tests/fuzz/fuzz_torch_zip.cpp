// A whole torch.save zip archive (core/torch_zip.cpp + core/pickle.cpp), then every tensor's values.
#include "core/checkpoint.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = bmh::fuzz::write_scratch("pytorch_model.bin", data, size);
  bmh::fuzz::expect_named_errors([&] {
    bmh::Checkpoint ck = bmh::read_torch_zip(path);
    for (const auto& [name, t] : ck.tensors)
      if (bmh::dtype_is_float(t.dtype())) (void)t.to_f64();
  });
  return 0;
}
