#include "evals/journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "evals/task_python_text.h"
#include "evals/task_sha256.h"

namespace bmh::eval {

static const char* kMagic = "bmh-eval-journal 1 ";

std::string request_key(const ScoreRequest& r) {
  std::string bytes(4 + 4 * r.tokens.size(), '\0');
  int32_t n = r.n_continuation;
  std::memcpy(bytes.data(), &n, 4);
  if (!r.tokens.empty()) std::memcpy(bytes.data() + 4, r.tokens.data(), 4 * r.tokens.size());
  return sha256_hex(bytes).substr(0, 32);
}

void fsync_dir_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) fail("cannot open directory ", dir, ": ", std::strerror(errno));
  ::fsync(fd);
  ::close(fd);
}

static void write_all(int fd, const std::string& s, const std::string& path) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t w = ::write(fd, s.data() + off, s.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("writing ", path, ": ", std::strerror(errno));
    }
    off += size_t(w);
  }
}

Journal::Journal(std::string path, const std::string& fingerprint) : path_(std::move(path)) {
  const std::string header = kMagic + fingerprint + "\n";
  struct stat st;
  bool exists = ::stat(path_.c_str(), &st) == 0;
  if (exists) {
    std::string text = read_binary_file(path_);
    bool torn_header = text.size() < header.size() && header.compare(0, text.size(), text) == 0;
    if (!torn_header) {
      if (text.compare(0, std::strlen(kMagic), kMagic) != 0) fail(path_, ":1: not a bmh eval journal");
      if (text.compare(0, header.size(), header) != 0)
        fail(path_, ": journal of a different model, backend or dtype; delete it or choose another --out");
    }
    size_t end = text.rfind('\n');
    size_t complete = torn_header || end == std::string::npos ? 0 : end + 1;
    size_t pos = header.size(), line = 2;
    while (pos < complete) {
      size_t nl = text.find('\n', pos);
      std::string rec = text.substr(pos, nl - pos);
      char key[64], hexf[64];
      int greedy = -1;
      if (std::sscanf(rec.c_str(), "%63s %63s %d", key, hexf, &greedy) != 3 || std::strlen(key) != 32 ||
          (greedy != 0 && greedy != 1))
        fail(path_, ":", line, ": malformed journal record \"", rec, "\"");
      char* endp = nullptr;
      double lp = std::strtod(hexf, &endp);
      if (*endp != '\0') fail(path_, ":", line, ": malformed log-probability \"", hexf, "\"");
      done_[key] = ScoreResult{lp, greedy == 1};
      pos = nl + 1;
      ++line;
    }
    resumed_ = done_.size();
    fd_ = ::open(path_.c_str(), O_WRONLY);
    if (fd_ < 0) fail("cannot open ", path_, ": ", std::strerror(errno));
    if (complete < header.size()) {  // nothing valid: rewrite the header
      if (::ftruncate(fd_, 0) != 0) fail("truncating ", path_, ": ", std::strerror(errno));
      ::lseek(fd_, 0, SEEK_SET);
      write_all(fd_, header, path_);
    } else if (complete < text.size()) {  // drop the torn last line
      if (::ftruncate(fd_, off_t(complete)) != 0) fail("truncating ", path_, ": ", std::strerror(errno));
    }
    ::lseek(fd_, 0, SEEK_END);
    ::fsync(fd_);
  } else {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd_ < 0) fail("cannot create ", path_, ": ", std::strerror(errno));
    write_all(fd_, header, path_);
    ::fsync(fd_);
    fsync_dir_of(path_);
  }
}

Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);
}

void Journal::append(const std::vector<std::pair<std::string, ScoreResult>>& results) {
  if (results.empty()) return;
  std::string buf;
  char line[128];
  for (const auto& [key, r] : results) {
    std::snprintf(line, sizeof line, "%s %a %d\n", key.c_str(), r.logprob, r.is_greedy ? 1 : 0);
    buf += line;
    done_[key] = r;
  }
  write_all(fd_, buf, path_);
  if (::fsync(fd_) != 0) fail("fsync ", path_, ": ", std::strerror(errno));
}

void Journal::remove() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(path_.c_str());
  fsync_dir_of(path_);
}

}  // namespace bmh::eval
