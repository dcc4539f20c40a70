// Python 3 str semantics on UTF-8 (see task_python_text.h). Case mappings: utf8proc's simple mappings plus the
// unconditional full mappings of Unicode SpecialCasing.txt that CPython applies (Objects/unicodectype.c,
// _PyUnicode_ToTitleFull/_PyUnicode_ToLowerFull) and the Final_Sigma rule of Objects/unicodeobject.c
// (handle_capital_sigma).
#include "evals/task_python_text.h"

#include <utf8proc.h>

#include <fstream>
#include <iterator>
#include <sstream>

#include "core/error.h"

namespace bmh::eval {

std::u32string utf8_decode(std::string_view s, std::string_view what) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                                          utf8proc_ssize_t(s.size() - i), &cp);
    if (n <= 0) fail(what, ": invalid UTF-8 at byte ", i);
    out.push_back(char32_t(cp));
    i += size_t(n);
  }
  return out;
}

std::string utf8_encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  utf8proc_uint8_t buf[4];
  for (char32_t c : s) {
    utf8proc_ssize_t n = utf8proc_encode_char(utf8proc_int32_t(c), buf);
    out.append(reinterpret_cast<const char*>(buf), size_t(n));
  }
  return out;
}

// The code points for which CPython's str.isspace() is true (Unicode 15: bidi WS/B/S or category Zs).
bool py_isspace(char32_t c) {
  if (c < 0x80) return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20);
  switch (c) {
    case 0x85: case 0xa0: case 0x1680: case 0x2028: case 0x2029: case 0x202f: case 0x205f: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200a;
  }
}

static bool is_cont_byte(unsigned char b) { return (b & 0xc0) == 0x80; }

std::string py_strip(std::string_view s) {
  std::u32string u = utf8_decode(s);
  size_t a = 0, b = u.size();
  while (a < b && py_isspace(u[a])) ++a;
  while (b > a && py_isspace(u[b - 1])) --b;
  return utf8_encode(std::u32string_view(u).substr(a, b - a));
}

std::string py_rstrip(std::string_view s) {
  std::u32string u = utf8_decode(s);
  size_t b = u.size();
  while (b > 0 && py_isspace(u[b - 1])) --b;
  return utf8_encode(std::u32string_view(u).substr(0, b));
}

size_t py_len(std::string_view s) {
  utf8_decode(s);  // validates
  size_t n = 0;
  for (unsigned char b : s) n += !is_cont_byte(b);
  return n;
}

// SpecialCasing.txt titlecase mappings that differ from the simple one (unconditional entries only).
static const std::u32string* full_title(char32_t c) {
  static const std::vector<std::pair<char32_t, std::u32string>> table = {
      {0x00df, U"\u0053\u0073"},        {0xfb00, U"\u0046\u0066"},        {0xfb01, U"\u0046\u0069"},
      {0xfb02, U"\u0046\u006c"},        {0xfb03, U"\u0046\u0066\u0069"},  {0xfb04, U"\u0046\u0066\u006c"},
      {0xfb05, U"\u0053\u0074"},        {0xfb06, U"\u0053\u0074"},        {0x0587, U"\u0535\u0582"},
      {0xfb13, U"\u0544\u0576"},        {0xfb14, U"\u0544\u0565"},        {0xfb15, U"\u0544\u056b"},
      {0xfb16, U"\u054e\u0576"},        {0xfb17, U"\u0544\u056d"},        {0x0149, U"\u02bc\u004e"},
      {0x0390, U"\u0399\u0308\u0301"},  {0x03b0, U"\u03a5\u0308\u0301"},  {0x01f0, U"\u004a\u030c"},
      {0x1e96, U"\u0048\u0331"},        {0x1e97, U"\u0054\u0308"},        {0x1e98, U"\u0057\u030a"},
      {0x1e99, U"\u0059\u030a"},        {0x1e9a, U"\u0041\u02be"},        {0x1f50, U"\u03a5\u0313"},
      {0x1f52, U"\u03a5\u0313\u0300"},  {0x1f54, U"\u03a5\u0313\u0301"},  {0x1f56, U"\u03a5\u0313\u0342"},
      {0x1fb6, U"\u0391\u0342"},        {0x1fc6, U"\u0397\u0342"},        {0x1fd2, U"\u0399\u0308\u0300"},
      {0x1fd3, U"\u0399\u0308\u0301"},  {0x1fd6, U"\u0399\u0342"},        {0x1fd7, U"\u0399\u0308\u0342"},
      {0x1fe2, U"\u03a5\u0308\u0300"},  {0x1fe3, U"\u03a5\u0308\u0301"},  {0x1fe4, U"\u03a1\u0313"},
      {0x1fe6, U"\u03a5\u0342"},        {0x1fe7, U"\u03a5\u0308\u0342"},  {0x1ff6, U"\u03a9\u0342"},
      {0x1fb2, U"\u1fba\u0345"},        {0x1fb4, U"\u0386\u0345"},        {0x1fc2, U"\u1fca\u0345"},
      {0x1fc4, U"\u0389\u0345"},        {0x1ff2, U"\u1ffa\u0345"},        {0x1ff4, U"\u038f\u0345"},
      {0x1fb7, U"\u0391\u0342\u0345"},  {0x1fc7, U"\u0397\u0342\u0345"},  {0x1ff7, U"\u03a9\u0342\u0345"},
  };
  for (const auto& [k, v] : table)
    if (k == c) return &v;
  return nullptr;
}

static bool is_cased(char32_t c) {
  auto cat = utf8proc_category(utf8proc_int32_t(c));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}

static bool is_case_ignorable(char32_t c) {
  auto cat = utf8proc_category(utf8proc_int32_t(c));
  if (cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME || cat == UTF8PROC_CATEGORY_CF ||
      cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_SK)
    return true;
  // Word_Break MidLetter / MidNumLet / Single_Quote.
  switch (c) {
    case 0x27: case 0x2e: case 0x3a: case 0xb7: case 0x387: case 0x5f4: case 0x2018: case 0x2019: case 0x2024:
    case 0x2027: case 0xfe13: case 0xfe52: case 0xfe55: case 0xff07: case 0xff0e: case 0xff1a:
      return true;
    default:
      return false;
  }
}

// CPython handle_capital_sigma: U+03A3 lowers to final sigma U+03C2 when preceded by a cased letter and not
// followed by one (case-ignorable characters skipped on both sides).
static char32_t lower_sigma(const std::u32string& u, size_t i) {
  size_t j = i;
  bool before = false, after = false;
  while (j > 0) {
    char32_t c = u[--j];
    if (is_case_ignorable(c)) continue;
    before = is_cased(c);
    break;
  }
  for (j = i + 1; j < u.size(); ++j) {
    if (is_case_ignorable(u[j])) continue;
    after = is_cased(u[j]);
    break;
  }
  return before && !after ? 0x3c2 : 0x3c3;
}

std::string py_capitalize(std::string_view s) {
  std::u32string u = utf8_decode(s), out;
  for (size_t i = 0; i < u.size(); ++i) {
    char32_t c = u[i];
    if (i == 0) {
      if (const std::u32string* t = full_title(c)) {
        out += *t;
      } else {
        out.push_back(char32_t(utf8proc_totitle(utf8proc_int32_t(c))));
      }
    } else if (c == 0x130) {
      out += U"\u0069\u0307";  // SpecialCasing: LATIN CAPITAL LETTER I WITH DOT ABOVE
    } else if (c == 0x3a3) {
      out.push_back(lower_sigma(u, i));
    } else {
      out.push_back(char32_t(utf8proc_tolower(utf8proc_int32_t(c))));
    }
  }
  return utf8_encode(out);
}

std::vector<std::string> py_split(std::string_view s, std::string_view sep) {
  if (sep.empty()) fail("py_split: empty separator");
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t p = s.find(sep, start);
    if (p == std::string_view::npos) break;
    out.emplace_back(s.substr(start, p - start));
    start = p + sep.size();
  }
  out.emplace_back(s.substr(start));
  return out;
}

std::string py_join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

std::string py_replace(std::string_view s, std::string_view from, std::string_view to) {
  if (from.empty()) fail("py_replace: empty pattern");
  std::string out;
  size_t start = 0;
  for (;;) {
    size_t p = s.find(from, start);
    if (p == std::string_view::npos) break;
    out.append(s.substr(start, p - start));
    out.append(to);
    start = p + from.size();
  }
  out.append(s.substr(start));
  return out;
}

// The regex is anchored on `open`; `[^close]*?` cannot cross `close`, so a match ends at the first `close` after
// `open`, and the lazy group between the greedy leading `\s*` and the trailing `\s*` is the inside with
// whitespace trimmed from both ends. An `open` with no `close` after it does not match.
std::string py_trim_inside_pairs(std::string_view s, char open, char close) {
  std::u32string u = utf8_decode(s), out;
  size_t i = 0;
  while (i < u.size()) {
    if (u[i] != char32_t(open)) {
      out.push_back(u[i++]);
      continue;
    }
    size_t j = i + 1;
    while (j < u.size() && u[j] != char32_t(close)) ++j;
    if (j == u.size()) {
      out.push_back(u[i++]);
      continue;
    }
    size_t a = i + 1, b = j;
    while (a < b && py_isspace(u[a])) ++a;
    while (b > a && py_isspace(u[b - 1])) --b;
    out.push_back(char32_t(open));
    out.append(u, a, b - a);
    out.push_back(char32_t(close));
    i = j + 1;
  }
  return utf8_encode(out);
}

size_t py_count_split_whitespace(std::string_view s) {
  std::u32string u = utf8_decode(s);
  size_t pieces = 1;
  for (size_t i = 0; i < u.size();) {
    if (py_isspace(u[i])) {
      ++pieces;
      while (i < u.size() && py_isspace(u[i])) ++i;
    } else {
      ++i;
    }
  }
  return pieces;
}

std::string read_binary_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open ", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail("error reading ", path);
  return ss.str();
}

std::string read_text_file(const std::string& path) {
  std::string raw = read_binary_file(path), out;
  utf8_decode(raw, path);
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
    } else {
      out.push_back(raw[i]);
    }
  }
  return out;
}

}  // namespace bmh::eval
