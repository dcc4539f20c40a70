// torch.save zip archives (pytorch_model.bin) through the restricted unpickler.
// Layout and loading semantics follow pytorch torch/serialization.py (_load, persistent_load, load_tensor) and
// torch/_utils.py (_rebuild_tensor_v2, _rebuild_parameter): `<prefix>/data.pkl` is a pickle whose tensors are
// REDUCE(_rebuild_tensor_v2, (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]))
// and whose storages are persistent ids ('storage', torch.<T>Storage, key, location, numel) naming the raw
// little-endian record `<prefix>/data/<key>`. `<prefix>` is the directory of the archive's first entry
// (caffe2 PyTorchStreamReader). Storages are read once and shared; contiguous tensors borrow from them.
#include <zip.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/pickle.h"

namespace bmh {

namespace {

using pickle::Kind;
using pickle::Ref;

struct Storage {
  DType dtype;
  std::string key;
  int64_t numel = 0;
  std::shared_ptr<const void> bytes;  // >= numel * dtype_size bytes, 64-byte aligned
};

struct TensorRef {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;
  Shape size;
  std::vector<int64_t> stride;
};

// torch/storage.py _get_dtype_from_pickle_storage_type: legacy typed-storage class names.
const struct { const char* name; DType dtype; } kStorageTypes[] = {
    {"FloatStorage", DType::F32},  {"DoubleStorage", DType::F64}, {"HalfStorage", DType::F16},
    {"BFloat16Storage", DType::BF16}, {"LongStorage", DType::I64}, {"IntStorage", DType::I32},
    {"ShortStorage", DType::I16},  {"CharStorage", DType::I8},    {"ByteStorage", DType::U8},
    {"BoolStorage", DType::Bool}};

bool storage_dtype(const std::string& qualified, DType* out) {
  for (auto& s : kStorageTypes)
    if (qualified == std::string("torch.") + s.name) {
      *out = s.dtype;
      return true;
    }
  return false;
}

std::string zip_error_text(int code) {
  zip_error_t ze;
  zip_error_init_with_code(&ze, code);
  std::string s = zip_error_strerror(&ze);
  zip_error_fini(&ze);
  return s;
}

class TorchZipReader {
 public:
  // data[0, size) must outlive the reader (libzip reads records from it on demand).
  TorchZipReader(const uint8_t* data, uint64_t size, std::string path)
      : path_(std::move(path)), data_(data), archive_bytes_(size) {}
  ~TorchZipReader() {
    if (zip_) zip_discard(zip_);
  }

  Checkpoint read() {
    open();
    check_byteorder();
    auto pkl = read_record(prefix_ + "/data.pkl", "the pickle");
    pickle::Hooks hooks;
    hooks.check_global = [this](const std::string& m, const std::string& n) { check_global(m, n); };
    hooks.reduce = [this](const Ref& fn, const Ref& args) { return reduce(fn, args); };
    hooks.persistent_load = [this](const Ref& pid) { return persistent_load(pid); };
    hooks.build = [this](const Ref& obj, const Ref& state) { build(obj, state); };
    Ref root = pickle::unpickle(static_cast<const uint8_t*>(pkl.first.get()), pkl.second,
                                path_ + ":" + prefix_ + "/data.pkl", hooks);
    if (!root->is(Kind::Dict) && !root->is(Kind::List) && !root->is(Kind::Tuple))
      fail(path_, ": the pickle holds a ", pickle::kind_name(root->kind), " (", pickle::repr(*root),
           "), not a dict of tensors");
    Checkpoint ck;
    flatten(root, "", 0, ck);
    return ck;
  }

 private:
  std::string path_, prefix_;
  const uint8_t* data_;
  uint64_t archive_bytes_;
  zip_t* zip_ = nullptr;
  std::map<std::string, std::shared_ptr<Storage>> storages_;

  // zip_open(path) is zip_source_file_create + zip_open_from_source; here the source is the bytes.
  void open() {
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t* src = zip_source_buffer_create(archive_bytes_ ? data_ : nullptr, archive_bytes_, 0, &ze);
    if (src) {
      zip_ = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
      if (!zip_) zip_source_free(src);  // zip_ owns the source only once opened
    }
    const int err = zip_error_code_zip(&ze);
    zip_error_fini(&ze);
    if (!zip_) {
      if (archive_bytes_ >= 2 && data_[0] == 0x80 && data_[1] == 0x02)
        fail(path_, ": legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it with torch >= 1.6");
      fail(path_, ": not a readable torch.save zip archive (truncated or corrupt?): ", zip_error_text(err));
    }
    if (zip_get_num_entries(zip_, 0) <= 0) fail(path_, ": zip archive has no entries");
    const char* first = zip_get_name(zip_, 0, ZIP_FL_ENC_RAW);
    std::string f = first ? first : "";
    if (f.find('/') == std::string::npos) fail(path_, ": first zip entry '", f, "' is not inside an archive folder");
    prefix_ = f.substr(0, f.find('/'));
  }

  // Whole record into a 64-byte-aligned buffer; (buffer, size). The size the entry declares is checked before
  // anything is allocated: against what its compressed bytes can inflate to, and against `need` (the bytes the
  // pickle says the record holds; 0 when unknown).
  std::pair<std::shared_ptr<const void>, size_t> read_record(const std::string& name, const std::string& what,
                                                             uint64_t need = 0) {
    zip_int64_t idx = zip_name_locate(zip_, name.c_str(), ZIP_FL_ENC_RAW);
    if (idx < 0) fail(path_, ": missing record '", name, "' (", what, ")");
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(zip_, zip_uint64_t(idx), 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE))
      fail(path_, ": cannot stat record '", name, "': ", zip_strerror(zip_));
    if ((st.valid & ZIP_STAT_COMP_SIZE) && (st.valid & ZIP_STAT_COMP_METHOD)) {
      // Stored entries hold exactly their bytes; deflate expands at most 1032:1 (zlib's limit).
      const bool stored = st.comp_method == ZIP_CM_STORE;
      const uint64_t comp = std::min<uint64_t>(st.comp_size, archive_bytes_);  // no overflow below
      const uint64_t most = stored ? comp : comp * 1032 + 1024;
      if (st.comp_size > archive_bytes_ || st.size > most)
        fail(path_, ": record '", name, "' declares ", st.size, " bytes from ", st.comp_size, " ",
             stored ? "stored" : "compressed", " bytes in a ", archive_bytes_, "-byte archive (corrupt or hostile)");
    }
    if (need && st.size < need)
      fail(path_, ": record '", name, "' holds ", st.size, " bytes but the pickle declares ", need, " bytes (", what, ")");
    const size_t n = size_t(st.size);
    void* mem = std::aligned_alloc(64, (n + 63) / 64 * 64 + 64);
    if (!mem) fail(path_, ": cannot allocate ", n, " bytes for record '", name, "'");
    std::shared_ptr<const void> buf(mem, [](const void* q) { std::free(const_cast<void*>(q)); });
    zip_file_t* zf = zip_fopen_index(zip_, zip_uint64_t(idx), 0);
    if (!zf) fail(path_, ": cannot open record '", name, "': ", zip_strerror(zip_));
    size_t got = 0;
    while (got < n) {
      zip_int64_t r = zip_fread(zf, static_cast<uint8_t*>(mem) + got, n - got);
      if (r <= 0) {
        std::string why = r < 0 ? zip_file_strerror(zf) : "unexpected end of data";
        zip_fclose(zf);
        fail(path_, ": record '", name, "' is damaged: read ", got, " of ", n, " bytes: ", why);
      }
      got += size_t(r);
    }
    char extra;
    zip_int64_t tail = zip_fread(zf, &extra, 1);  // lets libzip verify the CRC at end of data
    if (tail < 0) {
      std::string why = zip_file_strerror(zf);
      zip_fclose(zf);
      fail(path_, ": record '", name, "' is damaged: ", why);
    }
    zip_fclose(zf);
    return {buf, n};
  }

  void check_byteorder() {
    std::string name = prefix_ + "/byteorder";
    if (zip_name_locate(zip_, name.c_str(), ZIP_FL_ENC_RAW) < 0) return;  // absent: little (serialization.py)
    auto rec = read_record(name, "byte order");
    std::string v(static_cast<const char*>(rec.first.get()), rec.second);
    if (v == "little") return;
    if (v == "big") fail(path_, ": big-endian checkpoints are not supported (", name, " is 'big')");
    fail(path_, ": unknown byte order '", v, "' in ", name);
  }

  void check_global(const std::string& module, const std::string& name) {
    std::string q = module + "." + name;
    DType dt;
    if (q == "collections.OrderedDict" || q == "torch._utils._rebuild_tensor_v2" ||
        q == "torch._utils._rebuild_parameter" || storage_dtype(q, &dt))
      return;
    fail("unknown pickle global '", q, "' in ", path_,
         " (only collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and "
         "torch.<Float|Double|Half|BFloat16|Long|Int|Short|Char|Byte|Bool>Storage are allowed)");
  }

  static int64_t as_int(const Ref& r, const std::string& where, const char* what) {
    if (!r->is(Kind::Int)) fail(where, ": ", what, " is ", pickle::repr(*r), ", expected an int");
    return r->i;
  }
  static std::vector<int64_t> as_ints(const Ref& r, const std::string& where, const char* what) {
    if (!r->is(Kind::Tuple) && !r->is(Kind::List))
      fail(where, ": ", what, " is ", pickle::repr(*r), ", expected a tuple of ints");
    std::vector<int64_t> v;
    for (auto& x : r->items) v.push_back(as_int(x, where, what));
    return v;
  }

  Ref reduce(const Ref& fn, const Ref& args) {
    const std::string where = path_ + ":" + prefix_ + "/data.pkl";
    if (!fn->is(Kind::Global)) fail(where, ": cannot call ", pickle::repr(*fn));
    const auto& a = args->items;
    if (fn->s == "collections.OrderedDict") {
      Ref d = pickle::make(Kind::Dict);
      if (a.empty()) return d;
      if (a.size() == 1 && (a[0]->is(Kind::List) || a[0]->is(Kind::Tuple))) {
        for (auto& kv : a[0]->items) {
          if (!kv->is(Kind::Tuple) || kv->items.size() != 2)
            fail(where, ": OrderedDict item ", pickle::repr(*kv), " is not a (key, value) pair");
          d->entries.emplace_back(kv->items[0], kv->items[1]);
        }
        return d;
      }
      fail(where, ": OrderedDict called with ", pickle::repr(*args));
    }
    if (fn->s == "torch._utils._rebuild_tensor_v2") {
      if (a.size() != 6 && a.size() != 7)
        fail(where, ": _rebuild_tensor_v2 takes 6 or 7 arguments, got ", a.size(), ": ", pickle::repr(*args));
      if (!a[0]->is(Kind::Native) || a[0]->s != "storage")
        fail(where, ": _rebuild_tensor_v2's first argument is ", pickle::repr(*a[0]), ", not a storage");
      auto t = std::make_shared<TensorRef>();
      t->storage = std::static_pointer_cast<Storage>(a[0]->native);
      t->offset = as_int(a[1], where, "storage_offset");
      t->size = as_ints(a[2], where, "size");
      t->stride = as_ints(a[3], where, "stride");
      if (t->size.size() != t->stride.size())
        fail(where, ": tensor size ", shape_str(t->size), " and stride ", shape_str(t->stride), " differ in rank");
      return pickle::make_native("tensor", t);
    }
    if (fn->s == "torch._utils._rebuild_parameter") {  // (data, requires_grad, backward_hooks) -> data
      if (a.size() != 3 || !a[0]->is(Kind::Native) || a[0]->s != "tensor")
        fail(where, ": _rebuild_parameter expects (tensor, requires_grad, hooks), got ", pickle::repr(*args));
      return a[0];
    }
    fail(where, ": cannot call ", fn->s, pickle::repr(*args));
  }

  Ref persistent_load(const Ref& pid) {
    const std::string where = path_ + ":" + prefix_ + "/data.pkl";
    const auto& t = pid->items;
    if (!pid->is(Kind::Tuple) || t.size() != 5 || !t[0]->is(Kind::Str) || t[0]->s != "storage" ||
        !t[1]->is(Kind::Global) || !t[2]->is(Kind::Str) || !t[3]->is(Kind::Str) || !t[4]->is(Kind::Int))
      fail(where, ": persistent id ", pickle::repr(*pid), " is not ('storage', type, key, location, numel)");
    DType dt;
    if (!storage_dtype(t[1]->s, &dt)) fail(where, ": ", t[1]->s, " is not a storage type");
    const std::string& key = t[2]->s;
    const int64_t numel = t[4]->i;
    auto it = storages_.find(key);
    if (it != storages_.end()) {
      if (it->second->dtype != dt)
        fail(path_, ": storage '", key, "' is used as both ", dtype_name(it->second->dtype), " and ", dtype_name(dt));
      return pickle::make_native("storage", it->second);
    }
    const std::string rec = prefix_ + "/data/" + key;
    uint64_t need = 0;
    if (numel < 0 || __builtin_mul_overflow(uint64_t(numel), uint64_t(dtype_size(dt)), &need))
      fail(path_, ": storage '", key, "' has an invalid element count ", numel);
    // Compared with the record's declared size before it is inflated.
    auto bytes = read_record(rec, "tensor storage of " + std::to_string(numel) + " elements", need);
    auto s = std::make_shared<Storage>();
    s->dtype = dt;
    s->key = key;
    s->numel = numel;
    s->bytes = bytes.first;
    storages_.emplace(key, s);
    return pickle::make_native("storage", s);
  }

  void build(const Ref& obj, const Ref& state) {
    // A state_dict is an OrderedDict whose __dict__ holds `_metadata` (module versions): not weights.
    if (obj->is(Kind::Dict)) return;
    fail(path_, ":", prefix_, "/data.pkl: cannot set state ", pickle::repr(*state), " on ", pickle::repr(*obj));
  }

  Tensor materialise(const TensorRef& r, const std::string& name) const {
    const Storage& s = *r.storage;
    const size_t es = dtype_size(s.dtype);
    auto where = [&] {
      return path_ + ": tensor '" + name + "' (" + dtype_name(s.dtype) + " size " + shape_str(r.size) + " stride " +
             shape_str(r.stride) + " offset " + std::to_string(r.offset) + ", storage '" + s.key + "' of " +
             std::to_string(s.numel) + " elements)";
    };
    if (r.offset < 0) fail(where(), ": negative storage offset");
    int64_t numel = 1, last = r.offset;  // last element's index in the storage
    for (size_t d = 0; d < r.size.size(); ++d) {
      if (r.size[d] < 0 || r.stride[d] < 0) fail(where(), ": negative size or stride");
      if (__builtin_mul_overflow(numel, r.size[d], &numel)) fail(where(), ": element count overflows");
    }
    if (numel == 0) return Tensor::zeros(s.dtype, r.size);
    // A view may not need more elements than its storage holds: torch.save never writes one (state dicts are
    // saved from parameters), and a stride-0 view of 2^30 elements would turn a 1 KB file into gigabytes.
    if (numel > s.numel)
      fail(where(), ": the view has ", numel, " elements but its storage holds only ", s.numel,
           " (expanding views are not weights)");
    for (size_t d = 0; d < r.size.size(); ++d) {
      int64_t span;
      if (__builtin_mul_overflow(r.size[d] - 1, r.stride[d], &span) || __builtin_add_overflow(last, span, &last))
        fail(where(), ": extent overflows");
    }
    if (last >= s.numel)
      fail(where(), ": needs storage elements up to index ", last, " but the storage holds only ", s.numel,
           " (storage too short)");
    const uint8_t* base = static_cast<const uint8_t*>(s.bytes.get());
    bool contiguous = true;
    int64_t expect = 1;
    for (size_t d = r.size.size(); d-- > 0;) {
      if (r.size[d] != 1 && r.stride[d] != expect) contiguous = false;
      expect *= r.size[d];
    }
    if (contiguous) return Tensor::borrow(s.dtype, r.size, base + size_t(r.offset) * es, s.bytes);
    Tensor out = Tensor::zeros(s.dtype, r.size);
    uint8_t* dst = static_cast<uint8_t*>(out.raw_mut());
    const int rank = int(r.size.size());
    std::vector<int64_t> idx(rank, 0);
    int64_t src = r.offset;
    for (int64_t n = 0; n < numel; ++n) {
      std::memcpy(dst + size_t(n) * es, base + size_t(src) * es, es);
      for (int d = rank - 1; d >= 0; --d) {  // odometer over the logical index, row-major
        if (++idx[d] < r.size[d]) {
          src += r.stride[d];
          break;
        }
        src -= (r.size[d] - 1) * r.stride[d];
        idx[d] = 0;
      }
    }
    return out;
  }

  void flatten(const Ref& obj, const std::string& prefix, int depth, Checkpoint& ck) const {
    if (depth > 64) fail(path_, ": containers nested deeper than 64 levels at '", prefix, "' (a cycle?)");
    auto child = [&](const std::string& key) { return prefix.empty() ? key : prefix + "." + key; };
    if (obj->is(Kind::Dict)) {
      for (const auto& [k, v] : obj->entries) {
        std::string key;
        if (k->is(Kind::Str)) key = k->s;
        else if (k->is(Kind::Int)) key = std::to_string(k->i);
        else fail(path_, ": dict key ", pickle::repr(*k), " under '", prefix, "' is not a string or int");
        visit(v, child(key), depth, ck);
      }
    } else {  // list or tuple
      for (size_t k = 0; k < obj->items.size(); ++k) visit(obj->items[k], child(std::to_string(k)), depth, ck);
    }
  }

  void visit(const Ref& v, const std::string& name, int depth, Checkpoint& ck) const {
    if (v->is(Kind::Dict) || v->is(Kind::List) || v->is(Kind::Tuple)) {
      flatten(v, name, depth + 1, ck);
    } else if (v->is(Kind::Native) && v->s == "tensor") {
      Tensor t = materialise(*std::static_pointer_cast<TensorRef>(v->native), name);
      if (!ck.tensors.emplace(name, std::move(t)).second)
        fail(path_, ": tensor name '", name, "' occurs twice after flattening nested dicts with '.'");
      ck.file_of[name] = path_;
    }  // other leaves (ints, strings, None, bare storages) are not weights: skipped
  }
};

}  // namespace

Checkpoint read_torch_zip(const std::string& path) {
  auto file = MappedFile::open(path);
  return parse_torch_zip(file->data(), file->size(), path);
}

Checkpoint parse_torch_zip(const uint8_t* data, uint64_t size, const std::string& path) {
  return TorchZipReader(data, size, path).read();
}

}  // namespace bmh
