// PIQA (lm_eval/tasks/piqa/piqa.yaml: dataset baber/piqa, split validation, multiple_choice, acc + acc_norm,
// version 1.0):
//   doc_to_text:   "Question: {{goal}}\nAnswer:"
//   doc_to_target: label                (valid-labels.lst, one 0/1 per line of valid.jsonl)
//   doc_to_choice: "{{[sol1, sol2]}}"
#include "core/error.h"
#include "evals/task_jsonl.h"
#include "evals/task_registry.h"
#include "evals/task_sha256.h"

namespace bmh::eval {

Task load_piqa(const std::string& dir) {
  Task t;
  t.name = "piqa";
  t.version = 1.0;
  t.output_type = OutputType::MultipleChoice;
  t.metrics = {"acc", "acc_norm"};
  t.dataset = "baber/piqa validation";
  t.format = "piqa-jsonl+labels";
  std::string path = dir + "/valid.jsonl", labels_path = dir + "/valid-labels.lst";
  t.files.push_back({path, sha256_file(path)});
  t.files.push_back({labels_path, sha256_file(labels_path)});
  std::vector<JsonLine> rows = read_jsonl(path);
  std::vector<std::string> labels = read_lines(labels_path);
  if (labels.size() != rows.size())
    fail(labels_path, ": ", labels.size(), " labels for the ", rows.size(), " records of ", path);
  for (size_t i = 0; i < rows.size(); ++i) {
    const JsonLine& l = rows[i];
    std::string goal = json_string(l, l.value, "goal", "goal");
    std::string sol1 = json_string(l, l.value, "sol1", "sol1");
    std::string sol2 = json_string(l, l.value, "sol2", "sol2");
    if (labels[i] != "0" && labels[i] != "1")
      fail(labels_path, ":", i + 1, ": label out of range: \"", labels[i], "\" (expected 0 or 1)");
    Doc d;
    d.id = int64_t(i);
    std::string ctx = "Question: " + goal + "\nAnswer:";
    d.choices = {sol1, sol2};
    for (const std::string& c : d.choices) d.requests.push_back({ctx, " " + c});
    d.gold = labels[i] == "1";
    t.docs.push_back(std::move(d));
  }
  return t;
}

}  // namespace bmh::eval
