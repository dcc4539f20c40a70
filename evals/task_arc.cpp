// ARC-Easy / ARC-Challenge (lm_eval/tasks/arc/arc_easy.yaml, arc_challenge.yaml: dataset allenai/ai2_arc, split
// test, output_type multiple_choice, metrics acc + acc_norm, version 1.0):
//   doc_to_text:   "Question: {{question}}\nAnswer:"
//   doc_to_target: "{{choices.label.index(answerKey)}}"
//   doc_to_choice: "{{choices.text}}"
// HF allenai/ai2_arc maps the AI2 jsonl as question = question.stem, choices = {text: [...], label: [...]}.
#include "core/error.h"
#include "evals/task_jsonl.h"
#include "evals/task_python_text.h"
#include "evals/task_registry.h"
#include "evals/task_sha256.h"

namespace bmh::eval {

Ai2Question parse_ai2_question(const JsonLine& l, bool lstrip_key) {
  Ai2Question q;
  const nlohmann::json& question = json_field(l, l.value, "question", "question");
  q.stem = json_string(l, question, "stem", "question.stem");
  const nlohmann::json& choices = json_array(l, question, "choices", "question.choices");
  if (choices.empty()) fail(where(l), "field \"question.choices\": empty");
  for (size_t i = 0; i < choices.size(); ++i) {
    std::string p = "question.choices[" + std::to_string(i) + "]";
    q.texts.push_back(json_string(l, choices[i], "text", p + ".text"));
    q.labels.push_back(json_string(l, choices[i], "label", p + ".label"));
  }
  std::string key = json_string(l, l.value, "answerKey", "answerKey");
  if (lstrip_key) {  // str.lstrip()
    std::u32string u = utf8_decode(key);
    size_t a = 0;
    while (a < u.size() && py_isspace(u[a])) ++a;
    key = utf8_encode(std::u32string_view(u).substr(a));
  }
  for (size_t i = 0; i < q.labels.size(); ++i)
    if (q.labels[i] == key) {  // list.index: the first match
      q.gold = int(i);
      break;
    }
  if (q.gold < 0)
    fail(where(l), "field \"answerKey\": label out of range: \"", key, "\" is not among the choice labels");
  return q;
}

Task load_arc(const std::string& name, const std::string& dir) {
  bool easy = name == "arc_easy";
  Task t;
  t.name = name;
  t.version = 1.0;
  t.output_type = OutputType::MultipleChoice;
  t.metrics = {"acc", "acc_norm"};
  t.dataset = std::string("allenai/ai2_arc ") + (easy ? "ARC-Easy" : "ARC-Challenge") + " test";
  t.format = "ai2-jsonl";
  std::string path = dir + (easy ? "/ARC-Easy-Test.jsonl" : "/ARC-Challenge-Test.jsonl");
  t.files.push_back({path, sha256_file(path)});
  for (const JsonLine& l : read_jsonl(path)) {
    Ai2Question q = parse_ai2_question(l, false);
    Doc d;
    d.id = int64_t(t.docs.size());
    std::string ctx = "Question: " + q.stem + "\nAnswer:";
    for (const std::string& c : q.texts) d.requests.push_back({ctx, " " + c});  // target_delimiter " "
    d.choices = q.texts;
    d.gold = q.gold;
    t.docs.push_back(std::move(d));
  }
  return t;
}

}  // namespace bmh::eval
