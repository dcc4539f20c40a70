#include "train/checkpoint_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/checkpoint.h"
#include "core/error.h"
#include "train/family_layout.h"

namespace bmh::train {

namespace {

namespace fs = std::filesystem;

void write_synced(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail("cannot create ", path);
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n <= 0) {
      ::close(fd);
      fail("cannot write ", path);
    }
    off += size_t(n);
  }
  ::fsync(fd);
  ::close(fd);
}

void sync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

std::string checkpoint_dir(const std::string& out_dir) { return (fs::path(out_dir) / "checkpoint").string(); }

void save_checkpoint(const std::string& out_dir, const ModelConfig& cfg, const TensorMap& params,
                     const TensorMap& optimizer_state, const nlohmann::json& trainer_state) {
  const fs::path out(out_dir), final_dir = out / "checkpoint", prev = out / "checkpoint.prev";
  const fs::path tmp = out / ("checkpoint.tmp." + std::to_string(getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  write_model_dir(tmp.string(), cfg, params);
  write_safetensors((tmp / "optimizer.safetensors").string(), optimizer_state,
                    {{"optimizer", "torch.optim.AdamW state (exp_avg, exp_avg_sq per parameter)"}});
  write_synced((tmp / "trainer_state.json").string(), trainer_state.dump(1) + "\n");
  for (const auto& e : fs::directory_iterator(tmp)) sync_path(e.path().string());
  sync_path(tmp.string());
  std::error_code ec;
  if (fs::exists(final_dir)) {
    fs::remove_all(prev);
    fs::rename(final_dir, prev, ec);
    if (ec) fail("cannot move ", final_dir.string(), " aside: ", ec.message());
  }
  fs::rename(tmp, final_dir, ec);
  if (ec) fail("cannot rename ", tmp.string(), " to ", final_dir.string(), ": ", ec.message());
  sync_path(out.string());
  fs::remove_all(prev);
}

bool recover_checkpoint(const std::string& out_dir) {
  const fs::path out(out_dir), final_dir = out / "checkpoint", prev = out / "checkpoint.prev";
  if (!fs::exists(out)) return false;
  std::vector<fs::path> stale;
  for (const auto& e : fs::directory_iterator(out))
    if (e.path().filename().string().rfind("checkpoint.tmp.", 0) == 0) stale.push_back(e.path());
  for (const auto& p : stale) fs::remove_all(p);
  if (!fs::exists(final_dir) && fs::exists(prev)) fs::rename(prev, final_dir);
  else if (fs::exists(prev)) fs::remove_all(prev);
  return fs::is_regular_file(final_dir / "trainer_state.json");
}

nlohmann::json read_trainer_state(const std::string& out_dir) {
  const std::string path = checkpoint_dir(out_dir) + "/trainer_state.json";
  std::ifstream in(path);
  if (!in) fail("cannot open ", path);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": invalid JSON: ", e.what());
  }
}

TensorMap read_optimizer_state(const std::string& out_dir) {
  return read_safetensors(checkpoint_dir(out_dir) + "/optimizer.safetensors").tensors;
}

}  // namespace bmh::train
