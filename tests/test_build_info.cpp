// The commit stamped into the binaries (core/build_info.h) is the source tree's HEAD, with "-dirty" exactly when
// the tree differs from it, so every results.json names the code that produced it.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "core/build_info.h"

namespace {

std::string run(const std::string& cmd) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return "";
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  ::pclose(p);
  return out;
}

TEST(BuildInfo, GitHashIsTheSourceTreesHead) {
  const std::string src = BMH_SOURCE_DIR;
  std::string head = run("git -C '" + src + "' rev-parse HEAD 2>/dev/null");
  if (head.empty()) {
    EXPECT_EQ(bmh::build_git_hash(), "unknown");
    return;
  }
  head.pop_back();  // newline
  ASSERT_EQ(head.size(), 40u);
  const bool dirty = !run("git -C '" + src + "' status --porcelain 2>/dev/null").empty();
  EXPECT_EQ(bmh::build_git_hash(), head + (dirty ? "-dirty" : ""));
}

}  // namespace
