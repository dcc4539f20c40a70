// torch.save zip archives, written: the inverse of core/torch_zip.cpp. Layout as pytorch torch/serialization.py
// _save writes it (through caffe2 serialize/inline_container.cc PyTorchStreamWriter): stored (uncompressed)
// entries `archive/data.pkl`, `archive/byteorder` ("little"), `archive/data/<key>` (one raw little-endian
// storage each) and `archive/version` ("3\n"). The pickle is protocol 2 and uses only what the reader and
// torch.load(weights_only=True) accept: collections.OrderedDict, torch._utils._rebuild_tensor_v2 and the
// torch.<T>Storage classes as persistent ids ('storage', torch.<T>Storage, key, 'cpu', numel).
#include <zip.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <unistd.h>

#include "core/checkpoint.h"
#include "core/error.h"

namespace bmh {

namespace {

const char* storage_class(DType t) {
  switch (t) {
    case DType::F32: return "FloatStorage";
    case DType::F64: return "DoubleStorage";
    case DType::F16: return "HalfStorage";
    case DType::BF16: return "BFloat16Storage";
    case DType::I64: return "LongStorage";
    case DType::I32: return "IntStorage";
    case DType::I16: return "ShortStorage";
    case DType::I8: return "CharStorage";
    case DType::U8: return "ByteStorage";
    case DType::Bool: return "BoolStorage";
  }
  return "?";
}

// Protocol-2 pickle opcodes (CPython Lib/pickle.py).
struct Pickler {
  std::string out;
  void op(char c) { out.push_back(c); }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(char(v >> (8 * i)));
  }
  void str(const std::string& s) {  // BINUNICODE
    op('X');
    u32(uint32_t(s.size()));
    out += s;
  }
  void integer(int64_t v) {
    if (v >= 0 && v < 256) {
      op('K');
      out.push_back(char(v));
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      op('J');
      u32(uint32_t(int32_t(v)));
    } else {  // LONG1: 8-byte little-endian two's complement
      op(char(0x8a));
      out.push_back(char(8));
      for (int i = 0; i < 8; ++i) out.push_back(char(uint64_t(v) >> (8 * i)));
    }
  }
  void global(const std::string& module, const std::string& name) {
    op('c');
    out += module + "\n" + name + "\n";
  }
  void ints_tuple(const std::vector<int64_t>& v) {
    op('(');
    for (int64_t x : v) integer(x);
    op('t');
  }
  void ordered_dict() {  // OrderedDict() via REDUCE with no arguments
    global("collections", "OrderedDict");
    op(')');
    op('R');
  }
  void tensor(const Tensor& t, const std::string& key) {
    global("torch._utils", "_rebuild_tensor_v2");
    op('(');
    op('(');  // persistent id
    str("storage");
    global("torch", storage_class(t.dtype()));
    str(key);
    str("cpu");
    integer(t.numel());
    op('t');
    op('Q');  // BINPERSID
    integer(0);  // storage_offset
    ints_tuple(t.shape());
    std::vector<int64_t> stride(t.shape().size(), 1);
    for (int d = int(stride.size()) - 2; d >= 0; --d) stride[d] = stride[d + 1] * t.shape()[d + 1];
    ints_tuple(stride);
    op(char(0x89));  // requires_grad = False
    ordered_dict();  // backward_hooks
    op('t');
    op('R');
  }
};

}  // namespace

void write_torch_zip(const std::string& path, const TensorMap& tensors, const std::string& wrap_key) {
  // One storage per distinct buffer, so tensors that share memory (tied weights) share a storage as in torch.
  std::map<const void*, std::string> key_of;
  std::vector<std::pair<std::string, const Tensor*>> storages;
  Pickler p;
  p.op(char(0x80));
  p.out.push_back(char(2));
  if (!wrap_key.empty()) {
    p.op('}');
    p.str(wrap_key);
  }
  p.ordered_dict();
  p.op('(');
  for (const auto& [name, t] : tensors) {
    if (!t.defined() || t.raw() == nullptr) fail(path, ": tensor '", name, "' has no data");
    auto it = key_of.find(t.raw());
    std::string key;
    if (it != key_of.end()) {
      key = it->second;
    } else {
      key = std::to_string(storages.size());
      key_of[t.raw()] = key;
      storages.emplace_back(key, &t);
    }
    p.str(name);
    p.tensor(t, key);
  }
  p.op('u');  // SETITEMS into the OrderedDict
  if (!wrap_key.empty()) p.op('s');
  p.op('.');

  namespace fs = std::filesystem;
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  std::remove(tmp.c_str());
  int err = 0;
  zip_t* z = zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  if (!z) fail("cannot create ", tmp, " (libzip error ", err, ")");
  auto add = [&](const std::string& name, const void* data, size_t n) {
    zip_source_t* src = zip_source_buffer(z, data, n, 0);
    if (!src) fail(tmp, ": cannot add ", name, ": ", zip_strerror(z));
    zip_int64_t idx = zip_file_add(z, name.c_str(), src, ZIP_FL_ENC_UTF_8 | ZIP_FL_OVERWRITE);
    if (idx < 0) {
      zip_source_free(src);
      fail(tmp, ": cannot add ", name, ": ", zip_strerror(z));
    }
    zip_set_file_compression(z, zip_uint64_t(idx), ZIP_CM_STORE, 0);
    zip_file_set_mtime(z, zip_uint64_t(idx), 0, 0);
  };
  static const char kByteorder[] = "little", kVersion[] = "3\n";
  try {
    add("archive/data.pkl", p.out.data(), p.out.size());  // first entry: the reader takes its folder as prefix
    add("archive/byteorder", kByteorder, 6);
    for (const auto& [key, t] : storages) add("archive/data/" + key, t->raw(), t->nbytes());
    add("archive/version", kVersion, 2);
  } catch (...) {
    zip_discard(z);
    std::remove(tmp.c_str());
    throw;
  }
  if (zip_close(z) != 0) {
    std::string why = zip_strerror(z);
    zip_discard(z);
    std::remove(tmp.c_str());
    fail("cannot write ", tmp, ": ", why);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    fail("cannot rename ", tmp, " to ", path, ": ", ec.message());
  }
}

}  // namespace bmh
