// Errors are values with context (file, key, shape), thrown where detected and reported once at the edge
// (bmh's main prints "bmh: error: <what>" and exits non-zero).
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace bmh {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// fail("file ", path, ": tensor ", name, " has shape ", s) builds the message from its pieces.
template <class... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw Error(os.str());
}

}  // namespace bmh
