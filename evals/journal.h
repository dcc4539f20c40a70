// An append-only journal of scored requests, so a run killed at any point (kill -9 included) resumes where it
// stopped and ends with identical results. One text line per result, written, flushed and fsync'ed as each
// batch's results arrive:
//   bmh-eval-journal 1 <fingerprint>                (header: the model/backend/dtype; another one is refused)
//   <key> <logprob as C99 hex float> <is_greedy>     (key: sha256 of n_continuation + tokens, 32 hex digits)
// A torn last line (no newline: the process died mid-write) is dropped on reopening; any other malformed line
// is an error naming the file and line.
#pragma once
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/language_model.h"

namespace bmh::eval {

std::string request_key(const ScoreRequest& r);

class Journal {
 public:
  // Opens or creates `path`. An existing journal must carry the same fingerprint.
  Journal(std::string path, const std::string& fingerprint);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  const std::unordered_map<std::string, ScoreResult>& done() const { return done_; }
  // Appends, then fflush + fsync before returning.
  void append(const std::vector<std::pair<std::string, ScoreResult>>& results);
  // Deletes the file (after the results it fed are safely written).
  void remove();
  const std::string& path() const { return path_; }
  size_t resumed() const { return resumed_; }   // records found when opened

 private:
  std::string path_;
  int fd_ = -1;
  std::unordered_map<std::string, ScoreResult> done_;
  size_t resumed_ = 0;
};

// fsync a file's directory, so a create/rename in it is durable.
void fsync_dir_of(const std::string& path);

}  // namespace bmh::eval
