// The input is data.pkl of a torch.save archive whose storages "0".."7" hold 4096 bytes each: mutations reach
// the torch layer (storages, _rebuild_tensor_v2 views, flattening) without breaking the zip's CRCs. The archive
// (stored entries, as torch.save writes them) is assembled in memory and read through parse_torch_zip.
#include <zlib.h>

#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "tests/fuzz/fuzz_common.h"

namespace {

struct Entry {
  std::string name;
  const uint8_t* data;
  uint32_t size, crc;
};

void put16(std::vector<uint8_t>& o, uint32_t v) { o.insert(o.end(), {uint8_t(v), uint8_t(v >> 8)}); }
void put32(std::vector<uint8_t>& o, uint32_t v) { put16(o, v & 0xffff), put16(o, v >> 16); }

// APPNOTE.TXT 4.3.7 / 4.3.12 / 4.3.16: local headers with the data, then the central directory and its end record.
void zip_stored(const std::vector<Entry>& entries, std::vector<uint8_t>& out) {
  out.clear();
  std::vector<uint32_t> offsets;
  auto common = [&](const Entry& e) {  // version needed .. extra field length, shared by both headers
    put16(out, 20), put16(out, 0), put16(out, 0), put16(out, 0), put16(out, 0x21);  // stored, 1980-01-01
    put32(out, e.crc), put32(out, e.size), put32(out, e.size), put16(out, uint32_t(e.name.size())), put16(out, 0);
  };
  for (const Entry& e : entries) {
    offsets.push_back(uint32_t(out.size()));
    put32(out, 0x04034b50), common(e);
    out.insert(out.end(), e.name.begin(), e.name.end());
    out.insert(out.end(), e.data, e.data + e.size);
  }
  const uint32_t cd = uint32_t(out.size());
  for (size_t k = 0; k < entries.size(); ++k) {
    put32(out, 0x02014b50), put16(out, 20), common(entries[k]);
    put16(out, 0), put16(out, 0), put16(out, 0), put32(out, 0), put32(out, offsets[k]);
    out.insert(out.end(), entries[k].name.begin(), entries[k].name.end());
  }
  const uint32_t n = uint32_t(entries.size()), cd_size = uint32_t(out.size()) - cd;
  put32(out, 0x06054b50), put16(out, 0), put16(out, 0), put16(out, n), put16(out, n);
  put32(out, cd_size), put32(out, cd), put16(out, 0);
}

uint32_t crc(const uint8_t* p, size_t n) { return uint32_t(crc32(crc32(0, nullptr, 0), p, uInt(n))); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<uint8_t> record = [] {
    std::vector<uint8_t> r(4096);
    for (size_t i = 0; i < r.size(); ++i) r[i] = uint8_t(i * 37 + 11);
    return r;
  }();
  static const uint8_t little[] = {'l', 'i', 't', 't', 'l', 'e'};
  static std::vector<Entry> entries = [] {
    std::vector<Entry> e{{"archive/data.pkl", nullptr, 0, 0}, {"archive/byteorder", little, 6, crc(little, 6)}};
    for (int k = 0; k < 8; ++k)
      e.push_back({"archive/data/" + std::to_string(k), record.data(), 4096, crc(record.data(), record.size())});
    return e;
  }();
  static std::vector<uint8_t> archive;
  entries[0].data = data, entries[0].size = uint32_t(size), entries[0].crc = crc(data, size);
  zip_stored(entries, archive);
  bmh::fuzz::expect_named_errors([&] {
    bmh::Checkpoint ck = bmh::parse_torch_zip(archive.data(), archive.size(), "wrapped.bin");
    for (const auto& [name, t] : ck.tensors)
      if (bmh::dtype_is_float(t.dtype())) (void)t.to_f64();
  });
  return 0;
}
