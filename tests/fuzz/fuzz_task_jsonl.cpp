// The zero-shot tasks' original files (evals/task_*.cpp). The first byte picks the task; the rest is its file.
#include <filesystem>

#include "evals/task_registry.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const struct { const char* task; const char* file; } kTasks[] = {
      {"lambada_openai", "lambada_test.jsonl"}, {"piqa", "valid.jsonl"},  {"winogrande", "dev.jsonl"},
      {"arc_easy", "ARC-Easy-Test.jsonl"},      {"arc_challenge", "ARC-Challenge-Test.jsonl"},
      {"openbookqa", "test.jsonl"},             {"hellaswag", "hellaswag_val_full.txt"}};
  // The task directories and label files (one label per line for the first lines: piqa 0/1, winogrande 1/2) are
  // written once; each execution rewrites only the fuzzed file (the loaders resolve files by directory).
  static const bool ready = [] {
    for (const auto& t : kTasks) std::filesystem::create_directories(bmh::fuzz::scratch_dir() + "/tasks/" + t.task);
    bmh::fuzz::write_scratch("tasks/piqa/valid-labels.lst", reinterpret_cast<const uint8_t*>("0\n1\n0\n"), 6);
    bmh::fuzz::write_scratch("tasks/winogrande/dev-labels.lst", reinterpret_cast<const uint8_t*>("1\n2\n1\n"), 6);
    return true;
  }();
  (void)ready;
  if (size < 1) return 0;
  const auto& t = kTasks[data[0] % 7];
  bmh::fuzz::write_scratch(std::string("tasks/") + t.task + "/" + t.file, data + 1, size - 1);
  bmh::fuzz::expect_named_errors([&] {
    bmh::eval::TaskOptions opt;
    opt.data_dir = bmh::fuzz::scratch_dir() + "/tasks";
    (void)bmh::eval::load_task(t.task, opt);
  });
  return 0;
}
