// The GPT-NeoX-20B tokenizer (Pythia, Mamba, BlackMamba): a HF `tokenizer.json` with NFC, ByteLevel and BPE,
// encoding exactly as HF tokenizers 0.23.2 does (tokenizers/src/tokenizer/mod.rs, encode_single_sequence):
//   1. added tokens with normalized=false are split out of the raw text (leftmost-longest match),
//   2. each remaining piece is NFC-normalized, then added tokens with normalized=true are split out of it,
//   3. each remaining piece is cut by the GPT-2 regex (ByteLevel pre-tokenizer),
//   4. each pre-token's bytes become byte-level symbols that BPE merges by rank.
// decode() maps ids back through the ByteLevel decoder; invalid UTF-8 in the joined bytes becomes U+FFFD as Rust's
// String::from_utf8_lossy does.
//
// Input that is not valid UTF-8 is refused: encode() throws bmh::Error naming the byte offset and byte (HF can only
// be handed a Rust &str, so there is no reference behaviour to match). A tokenizer.json using a feature not
// implemented here is refused at load, naming the feature.
//
// Thread safety: a loaded Tokenizer is immutable; its pre-token -> ids cache is per thread (as HF's), so
// encode()/decode() may be called from many threads at once without locks.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace bmh {

struct TokenizerImpl;
struct TokenizerSpec;

class Tokenizer {
 public:
  // Loads a HF tokenizer.json; throws bmh::Error naming the file and the key for anything unsupported or malformed.
  static Tokenizer load(const std::string& path);
  // What load does with the file's text (path names it in errors and path()).
  static Tokenizer from_json(std::string_view text, const std::string& path);

  std::vector<int32_t> encode(std::string_view text) const;
  // Appends to `out` (no clearing); for callers that batch many strings into one buffer.
  void encode_into(std::string_view text, std::vector<int32_t>& out) const;

  // HF Tokenizer::decode(ids, skip_special_tokens). Throws for an id outside [0, vocab_size()).
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = true) const;

  // The token's string as stored in the file ("Ġthe" for " the"); HF id_to_token.
  std::string id_to_piece(int32_t id) const;
  // -1 when absent; HF token_to_id (added tokens first, then the BPE vocabulary).
  int32_t piece_to_id(std::string_view piece) const;
  bool is_special(int32_t id) const;

  int vocab_size() const;  // ids are exactly 0..vocab_size()-1 (model vocabulary plus added tokens)
  int32_t eos_id() const;  // "<|endoftext|>"
  const std::string& path() const;

  // Pre-token cache: entries in the calling thread's cache; clear_cache() empties every thread's.
  size_t cache_entries() const;
  void clear_cache() const;

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

 private:
  explicit Tokenizer(std::unique_ptr<TokenizerImpl> impl);
  static Tokenizer from_spec(TokenizerSpec spec);
  std::unique_ptr<TokenizerImpl> impl_;
};

// The bundled data/tokenizer/gpt-neox-20b.json: looked up under the source tree (BMH_SOURCE_DIR) and then next to
// the executable (<exe dir>/../data/tokenizer/). Throws naming every place it looked.
std::string default_tokenizer_path();

}  // namespace bmh
