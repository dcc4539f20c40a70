// WinoGrande (lm_eval/tasks/winogrande/default.yaml + preprocess_winogrande.py: dataset winogrande_xl, split
// validation = winogrande_1.1 dev.jsonl, multiple_choice, acc only, version 1.0). Partial evaluation:
//   doc_to_text   -> {"1": 0, "2": 1}[answer]            an int, so ConfigurableTask sets multiple_input and the
//                                                         gold index comes from doc_to_text (task.py)
//   doc_to_choice -> [sentence[:idx] + option1, sentence[:idx] + option2],  idx = sentence.index("_")
//   doc_to_target -> sentence[idx + 1:].strip()
// construct_requests with multiple_input: one request per choice, (ctx + choice, " " + target) with ctx = ""
// (fewshot_context returns the empty labeled examples for multiple_input): the continuation is shared.
#include "core/error.h"
#include "evals/task_jsonl.h"
#include "evals/task_python_text.h"
#include "evals/task_registry.h"
#include "evals/task_sha256.h"

namespace bmh::eval {

Task load_winogrande(const std::string& dir) {
  Task t;
  t.name = "winogrande";
  t.version = 1.0;
  t.output_type = OutputType::MultipleChoice;
  t.metrics = {"acc"};
  t.dataset = "winogrande winogrande_xl validation";
  t.format = "winogrande-jsonl";
  std::string path = dir + "/dev.jsonl";
  t.files.push_back({path, sha256_file(path)});
  for (const JsonLine& l : read_jsonl(path)) {
    std::string sentence = json_string(l, l.value, "sentence", "sentence");
    std::string option1 = json_string(l, l.value, "option1", "option1");
    std::string option2 = json_string(l, l.value, "option2", "option2");
    std::string answer = json_string(l, l.value, "answer", "answer");
    if (answer != "1" && answer != "2")
      fail(where(l), "field \"answer\": label out of range: \"", answer, "\" (expected \"1\" or \"2\")");
    size_t idx = sentence.find('_');  // a byte index; '_' is ASCII so the slices equal the str slices
    if (idx == std::string::npos) fail(where(l), "field \"sentence\": no \"_\" blank");
    std::string target = py_strip(std::string_view(sentence).substr(idx + 1));
    Doc d;
    d.id = int64_t(t.docs.size());
    d.choices = {sentence.substr(0, idx) + option1, sentence.substr(0, idx) + option2};
    for (const std::string& c : d.choices) d.requests.push_back({c, " " + target});
    d.gold = answer == "1" ? 0 : 1;
    t.docs.push_back(std::move(d));
  }
  return t;
}

}  // namespace bmh::eval
