// The prompts of the first documents of each task equal what lm-evaluation-harness v0.4.x builds: the expected
// strings below were written from the task yaml/utils files named in each test and the documents' raw fields
// (data/tasks/), applying lm_eval/api/task.py construct_requests (target_delimiter " "). Also: Python string
// semantics the prompts depend on, document counts, and bad-input errors.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <functional>
#include <fstream>

#include "core/error.h"
#include "evals/task_python_text.h"
#include "evals/task_registry.h"

using namespace bmh::eval;
namespace fs = std::filesystem;

static void expect_requests(const Doc& d, const std::vector<Request>& want) {
  ASSERT_EQ(d.requests.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(d.requests[i].context, want[i].context) << "request " << i;
    EXPECT_EQ(d.requests[i].continuation, want[i].continuation) << "request " << i;
  }
}

static std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const bmh::Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(PythonText, CapitalizeStripLen) {
  // CPython 3.12.1: "ßtraße İstanbul ΣΑΣ".capitalize() == "Sstraße i̇stanbul σας" (full title case of ß, full
  // lower case of İ, final sigma), "ǆemal".capitalize() == "ǅemal" (title case, not upper case).
  EXPECT_EQ(py_capitalize("\xc3\x9ftra\xc3\x9f" "e \xc4\xb0stanbul \xce\xa3\xce\x91\xce\xa3"),
            "Sstra\xc3\x9f" "e i\xcc\x87stanbul \xcf\x83\xce\xb1\xcf\x82");
  EXPECT_EQ(py_capitalize("\xc7\x86" "emal"), "\xc7\x85" "emal");
  EXPECT_EQ(py_capitalize("a SHARP knife"), "A sharp knife");
  EXPECT_EQ(py_capitalize(""), "");
  EXPECT_EQ(py_strip("  \xc2\xa0x y\xe3\x80\x80\t"), "x y");  // NBSP and IDEOGRAPHIC SPACE are whitespace
  EXPECT_EQ(py_rstrip("Answer: \n"), "Answer:");
  EXPECT_EQ(py_len("\xc3\xa9\xc2\xbd" "a"), 3u);
  EXPECT_EQ(py_split("a  b", " "), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_EQ(py_count_split_whitespace(" a  b\n"), 4u);  // re.split(r"\s+", " a  b\n") -> ['', 'a', 'b', '']
}

TEST(Tasks, Registry) {
  EXPECT_EQ(task_names().size(), 7u);
  std::string err = error_of([] { parse_task_list("piqa,nosuch"); });
  EXPECT_NE(err.find("unknown task \"nosuch\""), std::string::npos) << err;
  for (const std::string& n : task_names()) EXPECT_NE(err.find(n), std::string::npos) << err;
  EXPECT_EQ(parse_task_list("piqa,arc_easy"), (std::vector<std::string>{"piqa", "arc_easy"}));
  EXPECT_NE(error_of([] { load_task("hellaswag_x"); }).find("known tasks"), std::string::npos);
}

// lm_eval/tasks/arc/arc_easy.yaml: "Question: {{question}}\nAnswer:", choices.text, label.index(answerKey).
TEST(Tasks, ArcEasyFirstDoc) {
  Task t = load_task("arc_easy");
  EXPECT_EQ(t.docs.size(), 2376u);
  const std::string q =
      "Question: Which statement best explains why photosynthesis is the foundation of most food webs?\nAnswer:";
  expect_requests(t.docs[0], {{q, " Sunlight is the source of energy for nearly all ecosystems."},
                              {q, " Most ecosystems are found on land instead of in water."},
                              {q, " Carbon dioxide is more available than other gases."},
                              {q, " The producers in all ecosystems are plants."}});
  EXPECT_EQ(t.docs[0].gold, 0);
  EXPECT_EQ(t.docs[0].choices[3], "The producers in all ecosystems are plants.");
}

TEST(Tasks, ArcChallengeFirstDoc) {
  Task t = load_task("arc_challenge");
  EXPECT_EQ(t.docs.size(), 1172u);
  const std::string q =
      "Question: An astronomer observes that a planet rotates faster after a meteorite impact. Which is the most "
      "likely effect of this increase in rotation?\nAnswer:";
  expect_requests(t.docs[0], {{q, " Planetary density will decrease."},
                              {q, " Planetary years will become longer."},
                              {q, " Planetary days will become shorter."},
                              {q, " Planetary gravity will become stronger."}});
  EXPECT_EQ(t.docs[0].gold, 2);  // answerKey "C"
  // Some answer keys are digits, as in the AI2 release: gold is still the label's position.
  for (const Doc& d : t.docs) EXPECT_TRUE(d.gold >= 0 && d.gold < int(d.choices.size()));
}

// lm_eval/tasks/openbookqa/openbookqa.yaml: doc_to_text is the bare question_stem.
TEST(Tasks, OpenBookQAFirstDoc) {
  Task t = load_task("openbookqa");
  EXPECT_EQ(t.docs.size(), 500u);
  const std::string q =
      "A person wants to start saving money so that they can afford a nice vacation at the end of the year. After "
      "looking over their budget and expenses, they decide the best way to save money is to";
  expect_requests(t.docs[0], {{q, " make more phone calls"},
                              {q, " quit eating lunch out"},
                              {q, " buy less with monopoly money"},
                              {q, " have lunch with friends"}});
  EXPECT_EQ(t.docs[0].gold, 1);  // answerKey "B"
  expect_requests(t.docs[1], {{"There is most likely going to be fog around:", " a marsh"},
                              {"There is most likely going to be fog around:", " a tundra"},
                              {"There is most likely going to be fog around:", " the plains"},
                              {"There is most likely going to be fog around:", " a desert"}});
}

// lm_eval/tasks/piqa/piqa.yaml: "Question: {{goal}}\nAnswer:", [sol1, sol2], label.
TEST(Tasks, PiqaFirstDocs) {
  Task t = load_task("piqa");
  EXPECT_EQ(t.docs.size(), 1838u);
  const std::string q = "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:";
  expect_requests(t.docs[0],
                  {{q, " Provide the guinea pig with a cage full of a few inches of bedding made of ripped paper "
                       "strips, you will also need to supply it with a water bottle and a food dish."},
                   {q, " Provide the guinea pig with a cage full of a few inches of bedding made of ripped jeans "
                       "material, you will also need to supply it with a water bottle and a food dish."}});
  EXPECT_EQ(t.docs[0].gold, 0);
  // Trailing and double spaces of the solutions are kept; acc_norm's length counts them.
  expect_requests(t.docs[1], {{"Question: dresser\nAnswer:", " replace drawer with bobby pin "},
                              {"Question: dresser\nAnswer:", " finish, woodgrain with  bobby pin "}});
  EXPECT_EQ(t.docs[1].gold, 1);
  EXPECT_EQ(py_len(t.docs[1].choices[0]), 30u);
}

// lm_eval/tasks/winogrande/preprocess_winogrande.py: one context per option, shared continuation.
TEST(Tasks, WinograndeFirstDoc) {
  Task t = load_task("winogrande");
  EXPECT_EQ(t.docs.size(), 1267u);
  expect_requests(t.docs[0], {{"Sarah was a much better surgeon than Maria so Sarah", " always got the easier cases."},
                              {"Sarah was a much better surgeon than Maria so Maria", " always got the easier cases."}});
  EXPECT_EQ(t.docs[0].gold, 1);  // answer "2"
  EXPECT_EQ(t.docs[1].gold, 0);  // answer "1"
  expect_requests(t.docs[2], {{"They were worried the wine would ruin the bed and the blanket, but the blanket",
                               " was't ruined."},
                              {"They were worried the wine would ruin the bed and the blanket, but the bed",
                               " was't ruined."}});
}

// lm_eval/tasks/lambada/lambada_openai.yaml: text.split(' ')[:-1] joined by ' ', and ' ' + the last word.
TEST(Tasks, LambadaFirstDoc) {
  Task t = load_task("lambada_openai");
  EXPECT_EQ(t.docs.size(), 5153u);
  const Doc& d = t.docs[0];
  ASSERT_EQ(d.requests.size(), 1u);
  EXPECT_EQ(d.requests[0].continuation, " signs");
  const std::string head = "In my palm is a clear stone, and inside it is a small ivory statuette. A guardian angel.\n\n";
  EXPECT_EQ(d.requests[0].context.substr(0, head.size()), head);
  const std::string tail = "his mouth curved in a confident grin, I don't care about";
  EXPECT_EQ(d.requests[0].context.substr(d.requests[0].context.size() - tail.size()), tail);
  EXPECT_EQ(t.output_type, OutputType::Loglikelihood);
  EXPECT_EQ(t.metrics, (std::vector<std::string>{"perplexity", "acc"}));
}

// lm_eval/tasks/hellaswag/utils.py on the bundled derived file: preprocess() runs on the combined line.
TEST(Tasks, HellaswagDerivedFirstDocs) {
  Task t = load_task("hellaswag");
  EXPECT_EQ(t.format, "derived-txt");
  EXPECT_NE(t.note.find("not lm-eval-identical"), std::string::npos);
  EXPECT_EQ(t.docs.size(), 10042u);
  const std::string q = "Roof shingle removal: A man is sitting on a roof. he";
  expect_requests(t.docs[0], {{q, " is using wrap to wrap a pair of skis."},
                              {q, " is ripping level tiles off."},
                              {q, " is holding a rubik's cube."},
                              {q, " starts pulling up roofing on a roof."}});
  EXPECT_EQ(t.docs[0].gold, 3);
  EXPECT_EQ(t.docs[1].requests[0].context,
            "Clean and jerk: A lady walks to a barbell. She bends down and grabs the pole. the lady");
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("bmh_eval_tasks_" + std::to_string(::getpid()) + "_" +
                                         std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string write(const std::string& rel, const std::string& text) const {
    fs::path p = path_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  std::string str() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

// The rowanz/hellaswag jsonl (the primary format; its first record's fields, and a WikiHow-style record with
// markers). Expected strings: utils.py process_docs/preprocess, checked by running that file under CPython 3.12.
TEST(Tasks, HellaswagRowanzJsonl) {
  TempDir dir;
  std::string path = dir.write(
      "hellaswag_val.jsonl",
      R"({"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", "ctx_b": "he", "ctx": "A man is sitting on a roof. he", "split": "val", "split_type": "indomain", "label": 3, "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.", "is holding a rubik's cube.", "starts pulling up roofing on a roof."], "source_id": "activitynet~v_-JhWjGDPHMY"})"
      "\n"
      R"({"activity_label": "Home and Garden", "ctx_a": "[header] How to build a bird feeder [title] Gather your materials. [step] You will need a bottle.", "ctx_b": "a SHARP knife [substeps] and string", "endings": [" [substeps] Cut a hole in the side.  Then hang it. ", "[title] Wash the bottle [step] rinse it.", "Fill it with seed [", "\u00df is fine"], "label": "1"})"
      "\n");
  TaskOptions opt;
  opt.hellaswag_file = path;
  Task t = load_task("hellaswag", opt);
  EXPECT_EQ(t.format, "rowanz-jsonl");
  EXPECT_NE(t.note.find("sha256 differs"), std::string::npos);  // a test file, not the original
  ASSERT_EQ(t.docs.size(), 2u);
  const std::string q0 = "Roof shingle removal: A man is sitting on a roof. He";
  expect_requests(t.docs[0], {{q0, " is using wrap to wrap a pair of skis."},
                              {q0, " is ripping level tiles off."},
                              {q0, " is holding a rubik's cube."},
                              {q0, " starts pulling up roofing on a roof."}});
  EXPECT_EQ(t.docs[0].gold, 3);
  const std::string q1 =
      "Home and Garden: How to build a bird feeder. Gather your materials. You will need a bottle. A sharp knife and "
      "string";
  expect_requests(t.docs[1], {{q1, "  Cut a hole in the side. Then hang it."},
                              {q1, "  Wash the bottle rinse it."},
                              {q1, " Fill it with seed ["},
                              {q1, " \xc3\x9f is fine"}});
  EXPECT_EQ(t.docs[1].gold, 1);
}

TEST(Tasks, BadInputErrorsNameFileLineAndField) {
  TempDir dir;
  // Malformed JSON on line 2.
  dir.write("piqa/valid.jsonl", "{\"goal\": \"a\", \"sol1\": \"b\", \"sol2\": \"c\"}\n{\"goal\": \"a\", \n");
  dir.write("piqa/valid-labels.lst", "0\n1\n");
  TaskOptions opt;
  opt.data_dir = dir.str();
  std::string err = error_of([&] { load_task("piqa", opt); });
  EXPECT_NE(err.find("piqa/valid.jsonl:2: malformed JSON"), std::string::npos) << err;

  // Label out of range.
  dir.write("piqa/valid.jsonl", "{\"goal\": \"a\", \"sol1\": \"b\", \"sol2\": \"c\"}\n");
  dir.write("piqa/valid-labels.lst", "2\n");
  err = error_of([&] { load_task("piqa", opt); });
  EXPECT_NE(err.find("valid-labels.lst:1: label out of range"), std::string::npos) << err;

  // Missing field.
  dir.write("winogrande/dev.jsonl",
            "{\"sentence\": \"A _ b.\", \"option1\": \"x\", \"option2\": \"y\", \"answer\": \"1\"}\n"
            "{\"sentence\": \"A _ b.\", \"option1\": \"x\", \"answer\": \"2\"}\n");
  err = error_of([&] { load_task("winogrande", opt); });
  EXPECT_NE(err.find("winogrande/dev.jsonl:2: field \"option2\": missing"), std::string::npos) << err;

  // Wrong type of a nested field.
  dir.write("arc_easy/ARC-Easy-Test.jsonl",
            "{\"id\":\"x\",\"question\":{\"stem\":\"s\",\"choices\":[{\"text\":\"t\",\"label\":\"A\"},"
            "{\"text\":5,\"label\":\"B\"}]},\"answerKey\":\"A\"}\n");
  err = error_of([&] { load_task("arc_easy", opt); });
  EXPECT_NE(err.find("ARC-Easy-Test.jsonl:1: field \"question.choices[1].text\": expected a string"),
            std::string::npos) << err;

  // Answer key not among the labels.
  dir.write("arc_easy/ARC-Easy-Test.jsonl",
            "{\"id\":\"x\",\"question\":{\"stem\":\"s\",\"choices\":[{\"text\":\"t\",\"label\":\"A\"}]},"
            "\"answerKey\":\"E\"}\n");
  err = error_of([&] { load_task("arc_easy", opt); });
  EXPECT_NE(err.find("ARC-Easy-Test.jsonl:1: field \"answerKey\": label out of range"), std::string::npos) << err;

  // HellaSwag label out of range in the jsonl.
  std::string hs = dir.write("hs.jsonl",
                             "{\"activity_label\": \"a\", \"ctx_a\": \"b\", \"ctx_b\": \"c\", \"endings\": [\"d\", "
                             "\"e\"], \"label\": 2}\n");
  TaskOptions hopt;
  hopt.hellaswag_file = hs;
  err = error_of([&] { load_task("hellaswag", hopt); });
  EXPECT_NE(err.find("hs.jsonl:1: field \"label\": label out of range"), std::string::npos) << err;

  // A missing file.
  TaskOptions empty;
  empty.data_dir = dir.str() + "/nothing";
  err = error_of([&] { load_task("openbookqa", empty); });
  EXPECT_NE(err.find("cannot open"), std::string::npos) << err;
}
