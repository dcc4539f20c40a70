// What the running binary was built from.
#pragma once
#include <string>

namespace bmh {

// The full commit hash of the source tree at build time, "-dirty" appended when the tree differed from it
// ("unknown" outside a git checkout). Stamped by scripts/git_hash.cmake, so it holds on machines without .git.
std::string build_git_hash();

}  // namespace bmh
