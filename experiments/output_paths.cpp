#include "experiments/output_paths.h"

#include <filesystem>

#include "core/error.h"

namespace bmh {

namespace fs = std::filesystem;

void check_output_not_input(const std::string& option, const std::string& out, const std::vector<std::string>& inputs) {
  if (out.empty()) return;
  std::error_code ec;
  const fs::path o = fs::weakly_canonical(fs::absolute(out, ec), ec);
  for (const std::string& in : inputs) {
    if (in.empty()) continue;
    std::error_code ec2;
    const fs::path i = fs::weakly_canonical(fs::absolute(in, ec2), ec2);
    const bool same = o == i || (fs::exists(o, ec2) && fs::exists(i, ec2) && fs::equivalent(o, i, ec2));
    if (same) fail(option, " ", out, " is also an input (", in, "); refusing to overwrite it");
    if (fs::is_directory(i, ec2)) {
      std::string dir = i.string();
      if (dir.empty() || dir.back() != '/') dir += '/';
      const bool inside = o.string().rfind(dir, 0) == 0;
      if (inside) fail(option, " ", out, " lies inside the input directory ", in, "; refusing to write there");
    }
  }
}

}  // namespace bmh
