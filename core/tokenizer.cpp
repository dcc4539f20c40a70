// The tokenizer pipeline (see core/tokenizer.h); the stages live in core/tokenizer_*.{h,cpp}.
#include "core/tokenizer.h"

#include <filesystem>
#include <unordered_map>

#include "core/error.h"
#include "core/tokenizer_added.h"
#include "core/tokenizer_bpe.h"
#include "core/tokenizer_byte_level.h"
#include "core/tokenizer_config.h"
#include "core/tokenizer_normalize.h"
#include "core/tokenizer_pretokenize.h"
#include "core/tokenizer_unicode.h"

namespace bmh {

struct TokenizerImpl {
  std::string path;
  bool nfc = false;
  std::unique_ptr<BytePairModel> bpe;
  ByteLevelSplitter splitter;
  AddedTokenMatcher raw_matcher;         // added tokens with normalized=false, matched before NFC
  AddedTokenMatcher normalized_matcher;  // added tokens with normalized=true, matched after NFC
  std::vector<std::string> pieces;       // id -> HF id_to_token
  std::vector<std::string> piece_bytes;  // id -> ByteLevel decoder bytes
  std::vector<uint8_t> special;          // id -> special added token
  std::unordered_map<std::string, int32_t> added_ids, model_ids;
  int32_t eos = -1;

  void encode(std::string_view text, std::vector<int32_t>& out) const;
  void encode_normalized(std::string_view text, std::vector<int32_t>& out) const;
};

Tokenizer::Tokenizer(std::unique_ptr<TokenizerImpl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& path) { return from_spec(read_tokenizer_json(path)); }

Tokenizer Tokenizer::from_json(std::string_view text, const std::string& path) {
  return from_spec(parse_tokenizer_json(text, path));
}

Tokenizer Tokenizer::from_spec(TokenizerSpec spec) {
  const std::string& path = spec.path;
  auto impl = std::make_unique<TokenizerImpl>();
  impl->path = path;
  impl->nfc = spec.nfc;
  impl->bpe = std::make_unique<BytePairModel>(spec.vocab, spec.merges, path);

  // Added-token ids as HF assigns them (tokenizer/serialization.rs -> AddedVocabulary::add_tokens, called once
  // with the file's list): a token whose content is already in the model vocabulary takes that id, the others take
  // ids counting up from the vocabulary's size, in file order. HF only warns when the file says otherwise; we refuse.
  const size_t model_size = spec.vocab.size();
  int32_t next_id = int32_t(model_size);
  std::unordered_map<std::string, int32_t> seen;
  for (size_t k = 0; k < spec.added_tokens.size(); ++k) {
    const AddedToken& a = spec.added_tokens[k];
    if (a.content.empty()) fail("tokenizer ", path, ": added_tokens[", k, "] has empty content");
    if (seen.count(a.content)) fail("tokenizer ", path, ": added_tokens[", k, "] repeats the content \"", a.content, "\"");
    auto in_model = spec.vocab.find(a.content);
    const int32_t id = in_model != spec.vocab.end() ? in_model->second : next_id++;
    if (id != a.id)
      fail("tokenizer ", path, ": added_tokens[", k, "] (\"", a.content, "\") has id ", a.id, " but HF tokenizers gives it ",
           id, " (its id in model.vocab, else the next id after model.vocab's ", model_size, " entries)");
    seen[a.content] = id;
  }
  const size_t n = size_t(next_id);
  impl->pieces.assign(n, std::string());
  std::vector<uint8_t> have(model_size, 0);
  for (const auto& [tok, id] : spec.vocab) {
    if (size_t(id) >= model_size || have[size_t(id)])
      fail("tokenizer ", path, ": model.vocab ids are not 0..", model_size - 1, " (id ", id, " of \"", tok, "\")");
    have[size_t(id)] = 1;
    impl->pieces[size_t(id)] = tok;
  }
  impl->model_ids = std::move(spec.vocab);

  // A normalized added token is matched, and shown by id_to_token / the decoder (simple_id_to_token's
  // normalized_cache), in its NFC form.
  std::vector<AddedToken> raw, normalized;
  for (AddedToken a : spec.added_tokens) {
    impl->added_ids[a.content] = a.id;
    if (a.normalized && impl->nfc) {
      std::string form;
      nfc_as_hf(a.content, form);
      a.content = std::move(form);
    }
    impl->pieces[size_t(a.id)] = a.content;
    (a.normalized ? normalized : raw).push_back(std::move(a));
  }
  auto pointers = [](const std::vector<AddedToken>& v) {
    std::vector<const AddedToken*> p;
    for (const auto& t : v) p.push_back(&t);
    return p;
  };
  impl->raw_matcher = AddedTokenMatcher(pointers(raw));
  impl->normalized_matcher = AddedTokenMatcher(pointers(normalized));

  // decode(skip_special_tokens) drops a token whose string is the content of a special added token
  // (AddedVocabulary::is_special_token).
  std::unordered_map<std::string, bool> special_contents;
  for (const auto& a : spec.added_tokens)
    if (a.special) special_contents[a.content] = true;
  impl->special.assign(n, 0);
  impl->piece_bytes.resize(n);
  for (size_t id = 0; id < n; ++id) {
    impl->special[id] = special_contents.count(impl->pieces[id]) ? 1 : 0;
    impl->piece_bytes[id] = byte_level::token_bytes(impl->pieces[id]);
  }

  auto eos = impl->added_ids.find("<|endoftext|>");
  impl->eos = eos != impl->added_ids.end() ? eos->second : -1;
  return Tokenizer(std::move(impl));
}

// Steps 3-4 of core/tokenizer.h on one piece that contains no added token.
void TokenizerImpl::encode_normalized(std::string_view text, std::vector<int32_t>& out) const {
  thread_local std::vector<std::string_view> words;
  words.clear();
  splitter.split(text, words);
  for (std::string_view w : words) bpe->encode_word(w, out);
}

void TokenizerImpl::encode(std::string_view text, std::vector<int32_t>& out) const {
  if (const size_t bad = unicode::invalid_utf8_offset(text); bad != std::string_view::npos)
    fail("tokenizer: input is not valid UTF-8: byte 0x", "0123456789ABCDEF"[(static_cast<unsigned char>(text[bad]) >> 4)],
         "0123456789ABCDEF"[static_cast<unsigned char>(text[bad]) & 15], " at byte offset ", bad, " of ", text.size());
  // Per-thread scratch buffers (encode never re-enters itself on a thread).
  thread_local std::vector<TextSegment> raw_segments, segments;
  thread_local std::string normalized;
  raw_segments.clear();
  raw_matcher.split(text, 0, raw_segments);
  for (const TextSegment& rs : raw_segments) {
    if (rs.id >= 0) {
      out.push_back(rs.id);
      continue;
    }
    std::string_view piece = text.substr(rs.begin, rs.end - rs.begin);
    if (nfc) {
      nfc_as_hf(piece, normalized);
      piece = normalized;
    }
    segments.clear();
    normalized_matcher.split(piece, 0, segments);
    for (const TextSegment& s : segments) {
      if (s.id >= 0)
        out.push_back(s.id);
      else
        encode_normalized(piece.substr(s.begin, s.end - s.begin), out);
    }
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 8);
  impl_->encode(text, out);
  return out;
}

void Tokenizer::encode_into(std::string_view text, std::vector<int32_t>& out) const { impl_->encode(text, out); }

// tokenizers/src/tokenizer/mod.rs, TokenizerImpl::decode: ids -> tokens (added vocabulary first), specials dropped
// when asked, then the ByteLevel decoder joins the bytes and converts them lossily.
std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::string bytes;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= vocab_size())
      fail("tokenizer: decode: ids[", i, "] = ", id, " is outside the vocabulary [0, ", vocab_size(), ")");
    if (skip_special_tokens && impl_->special[size_t(id)]) continue;
    bytes += impl_->piece_bytes[size_t(id)];
  }
  return unicode::utf8_lossy(bytes);
}

std::string Tokenizer::id_to_piece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) fail("tokenizer: id ", id, " is outside the vocabulary [0, ", vocab_size(), ")");
  return impl_->pieces[size_t(id)];
}

int32_t Tokenizer::piece_to_id(std::string_view piece) const {
  const std::string key(piece);
  if (auto it = impl_->added_ids.find(key); it != impl_->added_ids.end()) return it->second;
  if (auto it = impl_->model_ids.find(key); it != impl_->model_ids.end()) return it->second;
  return -1;
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && impl_->special[size_t(id)];
}

int Tokenizer::vocab_size() const { return int(impl_->pieces.size()); }

int32_t Tokenizer::eos_id() const {
  if (impl_->eos < 0) fail("tokenizer ", impl_->path, ": has no <|endoftext|> added token");
  return impl_->eos;
}

const std::string& Tokenizer::path() const { return impl_->path; }
size_t Tokenizer::cache_entries() const { return impl_->bpe->cache_entries(); }
void Tokenizer::clear_cache() const { impl_->bpe->clear_cache(); }

std::string default_tokenizer_path() {
  namespace fs = std::filesystem;
  const std::string rel = "data/tokenizer/gpt-neox-20b.json";
  std::vector<std::string> tried;
#ifdef BMH_SOURCE_DIR
  tried.push_back(std::string(BMH_SOURCE_DIR) + "/" + rel);
#endif
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) tried.push_back((exe.parent_path().parent_path() / rel).string());
  for (const auto& p : tried)
    if (fs::is_regular_file(p, ec)) return p;
  std::string list;
  for (const auto& p : tried) list += (list.empty() ? "" : ", ") + p;
  fail("tokenizer: the bundled ", rel, " was not found (looked at: ", list.empty() ? "nowhere" : list,
       "); pass --tokenizer FILE");
}

}  // namespace bmh
