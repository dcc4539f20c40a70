#include "core/hub_cache.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include "core/error.h"

namespace bmh {

namespace fs = std::filesystem;

bool looks_like_hub_id(const std::string& s) {
  static const std::regex id(R"(^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9._/-]+)?$)");
  return std::regex_match(s, id);
}

std::string hub_cache_dir() {
  auto env = [](const char* k) -> std::string {
    const char* v = std::getenv(k);
    return v && *v ? v : "";
  };
  if (std::string c = env("HF_HUB_CACHE"); !c.empty()) return c;
  if (std::string h = env("HF_HOME"); !h.empty()) return (fs::path(h) / "hub").string();
  return (fs::path(env("HOME")) / ".cache" / "huggingface" / "hub").string();
}

std::string resolve_model_dir(const std::string& arg) {
  std::error_code ec;
  if (arg.empty() || fs::is_directory(arg, ec) || !looks_like_hub_id(arg)) return arg;
  const size_t at = arg.find('@');
  const std::string repo = arg.substr(0, at), revision = at == std::string::npos ? "main" : arg.substr(at + 1);
  const std::string org = repo.substr(0, repo.find('/')), name = repo.substr(repo.find('/') + 1);
  const fs::path root = fs::path(hub_cache_dir()) / ("models--" + org + "--" + name);
  const std::string how = "; download it first with `hf download " + repo +
                          (at == std::string::npos ? "" : " --revision " + revision) +
                          "` (huggingface_hub; older: huggingface-cli download), set HF_HUB_CACHE or HF_HOME to the "
                          "cache that holds it, or pass --model DIR";
  static const std::regex hash(R"(^[0-9a-f]{40}$)");
  std::string commit = revision;
  if (!std::regex_match(revision, hash)) {
    const fs::path ref = root / "refs" / revision;
    std::ifstream in(ref);
    if (!in)
      fail("model '", arg, "' is not a directory and not in the Hugging Face cache (no ", ref.string(), ")", how);
    std::getline(in, commit);
    while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back()))) commit.pop_back();
    if (!std::regex_match(commit, hash))
      fail(ref.string(), ": expected a 40-hex commit hash, found '", commit, "'");
  }
  const fs::path snap = root / "snapshots" / commit;
  if (!fs::is_directory(snap, ec))
    fail("model '", arg, "': the Hugging Face cache has no snapshot ", snap.string(), how);
  if (!fs::exists(snap / "config.json", ec))
    fail("model '", arg, "': snapshot ", snap.string(), " has no config.json (a partial download?)", how);
  return snap.string();
}

}  // namespace bmh
