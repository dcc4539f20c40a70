// The restricted unpickler alone (core/pickle.cpp) with permissive hooks: every global allowed, REDUCE and
// BUILD build tuples, persistent ids become objects. Exercises the stack, marks, memo, cycles and teardown.
#include "core/pickle.h"
#include "tests/fuzz/fuzz_common.h"

using namespace bmh::pickle;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Hooks hooks;
  hooks.check_global = [](const std::string&, const std::string&) {};
  hooks.reduce = [](const Ref& fn, const Ref& args) {
    Ref t = make(Kind::Tuple);
    t->items = {fn, args};
    return t;
  };
  hooks.persistent_load = [](const Ref& pid) { return make_native("pid:" + repr(*pid), nullptr); };
  hooks.build = [](const Ref& obj, const Ref& state) { (void)repr(*obj), (void)repr(*state); };
  bmh::fuzz::expect_named_errors([&] {
    Ref r = unpickle(data, size, "fuzz.pkl", hooks);
    (void)repr(*r, 400);
  });
  return 0;
}
