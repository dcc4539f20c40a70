// UTF-8 validation, decoding and Rust-compatible lossy conversion (see core/tokenizer_unicode.h).
#include "core/tokenizer_unicode.h"

#include <algorithm>

namespace bmh::unicode {

bool in_ranges(std::span<const CodepointRange> ranges, char32_t c) {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), c,
                             [](char32_t v, const CodepointRange& r) { return v < r.first; });
  return it != ranges.begin() && c <= std::prev(it)->last;
}

namespace {

// Length of the well-formed sequence that lead byte `b` starts (0: not a lead byte), and the allowed range of the
// second byte (Unicode Table 3-7: E0 needs A0..BF, ED 80..9F, F0 90..BF, F4 80..8F).
struct Lead {
  int len;
  unsigned char lo, hi;
};

Lead lead_of(unsigned char b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// Number of bytes at s[i] that form a well-formed sequence (== its length) or the maximal valid prefix of one.
int well_formed_prefix(std::string_view s, size_t i, int* full_len) {
  const auto b = static_cast<unsigned char>(s[i]);
  const Lead lead = lead_of(b);
  *full_len = lead.len;
  if (lead.len <= 1) return lead.len;
  int n = 1;
  for (; n < lead.len && i + n < s.size(); ++n) {
    const auto c = static_cast<unsigned char>(s[i + n]);
    const unsigned char lo = n == 1 ? lead.lo : 0x80, hi = n == 1 ? lead.hi : 0xBF;
    if (c < lo || c > hi) break;
  }
  return n;
}

}  // namespace

size_t invalid_utf8_offset(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      __builtin_memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    int full = 0;
    const int got = well_formed_prefix(s, i, &full);
    if (full == 0 || got != full) return i;
    i += size_t(full);
  }
  return std::string_view::npos;
}

char32_t next_codepoint(std::string_view s, size_t& i) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) {
    ++i;
    return b;
  }
  int len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
  char32_t c = b & (0x7F >> len);
  for (int k = 1; k < len; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += size_t(len);
  return c;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(char(c));
  } else if (c < 0x800) {
    out.push_back(char(0xC0 | (c >> 6)));
    out.push_back(char(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(char(0xE0 | (c >> 12)));
    out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(char(0x80 | (c & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (c >> 18)));
    out.push_back(char(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(char(0x80 | (c & 0x3F)));
  }
}

// Rust std's Utf8Chunks (library/core/src/str/lossy.rs) yields valid runs and each invalid sequence as its maximal
// valid prefix (at least one byte); from_utf8_lossy writes U+FFFD for each of those.
std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    int full = 0;
    const int got = well_formed_prefix(s, i, &full);
    if (full != 0 && got == full) {
      out.append(s.data() + i, size_t(full));
      i += size_t(full);
    } else {
      out.append("\xEF\xBF\xBD");
      i += size_t(std::max(got, 1));
    }
  }
  return out;
}

}  // namespace bmh::unicode
