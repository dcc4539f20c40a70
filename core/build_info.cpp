#include "core/build_info.h"

#include "bmh_git_hash.h"  // generated into the build folder by scripts/git_hash.cmake

namespace bmh {

std::string build_git_hash() { return BMH_GIT_HASH; }

}  // namespace bmh
