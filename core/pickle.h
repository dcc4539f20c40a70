// A restricted unpickler: Python pickle protocols 2-5 as torch.save writes them, into a small object tree.
// Nothing is imported or executed: GLOBAL asks the caller whether "module.name" is allowed, and REDUCE,
// BINPERSID and BUILD are handed to the caller's hooks, which build their own objects (kind Native).
// Opcode semantics follow CPython Lib/pickle.py (_Unpickler.load_*) and Lib/pickletools.py.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace bmh::pickle {

struct Object;
using Ref = std::shared_ptr<Object>;

enum class Kind { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Native };

struct Object {
  Kind kind = Kind::None;
  int64_t i = 0;                             // Bool (0/1), Int
  double f = 0;                              // Float
  std::string s;                             // Str (UTF-8), Bytes, Global ("module.name"), Native (type name)
  std::vector<Ref> items;                    // Tuple, List
  std::vector<std::pair<Ref, Ref>> entries;  // Dict, in insertion order (a repeated key is kept twice)
  std::shared_ptr<void> native;              // Native: what a hook built

  Object() = default;
  Object(const Object&) = default;
  Object& operator=(const Object&) = default;
  // Iterative: a tree nested 10^6 deep is torn down without one stack frame per level.
  ~Object();
  bool is(Kind k) const { return kind == k; }
};

Ref make(Kind k);
Ref make_int(int64_t v);
Ref make_str(std::string v);
Ref make_native(std::string type, std::shared_ptr<void> value);
const char* kind_name(Kind k);
std::string repr(const Object& o, int max_chars = 120);  // short Python-like rendering for error messages

struct Hooks {
  // Throws (naming the global) unless module.name is allowed; then GLOBAL pushes a Global object.
  std::function<void(const std::string& module, const std::string& name)> check_global;
  // REDUCE: callable(*args); callable is a Global (or whatever an earlier hook returned).
  std::function<Ref(const Ref& callable, const Ref& args)> reduce;
  // BINPERSID: the persistent id object (torch: ('storage', type, key, location, numel)).
  std::function<Ref(const Ref& pid)> persistent_load;
  // BUILD: obj.__setstate__(state); absent -> BUILD is an error.
  std::function<void(const Ref& obj, const Ref& state)> build;
};

// Runs the pickle in data[0, size). `where` names the source in errors ("FILE:data.pkl"). A result that holds
// a reference cycle (a container inside itself, built through the memo) is refused; torch.save never writes
// one. Whether it succeeds or throws, no cycle it built outlives it (no leak).
Ref unpickle(const uint8_t* data, size_t size, const std::string& where, const Hooks& hooks);

}  // namespace bmh::pickle
