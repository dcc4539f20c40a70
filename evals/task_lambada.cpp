// LAMBADA, OpenAI's detokenized test set (lm_eval/tasks/lambada/lambada_openai.yaml: dataset
// EleutherAI/lambada_openai default, split test, output_type loglikelihood, metrics perplexity (aggregation
// perplexity) + acc (mean), version 1.0):
//   doc_to_text:   "{{text.split(' ')[:-1]|join(' ')}}"
//   doc_to_target: "{{' '+text.split(' ')[-1]}}"
// construct_requests for loglikelihood: (ctx, doc_to_target) with no target delimiter added.
#include "evals/task_jsonl.h"
#include "evals/task_python_text.h"
#include "evals/task_registry.h"
#include "evals/task_sha256.h"

namespace bmh::eval {

Task load_lambada_openai(const std::string& dir) {
  Task t;
  t.name = "lambada_openai";
  t.version = 1.0;
  t.output_type = OutputType::Loglikelihood;
  t.metrics = {"perplexity", "acc"};
  t.dataset = "EleutherAI/lambada_openai default test";
  t.format = "openai-jsonl";
  std::string path = dir + "/lambada_test.jsonl";
  t.files.push_back({path, sha256_file(path)});
  for (const JsonLine& l : read_jsonl(path)) {
    std::string text = json_string(l, l.value, "text", "text");
    std::vector<std::string> words = py_split(text, " ");
    std::string last = words.back();
    words.pop_back();
    Doc d;
    d.id = int64_t(t.docs.size());
    d.requests.push_back({py_join(words, " "), " " + last});
    t.docs.push_back(std::move(d));
  }
  return t;
}

}  // namespace bmh::eval
