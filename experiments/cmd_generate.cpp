// bmh generate: decoding through the recurrent path (prefill, then one token a step).
//   --inputs IDS.safetensors   greedy, every prompt of the [B, T] batch together; generated_ids/_logits out (as
//                              before)
//   --prompts FILE.jsonl       many prompts of any lengths, continuous batching over --max-batch slots
//   --prompt TEXT              one text prompt, as a one-line --prompts file
// The JSONL formats are experiments/generate_jsonl.h's; the batching is core/batched_generate.h's.
#include <chrono>
#include <cstdio>
#include <optional>

#include "core/batched_generate.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "evals/results_writer.h"
#include "experiments/command.h"
#include "experiments/generate_jsonl.h"
#include "experiments/model_options.h"
#include "experiments/output_paths.h"
#include "experiments/route_io.h"

namespace bmh {
namespace {

struct GenerateArgs {
  ModelOptions model;
  std::string inputs, prompts, prompt, out, tokenizer;
  int max_new = 16;
  BatchedGenerateOptions batch;
  std::vector<CLI::Option*> pool_only;  // options that only the --prompts/--prompt path reads
  CLI::Option *o_inputs = nullptr, *o_prompts = nullptr, *o_prompt = nullptr;
};

void run_tensor_generate(const GenerateArgs& a) {
  check_output_not_input("--out", a.out, {a.inputs, a.model.spec.dir});
  const Tensor ids_in = read_input_ids(a.inputs);
  auto model = load_model(a.model.resolve());
  check_input_ids(ids_in, model->config().vocab_size, a.inputs + ": input_ids");
  check_sequence_bounds(model->config(), ids_in.dim(0), ids_in.dim(1), a.max_new, a.inputs + ": input_ids");
  Tensor logits;
  Tensor ids = generate_greedy(*model, ids_in, a.max_new, &logits);
  write_safetensors(a.out, {{"generated_ids", ids}, {"generated_logits", logits}});
  std::printf("wrote %s: generated_ids %s (%s)\n", a.out.c_str(), shape_str(ids.shape()).c_str(),
              model->describe().c_str());
}

void run_pool_generate(const GenerateArgs& a) {
  check_output_not_input("--out", a.out, {a.prompts, a.model.spec.dir, a.tokenizer});
  check_sampling_options(a.batch.sampling);
  std::optional<Tokenizer> tok;
  auto tokenizer = [&]() -> const Tokenizer& {
    if (!tok) tok.emplace(Tokenizer::load(a.tokenizer.empty() ? default_tokenizer_path() : a.tokenizer));
    return *tok;
  };
  auto model = load_model(a.model.resolve());
  const int V = model->config().vocab_size;
  std::vector<GenerateRequest> requests;
  if (a.o_prompts->count()) {
    requests = read_prompts_jsonl(a.prompts, a.max_new, V, tokenizer);
  } else {
    GenerateRequest r;
    r.max_new = a.max_new;
    for (int32_t id : tokenizer().encode(a.prompt)) {
      if (id >= V) fail("--prompt: token id ", id, " is outside the model's vocabulary [0, ", V, ")");
      r.prompt.push_back(id);
    }
    if (r.prompt.empty()) fail("--prompt: the text has no tokens (generation needs at least one)");
    requests.push_back(std::move(r));
  }
  const auto t0 = std::chrono::steady_clock::now();
  BatchedGenerateStats st;
  std::vector<GenerateResult> results = generate_batched(*model, requests, a.batch, &st);
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  eval::write_file_atomic(a.out, format_results_jsonl(requests, results, &tokenizer()));
  std::printf("wrote %s: %zu requests, %lld tokens in %.3f s (%.1f tokens/s), %d slots%s, %lld steps (%s)\n",
              a.out.c_str(), requests.size(), (long long)st.generated_tokens, sec,
              sec > 0 ? double(st.generated_tokens) / sec : 0.0, st.slots,
              st.batched ? "" : " (this backend's decoder has no per-slot state: one request at a time)",
              (long long)st.steps, model->describe().c_str());
}

void run_generate(const GenerateArgs& a) {
  if (a.o_inputs->count() + a.o_prompts->count() + a.o_prompt->count() != 1)
    fail("generate: give exactly one of --inputs, --prompts and --prompt");
  if (a.o_inputs->count()) {
    for (CLI::Option* o : a.pool_only)
      if (o->count())
        fail("generate: ", o->get_name(), " applies to --prompts/--prompt (--inputs is greedy over one [B, T] batch)");
    run_tensor_generate(a);
  } else {
    run_pool_generate(a);
  }
}

void add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  auto* sub = app.add_subcommand("generate", "decoding through the recurrent (state / KV cache) path: greedy, or "
                                             "sampling; many prompts batched continuously");
  args->model.add_to(sub);
  args->o_inputs = sub->add_option("--inputs", args->inputs,
                                   "safetensors file with int64 input_ids [B, T] (the prompts); greedy, output "
                                   "safetensors generated_ids [B,T+N], generated_logits [B,N,V]");
  args->o_prompts = sub->add_option(
      "--prompts", args->prompts,
      "JSONL, one request a line: {\"text\": \"...\"} or {\"ids\": [...]}, optional \"max_new_tokens\"; output JSONL, "
      "one line per request in order: index, prompt_ids, generated_ids, text, finish_reason");
  args->o_prompt = sub->add_option("--prompt", args->prompt, "one text prompt (as a one-line --prompts file)");
  sub->add_option("--max-new-tokens", args->max_new, "tokens to generate (per request unless its line says)")
      ->default_val(16)->check(CLI::NonNegativeNumber);
  sub->add_option("--out", args->out, "output file (safetensors for --inputs, JSONL otherwise; written atomically)")
      ->required();
  BatchedGenerateOptions& b = args->batch;
  args->pool_only = {
      sub->add_option("--max-batch", b.max_batch,
                      "sequences decoded together (slots); a finished sequence's slot goes to the next waiting prompt")
          ->default_val(256)->check(CLI::Range(1, 256)),
      sub->add_option("--temperature", b.sampling.temperature,
                      "0 = greedy (the first argmax, as --inputs); > 0 samples from softmax(logits / T), then --top-k, "
                      "then --top-p (HF's order); as T -> 0 the draw is uniform over the tokens tied at the maximum "
                      "(core/sampling.h)")
          ->default_val(0.0),
      sub->add_option("--top-k", b.sampling.top_k, "sample among the k most likely tokens (0 = all)")->default_val(0),
      sub->add_option("--top-p", b.sampling.top_p, "sample among the smallest most-likely set of probability >= p")
          ->default_val(1.0),
      sub->add_option("--sample-seed", b.sampling.seed,
                      "sampling seed. Rule: the n-th new token of request r (0-based line order) draws "
                      "counter_uniform(seed, r, n) (core/sampling.h), so a request's tokens depend only on its own "
                      "logits, the options and the seed, never on the batch it shared or --max-batch")
          ->default_val(0),
      sub->add_option("--eos", b.eos, "stop a sequence after it generates this id (finish_reason \"eos\"); -1: never")
          ->default_val(-1),
      sub->add_option("--tokenizer", args->tokenizer,
                      "tokenizer.json for \"text\" prompts and the output text (default: the bundled gpt-neox-20b)")};
  sub->callback([args] { run_generate(*args); });
}

const bool registered = register_command(&add_generate_command);

}  // namespace
}  // namespace bmh
