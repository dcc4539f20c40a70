// Helpers for the checkpoint tests: a temp directory, a minimal "stored" zip writer (so tests can build
// torch.save-shaped archives without torch), a pickle byte builder whose methods are single opcodes, and an
// assertion that a call throws bmh::Error whose message names every expected piece.
#pragma once
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/checkpoint.h"
#include "core/error.h"

namespace bmh_test {

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "bmh-ckpt-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& name) const { return path + "/" + name; }
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs f; returns the bmh::Error message, or "<no error>" when it did not throw.
// A checkpoint parsed from bytes holds the same tensors (dtype, shape, bytes) as the one read from its path, each
// recorded as coming from `source`.
inline void expect_same_tensors(const bmh::Checkpoint& from_path, const bmh::Checkpoint& from_bytes,
                                const std::string& source, const std::string& what) {
  ASSERT_EQ(from_path.tensors.size(), from_bytes.tensors.size()) << what;
  for (const auto& [name, t] : from_path.tensors) {
    const bmh::Tensor& u = from_bytes.tensors.at(name);
    EXPECT_EQ(u.describe(), t.describe()) << what << " " << name;
    EXPECT_EQ(std::memcmp(u.raw(), t.raw(), t.nbytes()), 0) << what << " " << name;
    EXPECT_EQ(from_bytes.file_of.at(name), source) << what << " " << name;
  }
}

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const bmh::Error& e) {
    return e.what();
  }
  return "<no error>";
}

#define EXPECT_ERROR_MENTIONS(stmt, ...)                                            \
  do {                                                                              \
    const std::string msg_ = ::bmh_test::error_of([&] { (void)(stmt); });           \
    EXPECT_NE(msg_, "<no error>") << #stmt " did not throw bmh::Error";             \
    for (const std::string& part_ : std::vector<std::string>{__VA_ARGS__})         \
      EXPECT_NE(msg_.find(part_), std::string::npos) << "message lacks '" << part_ \
                                                     << "': " << msg_;              \
  } while (0)

inline void put_le(std::string& b, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b += char(uint8_t(v >> (8 * i)));
}

inline uint32_t crc32(const std::string& data) {  // IEEE 802.3, as zip uses
  uint32_t c = 0xffffffffu;
  for (unsigned char ch : data) {
    c ^= ch;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

// A zip archive with uncompressed ("stored") entries, like torch.save writes.
inline std::string make_zip(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out, central;
  for (const auto& [name, data] : entries) {
    const uint32_t offset = uint32_t(out.size()), crc = crc32(data);
    put_le(out, 0x04034b50, 4);
    put_le(out, 20, 2);  // version needed
    put_le(out, 0, 2);   // flags
    put_le(out, 0, 2);   // method: stored
    put_le(out, 0, 2);   // time
    put_le(out, 0x21, 2);  // date 1980-01-01
    put_le(out, crc, 4);
    put_le(out, data.size(), 4);
    put_le(out, data.size(), 4);
    put_le(out, name.size(), 2);
    put_le(out, 0, 2);
    out += name;
    out += data;
    put_le(central, 0x02014b50, 4);
    put_le(central, 20, 2);
    put_le(central, 20, 2);
    put_le(central, 0, 2);
    put_le(central, 0, 2);
    put_le(central, 0, 2);
    put_le(central, 0x21, 2);
    put_le(central, crc, 4);
    put_le(central, data.size(), 4);
    put_le(central, data.size(), 4);
    put_le(central, name.size(), 2);
    put_le(central, 0, 2);  // extra
    put_le(central, 0, 2);  // comment
    put_le(central, 0, 2);  // disk
    put_le(central, 0, 2);  // internal attrs
    put_le(central, 0, 4);  // external attrs
    put_le(central, offset, 4);
    central += name;
  }
  const uint32_t cd_offset = uint32_t(out.size());
  out += central;
  put_le(out, 0x06054b50, 4);
  put_le(out, 0, 2);
  put_le(out, 0, 2);
  put_le(out, entries.size(), 2);
  put_le(out, entries.size(), 2);
  put_le(out, central.size(), 4);
  put_le(out, cd_offset, 4);
  put_le(out, 0, 2);
  return out;
}

// The records of a torch.save archive: <prefix>/data.pkl, byteorder, version, data/<key>.
inline std::string make_torch_zip(const std::string& pkl, const std::vector<std::pair<std::string, std::string>>& storages,
                                  const std::string& byteorder = "little", const std::string& prefix = "archive") {
  std::vector<std::pair<std::string, std::string>> e{{prefix + "/data.pkl", pkl}};
  if (!byteorder.empty()) e.emplace_back(prefix + "/byteorder", byteorder);
  for (const auto& [key, bytes] : storages) e.emplace_back(prefix + "/data/" + key, bytes);
  e.emplace_back(prefix + "/version", "3\n");
  return make_zip(e);
}

template <class T>
std::string raw_bytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// Pickle bytes, one opcode per method (names as in CPython's pickletools).
struct Pickle {
  std::string b;
  Pickle& op(uint8_t c) { b += char(c); return *this; }
  Pickle& proto(int v) { op(0x80); return op(uint8_t(v)); }
  Pickle& frame(uint64_t n) { op(0x95); put_le(b, n, 8); return *this; }
  Pickle& mark() { return op('('); }
  Pickle& stop() { return op('.'); }
  Pickle& none() { return op('N'); }
  Pickle& newtrue() { return op(0x88); }
  Pickle& newfalse() { return op(0x89); }
  Pickle& binint1(uint8_t v) { op('K'); return op(v); }
  Pickle& binint2(uint16_t v) { op('M'); put_le(b, v, 2); return *this; }
  Pickle& binint(int32_t v) { op('J'); put_le(b, uint32_t(v), 4); return *this; }
  Pickle& long1(int64_t v, int nbytes) { op(0x8a); op(uint8_t(nbytes)); put_le(b, uint64_t(v), nbytes); return *this; }
  Pickle& integer(int64_t v) {  // the smallest encoding, as pickle.py's save_long picks
    if (v >= 0 && v < 256) return binint1(uint8_t(v));
    if (v >= 0 && v < 65536) return binint2(uint16_t(v));
    if (v >= INT32_MIN && v <= INT32_MAX) return binint(int32_t(v));
    return long1(v, 8);
  }
  Pickle& binfloat(double d) {
    op('G');
    uint64_t bits;
    std::memcpy(&bits, &d, 8);
    for (int i = 7; i >= 0; --i) b += char(uint8_t(bits >> (8 * i)));
    return *this;
  }
  Pickle& binunicode(const std::string& s) { op('X'); put_le(b, s.size(), 4); b += s; return *this; }
  Pickle& short_binunicode(const std::string& s) { op(0x8c); op(uint8_t(s.size())); b += s; return *this; }
  Pickle& global(const std::string& module, const std::string& name) {
    op('c');
    b += module + "\n" + name + "\n";
    return *this;
  }
  Pickle& stack_global() { return op(0x93); }
  Pickle& empty_tuple() { return op(')'); }
  Pickle& tuple() { return op('t'); }
  Pickle& tuple1() { return op(0x85); }
  Pickle& tuple2() { return op(0x86); }
  Pickle& tuple3() { return op(0x87); }
  Pickle& empty_list() { return op(']'); }
  Pickle& append() { return op('a'); }
  Pickle& appends() { return op('e'); }
  Pickle& empty_dict() { return op('}'); }
  Pickle& setitem() { return op('s'); }
  Pickle& setitems() { return op('u'); }
  Pickle& reduce() { return op('R'); }
  Pickle& build() { return op('b'); }
  Pickle& binpersid() { return op('Q'); }
  Pickle& binput(uint8_t i) { op('q'); return op(i); }
  Pickle& long_binput(uint32_t i) { op('r'); put_le(b, i, 4); return *this; }
  Pickle& memoize() { return op(0x94); }
  Pickle& binget(uint8_t i) { op('h'); return op(i); }
  Pickle& long_binget(uint32_t i) { op('j'); put_le(b, i, 4); return *this; }

  Pickle& ints_tuple(const std::vector<int64_t>& v) {
    mark();
    for (auto x : v) integer(x);
    return tuple();
  }
  // torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()), the sequence
  // torch.save emits (tests/fixtures/*/pytorch_model.bin disassembled with pickletools), without memo ops.
  Pickle& tensor(const std::string& storage_type, const std::string& key, int64_t numel, int64_t offset,
                 const std::vector<int64_t>& size, const std::vector<int64_t>& stride) {
    global("torch._utils", "_rebuild_tensor_v2");
    mark();
    mark().binunicode("storage").global("torch", storage_type).binunicode(key).binunicode("cpu").integer(numel);
    tuple().binpersid();
    integer(offset).ints_tuple(size).ints_tuple(stride).newfalse();
    global("collections", "OrderedDict").empty_tuple().reduce();
    return tuple().reduce();
  }
};

}  // namespace bmh_test
