// Python 3 str semantics that lm-evaluation-harness's task definitions rely on, on UTF-8 std::strings:
// str.strip/rstrip (Unicode whitespace), str.capitalize, len (code points), str.split(sep), str.replace, the
// `\s` class of `re`, and Python's universal-newline text reading. Task loaders build prompts only through these,
// so a prompt equals the string lm-eval's Python would build for the same document.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace bmh::eval {

// UTF-8 <-> code points. Invalid UTF-8 throws bmh::Error naming `what` and the byte offset.
std::u32string utf8_decode(std::string_view s, std::string_view what = "text");
std::string utf8_encode(std::u32string_view s);

// str.isspace() for one code point (also what `\s` matches in a str pattern of Python's re module): bidirectional
// class WS, B or S, or general category Zs.
bool py_isspace(char32_t c);

std::string py_strip(std::string_view s);    // str.strip()
std::string py_rstrip(std::string_view s);   // str.rstrip()
size_t py_len(std::string_view s);           // len(str): code points
// str.capitalize() (Python >= 3.8): the first character title-cased (full mapping: "ß" -> "Ss"), the rest
// lower-cased (full mapping, with the Final_Sigma rule).
std::string py_capitalize(std::string_view s);
std::vector<std::string> py_split(std::string_view s, std::string_view sep);   // str.split(sep), sep non-empty
std::string py_join(const std::vector<std::string>& parts, std::string_view sep);
std::string py_replace(std::string_view s, std::string_view from, std::string_view to);  // str.replace, from non-empty

// re.sub(open + r"\s*([^" + close + r"]*?)\s*" + close, open + r"\1" + close, s): trims whitespace just inside
// each non-overlapping open..close pair (wikitext's detokenizer; open/close are ASCII).
std::string py_trim_inside_pairs(std::string_view s, char open, char close);
// len(re.split(r"\s+", s)): the number of pieces, empty leading/trailing pieces included.
size_t py_count_split_whitespace(std::string_view s);

// open(path, encoding="utf-8").read(): bytes checked as UTF-8, "\r\n" and "\r" read as "\n".
std::string read_text_file(const std::string& path);
// The raw bytes of a file.
std::string read_binary_file(const std::string& path);

}  // namespace bmh::eval
