// Leftmost-longest added-token matching (see core/tokenizer_added.h).
#include "core/tokenizer_added.h"

#include <algorithm>

namespace bmh {

AddedTokenMatcher::AddedTokenMatcher(const std::vector<const AddedToken*>& tokens) {
  nodes_.emplace_back();
  std::fill(std::begin(nodes_[0].child), std::end(nodes_[0].child), -1);
  for (const AddedToken* t : tokens) {
    if (t->content.empty()) continue;  // HF ignores empty added tokens
    int32_t node = 0;
    for (char ch : t->content) {
      const auto b = static_cast<unsigned char>(ch);
      if (nodes_[node].child[b] < 0) {
        nodes_[node].child[b] = int32_t(nodes_.size());
        nodes_.emplace_back();
        std::fill(std::begin(nodes_.back().child), std::end(nodes_.back().child), -1);
      }
      node = nodes_[node].child[b];
    }
    nodes_[node].id = t->id;
    starts_[static_cast<unsigned char>(t->content[0])] = true;
  }
}

// At the leftmost position where any token matches, take the longest token matching there; continue after it.
// Tokens are valid UTF-8, so a match can only start on a character boundary.
void AddedTokenMatcher::split(std::string_view text, size_t base, std::vector<TextSegment>& out) const {
  if (text.empty()) return;
  size_t emitted = 0, i = 0;
  const size_t n = text.size();
  if (!empty()) {
    while (i < n) {
      if (!starts_[static_cast<unsigned char>(text[i])]) {
        ++i;
        continue;
      }
      int32_t node = 0, best_id = -1;
      size_t best_end = 0;
      for (size_t j = i; j < n; ++j) {
        node = nodes_[node].child[static_cast<unsigned char>(text[j])];
        if (node < 0) break;
        if (nodes_[node].id >= 0) {
          best_id = nodes_[node].id;
          best_end = j + 1;
        }
      }
      if (best_id < 0) {
        ++i;
        continue;
      }
      if (emitted < i) out.push_back({base + emitted, base + i, -1});
      out.push_back({base + i, base + best_end, best_id});
      emitted = i = best_end;
    }
  }
  if (emitted < n) out.push_back({base + emitted, base + n, -1});
}

}  // namespace bmh
