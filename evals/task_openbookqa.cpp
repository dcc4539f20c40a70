// OpenBookQA main (lm_eval/tasks/openbookqa/openbookqa.yaml: dataset openbookqa/main, split test,
// multiple_choice, acc + acc_norm, version 1.0):
//   doc_to_text:   question_stem                      (a feature name: the bare stem, no template)
//   doc_to_target: "{{choices.label.index(answerKey.lstrip())}}"
//   doc_to_choice: "{{choices.text}}"
// HF openbookqa maps the original jsonl as question_stem = question.stem, choices = {text, label}.
#include "evals/task_jsonl.h"
#include "evals/task_registry.h"
#include "evals/task_sha256.h"

namespace bmh::eval {

Task load_openbookqa(const std::string& dir) {
  Task t;
  t.name = "openbookqa";
  t.version = 1.0;
  t.output_type = OutputType::MultipleChoice;
  t.metrics = {"acc", "acc_norm"};
  t.dataset = "openbookqa main test";
  t.format = "ai2-jsonl";
  std::string path = dir + "/test.jsonl";
  t.files.push_back({path, sha256_file(path)});
  for (const JsonLine& l : read_jsonl(path)) {
    Ai2Question q = parse_ai2_question(l, true);
    Doc d;
    d.id = int64_t(t.docs.size());
    for (const std::string& c : q.texts) d.requests.push_back({q.stem, " " + c});
    d.choices = q.texts;
    d.gold = q.gold;
    t.docs.push_back(std::move(d));
  }
  return t;
}

}  // namespace bmh::eval
