// bmh tokenize / bmh detokenize: the GPT-NeoX-20B tokenizer from the command line.
//   bmh tokenize --input STRINGS.json --out OUT.jsonl   a JSON array of strings in, one {"ids": [...]} line per string
//   bmh tokenize --text "Hello world"                   ids and pieces, for a quick look
//   bmh detokenize --input IDS.jsonl --out OUT.json     {"ids": [...]} lines in, a JSON array of strings out
//   bmh detokenize --ids 12092,1533                     the text
// --tokenizer FILE overrides the bundled data/tokenizer/gpt-neox-20b.json.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tokenizer.h"
#include "experiments/command.h"
#include "experiments/output_paths.h"

namespace bmh {
namespace {

struct TokenizeOptions {
  std::string tokenizer, input, out, text, ids;
  bool keep_special = false;
};

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open ", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::ofstream open_out(const std::string& path) {
  std::ofstream f(path, std::ios::binary);
  if (!f) fail("cannot write ", path);
  return f;
}

Tokenizer load_tokenizer(const std::string& path) {
  return Tokenizer::load(path.empty() ? default_tokenizer_path() : path);
}

void run_tokenize(const TokenizeOptions& o) {
  check_output_not_input("--out", o.out, {o.input, o.tokenizer});
  if (o.text.empty() == o.input.empty()) fail("tokenize: give exactly one of --text and --input");
  const Tokenizer tok = load_tokenizer(o.tokenizer);
  if (!o.input.empty()) {
    if (o.out.empty()) fail("tokenize: --input needs --out");
    nlohmann::json strings;
    try {
      strings = nlohmann::json::parse(read_file(o.input));
    } catch (const nlohmann::json::exception& e) {
      fail("tokenize: ", o.input, " is not valid JSON: ", e.what());
    }
    if (!strings.is_array()) fail("tokenize: ", o.input, " is not a JSON array of strings");
    std::string lines;  // written only once every string has encoded
    std::vector<int32_t> ids;
    for (size_t i = 0; i < strings.size(); ++i) {
      if (!strings[i].is_string()) fail("tokenize: ", o.input, "[", i, "] is not a string");
      const auto& s = strings[i].get_ref<const std::string&>();
      ids.clear();
      try {
        tok.encode_into(s, ids);
      } catch (const Error& e) {
        fail(o.input, "[", i, "]: ", e.what());
      }
      lines += nlohmann::json{{"ids", ids}}.dump();
      lines += '\n';
    }
    std::ofstream out = open_out(o.out);
    out << lines;
    if (!out.flush()) fail("tokenize: writing ", o.out, " failed");
    std::fprintf(stderr, "tokenize: %zu strings -> %s\n", strings.size(), o.out.c_str());
    return;
  }
  const std::vector<int32_t> ids = tok.encode(o.text);
  std::printf("%s\n", nlohmann::json(ids).dump().c_str());
  for (int32_t id : ids)
    std::printf("%6d  %s\n", id, nlohmann::json(tok.id_to_piece(id)).dump().c_str());
}

std::vector<int32_t> parse_id_list(const std::string& s) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    long v = 0;
    try {
      v = std::stol(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size()) fail("detokenize: --ids item \"", item, "\" is not an integer");
    ids.push_back(int32_t(v));
  }
  return ids;
}

void run_detokenize(const TokenizeOptions& o) {
  check_output_not_input("--out", o.out, {o.input, o.tokenizer});
  if (o.ids.empty() == o.input.empty()) fail("detokenize: give exactly one of --ids and --input");
  const Tokenizer tok = load_tokenizer(o.tokenizer);
  if (!o.ids.empty()) {
    std::printf("%s\n", tok.decode(parse_id_list(o.ids), !o.keep_special).c_str());
    return;
  }
  if (o.out.empty()) fail("detokenize: --input needs --out");
  std::ifstream in(o.input, std::ios::binary);
  if (!in) fail("cannot open ", o.input);
  nlohmann::json texts = nlohmann::json::array();
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    std::vector<int32_t> ids;
    try {
      ids = nlohmann::json::parse(line).at("ids").get<std::vector<int32_t>>();
    } catch (const nlohmann::json::exception& e) {
      fail("detokenize: ", o.input, ":", lineno, ": expected {\"ids\": [...]}: ", e.what());
    }
    try {
      texts.push_back(tok.decode(ids, !o.keep_special));
    } catch (const Error& e) {
      fail(o.input, ":", lineno, ": ", e.what());
    }
  }
  std::ofstream out = open_out(o.out);
  out << texts.dump() << '\n';
  if (!out.flush()) fail("detokenize: writing ", o.out, " failed");
  std::fprintf(stderr, "detokenize: %zu lines -> %s\n", texts.size(), o.out.c_str());
}

void add_tokenize_commands(CLI::App& app) {
  auto opts = std::make_shared<TokenizeOptions>();
  CLI::App* t = app.add_subcommand("tokenize", "Encode strings with the GPT-NeoX-20B tokenizer (HF tokenizers-exact)");
  t->add_option("--tokenizer", opts->tokenizer, "tokenizer.json (default: the bundled gpt-neox-20b.json)");
  t->add_option("--input", opts->input, "JSON array of strings");
  t->add_option("--out", opts->out, "output: one {\"ids\": [...]} line per input string");
  t->add_option("--text", opts->text, "encode this text and print ids and pieces");
  t->callback([opts] { run_tokenize(*opts); });

  CLI::App* d = app.add_subcommand("detokenize", "Decode ids with the GPT-NeoX-20B tokenizer (HF tokenizers-exact)");
  d->add_option("--tokenizer", opts->tokenizer, "tokenizer.json (default: the bundled gpt-neox-20b.json)");
  d->add_option("--input", opts->input, "jsonl of {\"ids\": [...]} lines (bmh tokenize's output)");
  d->add_option("--out", opts->out, "output: a JSON array of strings");
  d->add_option("--ids", opts->ids, "comma-separated ids to decode and print");
  d->add_flag("--keep-special", opts->keep_special, "keep special tokens (HF skip_special_tokens=False)");
  d->callback([opts] { run_detokenize(*opts); });
}

static const bool registered = register_command(&add_tokenize_commands);

}  // namespace
}  // namespace bmh
