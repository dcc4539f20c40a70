// Added tokens (specials such as <|endoftext|>, and GPT-NeoX's runs of 2..24 spaces) are cut out of the text
// before the BPE model sees it, as HF's AddedVocabulary does (tokenizers/src/tokenizer/added_vocabulary.rs):
// tokens with normalized=false are matched in the raw text, tokens with normalized=true in the NFC'd pieces; both
// with leftmost-longest, non-overlapping matching (daachorse MatchKind::LeftmostLongest).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bmh {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool normalized = true;
};

// A piece of text: either an added token (id >= 0) or text for the next stage (id == -1); [begin, end) bytes.
struct TextSegment {
  size_t begin, end;
  int32_t id;
};

// Leftmost-longest matcher over a fixed set of byte strings (a byte trie; scanning skips bytes that start none).
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(const std::vector<const AddedToken*>& tokens);

  bool empty() const { return nodes_.size() <= 1; }
  // Appends the segments of `text` (offsets relative to `text`, plus `base`); empty text gives nothing.
  void split(std::string_view text, size_t base, std::vector<TextSegment>& out) const;

 private:
  struct Node {
    int32_t child[256];
    int32_t id = -1;  // token ending here
  };
  std::vector<Node> nodes_;
  bool starts_[256] = {};
};

}  // namespace bmh
