#include "evals/task_registry.h"

#include "core/error.h"

namespace bmh::eval {

const char* to_string(OutputType t) {
  return t == OutputType::MultipleChoice ? "multiple_choice" : "loglikelihood";
}

std::vector<std::string> task_names() {
  return {"lambada_openai", "hellaswag", "piqa", "winogrande", "arc_easy", "arc_challenge", "openbookqa"};
}

std::string default_task_data_dir() { return std::string(BMH_SOURCE_DIR) + "/data/tasks"; }

static std::string known_list() {
  std::string s;
  for (const std::string& n : task_names()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

std::vector<std::string> parse_task_list(const std::string& csv) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= csv.size()) {
    size_t p = csv.find(',', start);
    std::string name = csv.substr(start, p == std::string::npos ? std::string::npos : p - start);
    if (name.empty()) fail("--tasks \"", csv, "\": empty task name (known tasks: ", known_list(), ")");
    bool known = false;
    for (const std::string& k : task_names()) known |= k == name;
    if (!known) fail("unknown task \"", name, "\" (known tasks: ", known_list(), ")");
    for (const std::string& o : out)
      if (o == name) fail("--tasks \"", csv, "\": task \"", name, "\" given twice");
    out.push_back(name);
    if (p == std::string::npos) break;
    start = p + 1;
  }
  return out;
}

Task load_task(const std::string& name, const TaskOptions& opt) {
  std::string root = opt.data_dir.empty() ? default_task_data_dir() : opt.data_dir;
  if (name == "arc_easy" || name == "arc_challenge") return load_arc(name, root + "/" + name);
  if (name == "openbookqa") return load_openbookqa(root + "/openbookqa");
  if (name == "piqa") return load_piqa(root + "/piqa");
  if (name == "winogrande") return load_winogrande(root + "/winogrande");
  if (name == "lambada_openai") return load_lambada_openai(root + "/lambada_openai");
  if (name == "hellaswag") return load_hellaswag(root + "/hellaswag", opt.hellaswag_file);
  fail("unknown task \"", name, "\" (known tasks: ", known_list(), ")");
}

}  // namespace bmh::eval
