// The input is data.pkl of a torch.save archive whose storages "0".."7" hold 4096 bytes each: mutations reach
// the torch layer (storages, _rebuild_tensor_v2 views, flattening) without breaking the zip's CRCs.
#include <zip.h>

#include <vector>

#include "core/checkpoint.h"
#include "tests/fuzz/fuzz_common.h"

namespace {

std::string wrap(const uint8_t* pkl, size_t size) {
  const std::string path = bmh::fuzz::scratch_dir() + "/wrapped.bin";
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  if (!z) std::abort();
  static const std::vector<uint8_t> record = [] {
    std::vector<uint8_t> r(4096);
    for (size_t i = 0; i < r.size(); ++i) r[i] = uint8_t(i * 37 + 11);
    return r;
  }();
  auto add = [&](const std::string& name, const void* p, size_t n) {
    zip_source_t* s = zip_source_buffer(z, p, n, 0);
    zip_int64_t idx = zip_file_add(z, name.c_str(), s, ZIP_FL_OVERWRITE);
    if (idx < 0) std::abort();
    zip_set_file_compression(z, zip_uint64_t(idx), ZIP_CM_STORE, 0);
  };
  add("archive/data.pkl", pkl, size);
  add("archive/byteorder", "little", 6);
  for (int k = 0; k < 8; ++k) add("archive/data/" + std::to_string(k), record.data(), record.size());
  if (zip_close(z) != 0) std::abort();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = wrap(data, size);
  bmh::fuzz::expect_named_errors([&] {
    bmh::Checkpoint ck = bmh::read_torch_zip(path);
    for (const auto& [name, t] : ck.tensors)
      if (bmh::dtype_is_float(t.dtype())) (void)t.to_f64();
  });
  return 0;
}
