// GPT-2 split regex on PCRE2 (see core/tokenizer_pretokenize.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "core/tokenizer_pretokenize.h"

#include <pcre2.h>

#include <cstdio>
#include <memory>
#include <string>

#include "core/error.h"
#include "core/tokenizer_unicode.h"

namespace bmh {

namespace {

std::string class_items(std::span<const unicode::CodepointRange> ranges) {
  std::string s;
  char buf[40];
  for (const auto& r : ranges) {
    if (r.first == r.last)
      std::snprintf(buf, sizeof buf, "\\x{%X}", unsigned(r.first));
    else
      std::snprintf(buf, sizeof buf, "\\x{%X}-\\x{%X}", unsigned(r.first), unsigned(r.last));
    s += buf;
  }
  return s;
}

std::string gpt2_pattern() {
  const std::string L = class_items(unicode::letter_ranges());
  const std::string N = class_items(unicode::number_ranges());
  const std::string S = class_items(unicode::white_space_ranges());
  return "'s|'t|'re|'ve|'m|'ll|'d"
         "| ?[" + L + "]+"
         "| ?[" + N + "]+"
         "| ?[^" + S + L + N + "]+"
         "|[" + S + "]+(?![^" + S + "])"
         "|[" + S + "]+";
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

struct MatchDataDeleter {
  void operator()(pcre2_match_data* md) const { pcre2_match_data_free(md); }
};

}  // namespace

ByteLevelSplitter::ByteLevelSplitter() {
  const std::string pattern = gpt2_pattern();
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF, &err,
                                   &err_offset, nullptr);
  if (!code) fail("tokenizer: PCRE2 rejected the GPT-2 split pattern at offset ", err_offset, ": ", pcre2_message(err));
  // JIT is an optimisation only; pcre2_match falls back to the interpreter with identical results.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  code_ = code;
}

ByteLevelSplitter::~ByteLevelSplitter() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void ByteLevelSplitter::split(std::string_view text, std::vector<std::string_view>& out) const {
  if (text.empty()) return;
  auto* code = static_cast<pcre2_code*>(code_);
  thread_local std::unique_ptr<pcre2_match_data, MatchDataDeleter> md(pcre2_match_data_create(1, nullptr));
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t prev = 0;
  while (prev < text.size()) {
    const int rc = pcre2_match(code, subject, text.size(), prev, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) fail("tokenizer: PCRE2 match failed at byte ", prev, " of a ", text.size(), "-byte piece: ", pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    if (ov[0] > prev) out.push_back(text.substr(prev, ov[0] - prev));  // gap (Isolated keeps it)
    if (ov[1] == ov[0]) fail("tokenizer: the GPT-2 split pattern matched an empty string at byte ", ov[0]);
    out.push_back(text.substr(ov[0], ov[1] - ov[0]));
    prev = ov[1];
  }
  if (prev < text.size()) out.push_back(text.substr(prev));
}

}  // namespace bmh
