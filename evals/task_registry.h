// The seven zero-shot tasks of the BlackMamba evaluation, as lm-evaluation-harness v0.4.x defines them
// (lm_eval/tasks/<task>/*.yaml), read from their original files in data/tasks/.
//
// A task is a list of documents; each document carries exactly the (context, continuation) pairs lm-eval's
// ConfigurableTask.construct_requests (lm_eval/api/task.py) makes for it, in Instance.idx order, plus what
// process_results needs (the choices, for acc_norm's lengths, and the gold index).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace bmh::eval {

// lm-eval OUTPUT_TYPE: multiple_choice (one loglikelihood request per choice; acc, acc_norm) or loglikelihood
// (one request; lambada's perplexity and acc).
enum class OutputType { MultipleChoice, Loglikelihood };
const char* to_string(OutputType t);

struct Request {
  std::string context;        // Instance.arguments[0]
  std::string continuation;   // Instance.arguments[1]
};

struct Doc {
  int64_t id = 0;                     // doc_id: 0-based position in the task's file
  std::vector<Request> requests;      // Instance idx order
  std::vector<std::string> choices;   // doc_to_choice (multiple_choice): acc_norm divides by len() of these
  int gold = -1;                      // multiple_choice: index into choices
};

struct DataFile {
  std::string path;
  std::string sha256;
};

struct Task {
  std::string name;                  // lm-eval task name
  double version = 1.0;              // metadata.version of the yaml
  OutputType output_type = OutputType::MultipleChoice;
  std::vector<std::string> metrics;  // metric_list, in yaml order
  std::string dataset;               // lm-eval dataset_path / dataset_name / split it corresponds to
  std::string format;                // which file format was read (hellaswag: "rowanz-jsonl" or "derived-txt")
  std::string note;                  // caveats that go into results.json (empty when lm-eval-identical)
  std::vector<DataFile> files;
  std::vector<Doc> docs;             // all documents (--limit takes the first N, as lm-eval's doc_iterator)
};

struct TaskOptions {
  std::string data_dir;              // empty: <source>/data/tasks
  std::string hellaswag_file;        // empty: data_dir/hellaswag/hellaswag_val.jsonl if present, else the .txt
};

std::vector<std::string> task_names();     // the seven, in the paper's order
// Loads a task; unknown names fail listing the known ones; malformed files fail naming file, line and field.
Task load_task(const std::string& name, const TaskOptions& opt = {});
std::string default_task_data_dir();
// Splits "a,b,c" and checks every name (before anything is loaded or written).
std::vector<std::string> parse_task_list(const std::string& csv);

// The AI2 question format of ARC and OpenBookQA: {"id", "question": {"stem", "choices": [{"text", "label"}]},
// "answerKey"}; `answer` is answerKey with lstrip() applied when `lstrip_key` (openbookqa.yaml does that).
struct JsonLine;
struct Ai2Question {
  std::string stem;
  std::vector<std::string> texts, labels;
  int gold = -1;   // choices.label.index(answerKey)
};
Ai2Question parse_ai2_question(const JsonLine& l, bool lstrip_key);

// Per-task loaders (evals/task_<family>.cpp); `dir` is the task's folder.
Task load_arc(const std::string& name, const std::string& dir);     // arc_easy, arc_challenge
Task load_openbookqa(const std::string& dir);
Task load_piqa(const std::string& dir);
Task load_winogrande(const std::string& dir);
Task load_lambada_openai(const std::string& dir);
Task load_hellaswag(const std::string& dir, const std::string& file);
// lm_eval/tasks/hellaswag/utils.py preprocess().
std::string hellaswag_preprocess(const std::string& text);

}  // namespace bmh::eval
