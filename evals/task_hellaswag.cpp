// HellaSwag (lm_eval/tasks/hellaswag/hellaswag.yaml + utils.py: dataset Rowan/hellaswag, split validation,
// multiple_choice, acc + acc_norm, version 1.0):
//   process_docs: query   = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())
//                 choices = [preprocess(ending) for ending in endings],  gold = int(label)
//   preprocess:   strip(); replace(" [title]", ". "); re.sub("\\[.*?\\]", ""); replace("  ", " ")
//   doc_to_text "{{query}}", doc_to_target "{{label}}", doc_to_choice "choices"; target_delimiter " ".
// Two file formats:
//   rowanz-jsonl  the original hellaswag_val.jsonl (rowanz/hellaswag data/): exactly lm-eval's documents.
//   derived-txt   hellaswag_val_full.txt (klosax/hellaswag_text_data, data/PROVENANCE.md): 6 lines per item,
//                 "activity_label: ctx", gold, 4 endings, already cleaned of [..] markers; ctx_b is not split
//                 out and stays lower-case, so the prompt differs from lm-eval's wherever capitalize() would
//                 change ctx_b. lm-eval's preprocess() is applied to both lines anyway.
#include <cstdio>

#include "core/error.h"
#include "core/json_bounded.h"
#include "evals/task_jsonl.h"
#include "evals/task_python_text.h"
#include "evals/task_registry.h"
#include "evals/task_sha256.h"

namespace bmh::eval {

// sha256 of rowanz/hellaswag data/hellaswag_val.jsonl (data/PROVENANCE.md, "missing").
static const char* kRowanzValSha256 = "0aa3b88843990f3f10a97b9575c94d7b71fb2205240ba04ae4884d9e9c992588";
static const char* kDerivedTxtSha256 = "d572539320eb2050e858ca34b495bbe2103e3b3f1391a9c3bcdf215b0bb93bd1";

// re.sub("\\[.*?\\]", "", s): '.' does not match '\n', so a '[' whose next ']' lies after a newline is kept.
static std::string remove_bracketed(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '[') {
      size_t j = i + 1;
      while (j < s.size() && s[j] != ']' && s[j] != '\n') ++j;
      if (j < s.size() && s[j] == ']') {
        i = j + 1;
        continue;
      }
    }
    out.push_back(s[i++]);
  }
  return out;
}

std::string hellaswag_preprocess(const std::string& text) {
  std::string t = py_strip(text);
  t = py_replace(t, " [title]", ". ");
  t = remove_bracketed(t);
  return py_replace(t, "  ", " ");
}

static Task hellaswag_base(const std::string& path) {
  Task t;
  t.name = "hellaswag";
  t.version = 1.0;
  t.output_type = OutputType::MultipleChoice;
  t.metrics = {"acc", "acc_norm"};
  t.dataset = "Rowan/hellaswag validation";
  t.files.push_back({path, sha256_file(path)});
  return t;
}

static Task load_rowanz_jsonl(const std::string& path) {
  Task t = hellaswag_base(path);
  t.format = "rowanz-jsonl";
  if (t.files[0].sha256 != kRowanzValSha256)
    t.note = "sha256 differs from rowanz/hellaswag data/hellaswag_val.jsonl (" + std::string(kRowanzValSha256) +
             "): not the original validation file";
  for (const JsonLine& l : read_jsonl(path)) {
    std::string activity = json_string(l, l.value, "activity_label", "activity_label");
    std::string ctx_a = json_string(l, l.value, "ctx_a", "ctx_a");
    std::string ctx_b = json_string(l, l.value, "ctx_b", "ctx_b");
    const nlohmann::json& endings = json_array(l, l.value, "endings", "endings");
    const nlohmann::json& label = json_field(l, l.value, "label", "label");
    Doc d;
    d.id = int64_t(t.docs.size());
    std::string query = hellaswag_preprocess(activity + ": " + ctx_a + " " + py_capitalize(ctx_b));
    for (size_t i = 0; i < endings.size(); ++i) {
      if (!endings[i].is_string())
        fail(where(l), "field \"endings[", i, "]\": expected a string, got ", endings[i].type_name());
      d.choices.push_back(hellaswag_preprocess(endings[i].get<std::string>()));
    }
    if (d.choices.empty()) fail(where(l), "field \"endings\": empty");
    // int(doc["label"]): the jsonl stores an int, HF a digit string.
    int64_t gold = -1;
    if (label.is_number_integer()) {
      gold = label.get<int64_t>();
    } else if (label.is_string() && !label.get<std::string>().empty() &&
               label.get<std::string>().find_first_not_of("0123456789") == std::string::npos &&
               label.get<std::string>().size() < 10) {
      gold = std::stoll(label.get<std::string>());
    } else {
      fail(where(l), "field \"label\": expected an integer, got ", json_brief(label));
    }
    if (gold < 0 || gold >= int64_t(d.choices.size()))
      fail(where(l), "field \"label\": label out of range: ", gold, " with ", d.choices.size(), " endings");
    d.gold = int(gold);
    for (const std::string& c : d.choices) d.requests.push_back({query, " " + c});
    t.docs.push_back(std::move(d));
  }
  return t;
}

static Task load_derived_txt(const std::string& path) {
  Task t = hellaswag_base(path);
  t.format = "derived-txt";
  t.note = "derived hellaswag_val_full.txt (klosax/hellaswag_text_data), not lm-eval-identical: ctx_b keeps its "
           "lower-case first letter (lm-eval capitalizes it) and the [..] cleaning was done by its author";
  if (t.files[0].sha256 != kDerivedTxtSha256) t.note += "; sha256 differs from the bundled copy";
  std::vector<std::string> lines = read_lines(path);
  if (lines.size() % 6 != 0)
    fail(path, ": ", lines.size(), " lines, not a multiple of 6 (context, label, 4 endings per item)");
  for (size_t k = 0; k < lines.size(); k += 6) {
    Doc d;
    d.id = int64_t(k / 6);
    const std::string& label = lines[k + 1];
    if (label.size() != 1 || label[0] < '0' || label[0] > '9')
      fail(path, ":", k + 2, ": label out of range: \"", label, "\" (expected 0-3)");
    int gold = label[0] - '0';
    if (gold > 3) fail(path, ":", k + 2, ": label out of range: ", gold, " with 4 endings");
    std::string query = hellaswag_preprocess(lines[k]);
    for (size_t e = 0; e < 4; ++e) d.choices.push_back(hellaswag_preprocess(lines[k + 2 + e]));
    d.gold = gold;
    for (const std::string& c : d.choices) d.requests.push_back({query, " " + c});
    t.docs.push_back(std::move(d));
  }
  return t;
}

Task load_hellaswag(const std::string& dir, const std::string& file) {
  std::string path = file;
  if (path.empty()) {
    std::string jsonl = dir + "/hellaswag_val.jsonl";
    FILE* f = std::fopen(jsonl.c_str(), "rb");
    if (f) std::fclose(f);
    path = f ? jsonl : dir + "/hellaswag_val_full.txt";
  }
  bool is_jsonl = path.size() >= 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0;
  return is_jsonl ? load_rowanz_jsonl(path) : load_derived_txt(path);
}

}  // namespace bmh::eval
