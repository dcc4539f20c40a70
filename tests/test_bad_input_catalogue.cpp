// The bad-input catalogue: hostile and careless inputs generated at test time from the fixtures, one test each.
// Every case runs the bmh binary (ulimit -v 3 GiB, except under ASan) and asserts: exit status 1, exactly one
// "bmh: error:" line on stderr (other lines may only be "bmh: warning:"), that line names the file/key/size at
// fault, no output file written (inputs unchanged), and a bounded peak resident set.
#include <gtest/gtest.h>

#include <functional>

#include "bad_input_tools.h"
#include "core/checkpoint.h"
#include "test_util.h"

namespace bmh::test {
namespace {

using nlohmann::json;

struct Case {
  std::string name;
  // Builds the broken inputs in `dir` and returns bmh's arguments; `out` is the output path to check.
  std::function<std::vector<std::string>(const fs::path& dir, const fs::path& out)> make;
  std::vector<std::string> must_name;  // substrings of the error line
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

fs::path copy_fixture(const fs::path& dir, const std::string& name) {
  fs::path d = dir / name;
  fs::create_directories(d);
  for (auto& e : fs::directory_iterator(fixture_dir(name)))
    if (e.path().filename() != "expected.safetensors" && e.path().filename() != "expected.json")
      fs::copy_file(e.path(), d / e.path().filename());
  return d;
}
std::string write_ids(const fs::path& dir, int64_t T = 5) {
  std::string p = (dir / "inputs.safetensors").string();
  write_safetensors(p, {{"input_ids", random_ids(1, T, 512, 7)}});
  return p;
}
std::vector<std::string> forward_args(const fs::path& model, const fs::path& dir, const fs::path& out,
                                      std::vector<std::string> extra = {}) {
  std::vector<std::string> a{"forward", "--model", model.string(), "--inputs", write_ids(dir), "--out", out.string()};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}
// A fixture whose config.json has `edit` applied, run through forward.
Case config_case(const std::string& name, const std::string& fixture, std::function<void(json&)> edit,
                 std::vector<std::string> must) {
  return {name, [=](const fs::path& dir, const fs::path& out) {
            fs::path d = copy_fixture(dir, fixture);
            json c = json::parse(read_file(d / "config.json"));
            edit(c);
            write_file(d / "config.json", c.dump());
            return forward_args(d, dir, out);
          }, must};
}
// The fixture's weights as one model.safetensors (pytorch_model.bin removed), with `edit` applied.
Case weights_case(const std::string& name, const std::string& fixture, std::function<void(TensorMap&)> edit,
                  std::vector<std::string> must, std::vector<std::string> extra = {}) {
  return {name, [=](const fs::path& dir, const fs::path& out) {
            fs::path d = copy_fixture(dir, fixture);
            Checkpoint ck = fs::exists(d / "model.safetensors") ? read_safetensors((d / "model.safetensors").string())
                                                               : read_torch_zip((d / "pytorch_model.bin").string());
            TensorMap t = ck.tensors;
            edit(t);
            fs::remove(d / "pytorch_model.bin");
            write_safetensors((d / "model.safetensors.tmp").string(), t);
            fs::rename(d / "model.safetensors.tmp", d / "model.safetensors");
            return forward_args(d, dir, out, extra);
          }, must};
}
// Sets elements [at, at + count) of tensor `name` to `v` (in its own dtype).
void poke(TensorMap& t, const std::string& name, int64_t at, float v, int64_t count = 1) {
  const Tensor& src = t.at(name);
  Tensor copy = Tensor::zeros(src.dtype(), src.shape());
  std::memcpy(copy.raw_mut(), src.raw(), src.nbytes());
  uint8_t* p = static_cast<uint8_t*>(copy.raw_mut());
  for (int64_t i = at; i < at + count; ++i) {
    if (src.dtype() == DType::F32) std::memcpy(p + i * 4, &v, 4);
    else {  // bf16: the top half of the float
      uint32_t bits;
      std::memcpy(&bits, &v, 4);
      uint16_t h = uint16_t(bits >> 16);
      std::memcpy(p + i * 2, &h, 2);
    }
  }
  t[name] = copy;
}
// A torch zip in a blackmamba-tiny directory holding `pkl` as data.pkl and `records` (key -> bytes).
Case torch_case(const std::string& name, std::function<std::string()> pkl, std::map<std::string, std::string> records,
                std::vector<std::string> must, std::function<void(const fs::path&)> after = {}) {
  return {name, [=](const fs::path& dir, const fs::path& out) {
            fs::path d = copy_fixture(dir, "blackmamba-tiny");
            std::vector<std::pair<std::string, std::string>> e{{"archive/data.pkl", pkl()}, {"archive/byteorder", "little"}};
            for (auto& [k, v] : records) e.emplace_back("archive/data/" + k, v);
            write_zip(d / "pytorch_model.bin", e, bool(after));
            if (after) after(d / "pytorch_model.bin");
            return forward_args(d, dir, out);
          }, must};
}
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string len(8, '\0');
  for (int i = 0; i < 8; ++i) len[i] = char((uint64_t(header.size()) >> (8 * i)) & 0xff);
  return len + header + data;
}
Case safetensors_case(const std::string& name, std::string header, std::string data, std::vector<std::string> must) {
  return {name, [=](const fs::path& dir, const fs::path& out) {
            fs::path d = copy_fixture(dir, "pythia-tiny");
            write_file(d / "model.safetensors", safetensors_bytes(header, data));
            return forward_args(d, dir, out);
          }, must};
}

std::vector<Case> catalogue() {
  std::vector<Case> c;
  const float nan = std::nanf(""), inf = INFINITY;
  // 1. Sizes read from configs: out of int range (silently wrapped before), negative, absurdly large.
  const std::vector<std::pair<std::string, std::vector<std::string>>> int_keys = {
      {"blackmamba-tiny", {"num_layers", "hidden_size", "state_size", "conv_dimension", "vocab_size",
                           "expansion_factor", "ffn_hidden_size", "max_sequence_length"}},
      {"blackmamba-tiny-variant", {"num_layers", "hidden_size", "expansion_factor", "vocab_size"}},
      {"mamba-tiny-ssm", {"d_model", "n_layer", "vocab_size"}},
      {"mamba-tiny-hf", {"hidden_size", "state_size", "num_hidden_layers", "expand", "conv_kernel", "vocab_size",
                         "time_step_rank"}},
      {"pythia-tiny", {"hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size", "vocab_size",
                       "max_position_embeddings"}}};
  const std::vector<std::pair<std::string, json>> int_values = {
      {"2pow32plus64", json(4294967360LL)}, {"minus1", json(-1)}, {"int32max", json(2147483647)}, {"float", json(64.5)}};
  for (auto& [fixture, keys] : int_keys)
    for (auto& key : keys)
      for (auto& [vname, v] : int_values)
        c.push_back(config_case("config_" + fixture + "_" + key + "_" + vname, fixture,
                                [key = key, v = v](json& j) { j[key] = v; }, {"config.json", "'" + key + "'"}));
  for (auto& [vname, v] : std::vector<std::pair<std::string, json>>{{"2pow32", json(4294967296LL)}, {"zero", json(0)}})
    c.push_back(config_case("config_mamba-tiny-ssm_ssm_cfg_d_state_" + vname, "mamba-tiny-ssm",
                            [v = v](json& j) { j["ssm_cfg"]["d_state"] = v; }, {"config.json", "'d_state'"}));
  // 2. Reals: epsilons must be positive, rotary fractions in [0, 1] (4.0 corrupted the heap; -1 disabled rotary).
  for (double eps : {-1.0, 0.0, 10.0})
    c.push_back(config_case("config_pythia_layer_norm_eps_" + std::to_string(int(eps)), "pythia-tiny",
                            [eps](json& j) { j["layer_norm_eps"] = eps; }, {"config.json", "'layer_norm_eps'"}));
  for (double eps : {-1.0, 0.0})
    c.push_back(config_case("config_mamba_hf_layer_norm_epsilon_" + std::to_string(int(eps)), "mamba-tiny-hf",
                            [eps](json& j) { j["layer_norm_epsilon"] = eps; }, {"config.json", "'layer_norm_epsilon'"}));
  for (double f : {4.0, -1.0, 1.5}) {
    c.push_back(config_case("config_pythia_partial_rotary_factor_" + std::to_string(int(f * 10)), "pythia-tiny",
                            [f](json& j) { j["rope_parameters"]["partial_rotary_factor"] = f; },
                            {"config.json", "'partial_rotary_factor'"}));
    c.push_back(config_case("config_pythia_rotary_pct_" + std::to_string(int(f * 10)), "pythia-tiny",
                            [f](json& j) { j.erase("rope_parameters"); j["rotary_pct"] = f; }, {"config.json", "'rotary_pct'"}));
  }
  c.push_back(config_case("config_pythia_rope_theta_negative", "pythia-tiny",
                          [](json& j) { j["rope_parameters"]["rope_theta"] = -5; }, {"config.json", "'rope_theta'"}));
  c.push_back(config_case("config_pythia_rope_parameters_not_object", "pythia-tiny",
                          [](json& j) { j["rope_parameters"] = json::array({1, 2}); }, {"config.json", "rope_parameters"}));
  c.push_back(config_case("config_zyphra_missing_layers_list", "blackmamba-tiny",
                          [](json& j) { j.erase("mamba_moe_layers"); j["conv_dimension"] = 4; }, {"config.json", "mamba_moe_layers"}));
  c.push_back(config_case("config_zyphra_layer_entry_with_newline", "blackmamba-tiny",
                          [](json& j) { j["mamba_moe_layers"][1] = "8\nbmh: error: forged"; }, {"config.json", "mamba_moe_layers[1]"}));
  // 3. Nesting 10^6 deep: parsed iteratively, bounded, never dumped recursively into a message.
  for (std::string fixture : {"blackmamba-tiny", "mamba-tiny-hf", "pythia-tiny"})
    c.push_back({"config_nested_1e6_" + fixture, [fixture](const fs::path& dir, const fs::path& out) {
                   fs::path d = copy_fixture(dir, fixture);
                   std::string s = read_file(d / "config.json");
                   write_file(d / "config.json", "{\"vocab_size\": " + nested_json(1000000) + "," + s.substr(s.find('{') + 1));
                   return forward_args(d, dir, out);
                 }, {"config.json", "nested deeper than 64"}});
  c.push_back(safetensors_case("safetensors_header_nested_1e6", "{\"a\": " + nested_json(1000000) + "}", "",
                               {"model.safetensors", "nested deeper than 64"}));
  c.push_back(safetensors_case("safetensors_shape_nested", R"({"a":{"dtype":"F32","shape":[[[[1]]]],"data_offsets":[0,4]}})",
                               "abcd", {"model.safetensors", "'a'", "shape"}));
  c.push_back({"index_json_nested_1e6", [](const fs::path& dir, const fs::path& out) {
                 fs::path d = copy_fixture(dir, "pythia-tiny");
                 fs::remove(d / "model.safetensors");
                 write_file(d / "model.safetensors.index.json", "{\"weight_map\": " + nested_json(1000000) + "}");
                 return forward_args(d, dir, out);
               }, {"model.safetensors.index.json", "nested"}});
  // 4. torch zips: views bigger than their storage, sizes the archive cannot hold, deep and cyclic pickles.
  const std::string rec64(64 * 4, '\1');
  auto one_tensor = [](int64_t numel, int64_t offset, std::vector<int64_t> size, std::vector<int64_t> stride) {
    return [=] {
      PickleWriter w;
      w.op('}').mark().str("w");
      w.tensor("0", numel, offset, size, stride);
      return w.op('u').done();
    };
  };
  c.push_back(torch_case("torch_stride0_view_2pow30", one_tensor(1, 0, {1 << 30}, {0}), {{"0", std::string(4, '\1')}},
                         {"pytorch_model.bin", "'w'", "1073741824"}));
  c.push_back(torch_case("torch_stride0_view_2d", one_tensor(64, 0, {1 << 20, 64}, {0, 1}), {{"0", rec64}},
                         {"pytorch_model.bin", "'w'", "storage holds only 64"}));
  c.push_back(torch_case("torch_view_past_storage", one_tensor(64, 60, {8}, {1}), {{"0", rec64}},
                         {"pytorch_model.bin", "'w'", "storage too short"}));
  c.push_back(torch_case("torch_negative_offset", one_tensor(64, -4, {8}, {1}), {{"0", rec64}},
                         {"pytorch_model.bin", "'w'", "negative"}));
  c.push_back(torch_case("torch_negative_stride", one_tensor(64, 8, {8}, {-1}), {{"0", rec64}},
                         {"pytorch_model.bin", "'w'", "negative"}));
  c.push_back(torch_case("torch_storage_numel_exceeds_record", one_tensor(1 << 28, 0, {8}, {1}), {{"0", rec64}},
                         {"pytorch_model.bin", "archive/data/0", "1073741824"}));
  c.push_back(torch_case("torch_deflated_record_declares_3GiB", one_tensor(64, 0, {8}, {1}), {{"0", std::string(1 << 16, '\0')}},
                         {"pytorch_model.bin", "archive/data/0", "3221225472"},
                         [](const fs::path& p) { patch_zip_declared_size(p, "archive/data/0", 3221225472u); }));
  c.push_back(torch_case("torch_pickle_nested_1e6", [] {
                           PickleWriter w;
                           w.b += std::string(1000000, ']') + std::string(999999, 'a');
                           return w.done();
                         }, {}, {"pytorch_model.bin", "deeper than 64"}));
  c.push_back(torch_case("torch_pickle_memo_cycle", [] {
                           PickleWriter w;  // l = []; l.append(l); {"w": l}
                           w.op('}').str("w").op(']').b += "q\x01h\x01";
                           return w.op('a').op('s').done();
                         }, {}, {"pytorch_model.bin", "cycle"}));
  c.push_back(torch_case("torch_global_os_system", [] {
                           PickleWriter w;
                           w.global("os", "system").str("echo pwned").op('\x85').op('R');
                           return w.done();
                         }, {}, {"pytorch_model.bin", "os.system"}));
  c.push_back(torch_case("torch_persistent_id_unknown_storage_type", [] {
                           PickleWriter w;
                           w.mark().str("storage").global("torch", "ComplexStorage").str("0").str("cpu").integer(4).op('t').op('Q');
                           return w.done();
                         }, {{"0", rec64}}, {"pytorch_model.bin", "ComplexStorage"}));
  c.push_back({"torch_legacy_format", [](const fs::path& dir, const fs::path& out) {
                 fs::path d = copy_fixture(dir, "blackmamba-tiny");
                 write_file(d / "pytorch_model.bin", std::string("\x80\x02\x8a\x0a", 4) + std::string(60, '\0'));
                 return forward_args(d, dir, out);
               }, {"pytorch_model.bin", "legacy"}});
  // 5. safetensors headers.
  c.push_back(safetensors_case("safetensors_dims_overflow", R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})",
                               "abcd", {"model.safetensors", "'a'", "overflows"}));
  c.push_back(safetensors_case("safetensors_offsets_reversed", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})",
                               "abcd", {"model.safetensors", "'a'", "[4, 0]"}));
  c.push_back(safetensors_case("safetensors_overlap", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                               "abcd", {"model.safetensors", "overlaps"}));
  c.push_back(safetensors_case("safetensors_negative_dim", R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})",
                               "abcd", {"model.safetensors", "'a'", "-1"}));
  c.push_back(safetensors_case("safetensors_entry_not_object", R"({"a":[1,2,3]})", "", {"model.safetensors", "'a'", "(3 items)"}));
  c.push_back({"safetensors_header_length_2pow63", [](const fs::path& dir, const fs::path& out) {
                 fs::path d = copy_fixture(dir, "pythia-tiny");
                 write_file(d / "model.safetensors", std::string("\0\0\0\0\0\0\0\x80", 8) + "{}");
                 return forward_args(d, dir, out);
               }, {"model.safetensors", "9223372036854775808"}});
  // 6. Non-finite weights: named at load; with --allow-nonfinite, named where they first reach the activations.
  struct Poke { std::string fixture, tensor; int64_t at; };
  const std::vector<Poke> pokes = {{"pythia-tiny", "gpt_neox.embed_in.weight", 7},
                                   {"pythia-tiny", "gpt_neox.layers.1.post_attention_layernorm.weight", 3},
                                   {"pythia-tiny", "gpt_neox.layers.0.attention.query_key_value.weight", 100},
                                   {"mamba-tiny-hf", "backbone.embeddings.weight", 0},
                                   {"mamba-tiny-hf", "backbone.layers.1.mixer.A_log", 5},
                                   {"mamba-tiny-hf", "backbone.norm_f.weight", 2}};
  for (const auto& p : pokes)
    for (auto [vname, v] : std::vector<std::pair<std::string, float>>{{"nan", nan}, {"inf", inf}, {"neginf", -inf}})
      c.push_back(weights_case("nonfinite_" + vname + "_" + p.fixture + "_" + p.tensor, p.fixture,
                               [p, v = v](TensorMap& t) { poke(t, p.tensor, p.at, v); }, {"model.safetensors", "'" + p.tensor + "'", "non-finite"}));
  c.push_back(weights_case("nonfinite_all_nan_embedding_allowed", "pythia-tiny", [nan](TensorMap& t) {
                             poke(t, "gpt_neox.embed_in.weight", 0, nan, t.at("gpt_neox.embed_in.weight").numel());
                           }, {"non-finite", "the embedding"}, {"--allow-nonfinite"}));
  c.push_back(weights_case("nonfinite_inf_norm_allowed", "pythia-tiny",
                           [inf](TensorMap& t) { poke(t, "gpt_neox.final_layer_norm.weight", 0, inf); },
                           {"non-finite", "final norm"}, {"--allow-nonfinite"}));
  c.push_back(weights_case("nonfinite_nan_block_allowed", "mamba-tiny-hf",
                           [nan](TensorMap& t) { poke(t, "backbone.layers.1.mixer.out_proj.weight", 0, nan); },
                           {"non-finite", "block 1"}, {"--allow-nonfinite"}));
  c.push_back(weights_case("nonfinite_nan_router_allowed", "blackmamba-tiny", [nan](TensorMap& t) {
                             poke(t, "model.decoder.layers.1.mixer.router.weight", 0, nan, 64);
                           }, {"block 1", "router", "NaN"}, {"--allow-nonfinite"}));
  // 7. Outputs that are inputs.
  c.push_back({"out_is_model_weights", [](const fs::path& dir, const fs::path&) {
                 fs::path d = copy_fixture(dir, "pythia-tiny");
                 return forward_args(d, dir, d / "model.safetensors");
               }, {"--out", "model.safetensors", "input"}});
  c.push_back({"out_is_inputs_file", [](const fs::path& dir, const fs::path&) {
                 std::string in = write_ids(dir);
                 return std::vector<std::string>{"forward", "--model", fixture_dir("pythia-tiny"), "--inputs", in, "--out", in};
               }, {"--out", "inputs.safetensors"}});
  c.push_back({"out_hardlink_of_inputs", [](const fs::path& dir, const fs::path&) {
                 std::string in = write_ids(dir);
                 fs::create_hard_link(in, dir / "alias.safetensors");
                 return std::vector<std::string>{"forward", "--model", fixture_dir("pythia-tiny"), "--inputs", in, "--out",
                                                 (dir / "alias.safetensors").string()};
               }, {"--out", "alias.safetensors"}});
  c.push_back({"out_inside_model_dir_generate", [](const fs::path& dir, const fs::path&) {
                 fs::path d = copy_fixture(dir, "mamba-tiny-hf");
                 return std::vector<std::string>{"generate", "--model", d.string(), "--inputs", write_ids(dir), "--out",
                                                 (d / "config.json").string()};
               }, {"--out", "config.json"}});
  c.push_back({"out_is_model_dir_via_dotdot", [](const fs::path& dir, const fs::path&) {
                 fs::path d = copy_fixture(dir, "pythia-tiny");
                 return forward_args(d, dir, d / ".." / "pythia-tiny" / "model.safetensors");
               }, {"--out", "model.safetensors"}});
  // 8. Lengths: generation bounded before allocating; attention models bounded by their positions.
  c.push_back({"generate_max_new_tokens_1e9", [](const fs::path& dir, const fs::path& out) {
                 return std::vector<std::string>{"generate", "--model", fixture_dir("mamba-tiny-hf"), "--inputs",
                                                 write_ids(dir), "--max-new-tokens", "1000000000", "--out", out.string()};
               }, {"inputs.safetensors", "1000000000", "GiB"}});
  c.push_back({"generate_past_max_positions", [](const fs::path& dir, const fs::path& out) {
                 return std::vector<std::string>{"generate", "--model", fixture_dir("pythia-tiny"), "--inputs",
                                                 write_ids(dir), "--max-new-tokens", "300", "--out", out.string()};
               }, {"inputs.safetensors", "256 positions"}});
  c.push_back({"forward_past_max_positions", [](const fs::path& dir, const fs::path& out) {
                 return std::vector<std::string>{"forward", "--model", fixture_dir("pythia-tiny"), "--inputs",
                                                 write_ids(dir, 300), "--out", out.string()};
               }, {"inputs.safetensors", "300 prompt tokens", "256"}});
  // 9. Input files.
  for (auto [name, shape] : std::vector<std::pair<std::string, Shape>>{{"T0", {1, 0}}, {"B0", {0, 5}}})
    c.push_back({"inputs_empty_" + name, [shape = shape](const fs::path& dir, const fs::path& out) {
                   std::string in = (dir / "empty.safetensors").string();
                   write_safetensors(in, {{"input_ids", Tensor::zeros(DType::I64, shape)}});
                   return std::vector<std::string>{"forward", "--model", fixture_dir("mamba-tiny-hf"), "--inputs", in, "--out", out.string()};
                 }, {"empty.safetensors", "input_ids", shape_str(shape)}});
  c.push_back({"inputs_float_ids", [](const fs::path& dir, const fs::path& out) {
                 std::string in = (dir / "f.safetensors").string();
                 write_safetensors(in, {{"input_ids", Tensor::from_f32({1, 2, 3}, {1, 3})}});
                 return std::vector<std::string>{"forward", "--model", fixture_dir("mamba-tiny-hf"), "--inputs", in, "--out", out.string()};
               }, {"f.safetensors", "input_ids"}});
  // 10. tokenizer.json and experiment files.
  c.push_back({"tokenizer_added_token_id_2pow32", [](const fs::path& dir, const fs::path&) {
                 json t = json::parse(read_file(std::string(BMH_SOURCE_DIR) + "/data/tokenizer/gpt-neox-20b.json"));
                 t["added_tokens"][1]["id"] = 4294967296LL + 1;
                 write_file(dir / "tok.json", t.dump());
                 return std::vector<std::string>{"tokenize", "--tokenizer", (dir / "tok.json").string(), "--text", "hi"};
               }, {"tok.json", "added_tokens[1]", "4294967297"}});
  c.push_back({"tokenizer_nested_1e6", [](const fs::path& dir, const fs::path&) {
                 write_file(dir / "tok.json", "{\"model\": " + nested_json(1000000) + "}");
                 return std::vector<std::string>{"tokenize", "--tokenizer", (dir / "tok.json").string(), "--text", "hi"};
               }, {"tok.json", "nested"}});
  auto experiment = [](const std::string& name, std::function<void(json&)> edit, std::vector<std::string> must) {
    return Case{name, [edit](const fs::path& dir, const fs::path&) {
                  json e = json::parse(read_file(std::string(BMH_SOURCE_DIR) + "/experiments/default.json"));
                  edit(e);
                  write_file(dir / "exp.json", e.dump());
                  return std::vector<std::string>{"run", (dir / "exp.json").string(), "--check"};
                }, must};
  };
  c.push_back(experiment("experiment_int_wraps", [](json& e) { e["latency"]["batch"] = 4294967297LL; }, {"exp.json", "'batch'"}));
  c.push_back(experiment("experiment_int_list_wraps", [](json& e) { e["latency"]["prompt_lengths"] = {16, 4294967360LL}; },
                         {"exp.json", "'prompt_lengths'[1]", "4294967360"}));
  c.push_back(experiment("experiment_float_for_int", [](json& e) { e["latency"]["repeats"] = 2.5; }, {"exp.json", "'repeats'"}));
  c.push_back(experiment("experiment_nested_value", [](json& e) { e["description"] = json::array({json::array({json::array()})}); },
                         {"exp.json", "'description'"}));
  c.push_back({"experiment_nested_1e6", [](const fs::path& dir, const fs::path&) {
                 write_file(dir / "exp.json", "{\"name\": " + nested_json(1000000) + "}");
                 return std::vector<std::string>{"run", (dir / "exp.json").string(), "--check"};
               }, {"exp.json", "nested"}});
  return c;
}

class Catalogue : public ::testing::TestWithParam<Case> {};

TEST_P(Catalogue, RefusedByNameInBoundedMemory) {
  const Case& k = GetParam();
  const fs::path dir = fs::temp_directory_path() / ("bmh_cat_" + std::to_string(::getpid()) + "_" + k.name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path out = dir / "out.safetensors";
  std::vector<std::string> args = k.make(dir, out);
  // Every file the command may read, with its bytes, to prove none was overwritten.
  std::map<fs::path, std::string> before;
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) before[e.path()] = read_file(e.path());
  CliResult r = run_bmh(args, dir.parent_path() / ("bmh_cat_" + std::to_string(::getpid()) + "_" + k.name + ".err"));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  std::istringstream lines(r.err);
  std::string line, error_line;
  int errors = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("bmh: error: ", 0) == 0) ++errors, error_line = line;
    else EXPECT_EQ(line.rfind("bmh: warning: ", 0), 0u) << "unexpected stderr line: " << line;
  }
  EXPECT_EQ(errors, 1) << r.err;
  for (const auto& s : k.must_name) EXPECT_NE(error_line.find(s), std::string::npos) << "missing '" << s << "' in: " << error_line;
  EXPECT_FALSE(fs::exists(out)) << "no output may be written on error";
  for (auto& [p, bytes] : before) EXPECT_TRUE(fs::exists(p) && read_file(p) == bytes) << p << " was changed";
  for (auto& e : fs::recursive_directory_iterator(dir))
    EXPECT_TRUE(!e.is_regular_file() || before.count(e.path())) << "unexpected file written: " << e.path();
#ifdef BMH_TEST_ASAN
  EXPECT_LT(r.peak_rss_mb, 2048) << "peak resident set";
#else
  EXPECT_LT(r.peak_rss_mb, 1024) << "peak resident set";
#endif
  fs::remove_all(dir);
  fs::remove(dir.parent_path() / ("bmh_cat_" + std::to_string(::getpid()) + "_" + k.name + ".err"));
}

INSTANTIATE_TEST_SUITE_P(BadInputs, Catalogue, ::testing::ValuesIn(catalogue()),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           std::string n = i.param.name;
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

TEST(CatalogueSize, AtLeastAHundredCases) { EXPECT_GE(catalogue().size(), 100u); }

}  // namespace
}  // namespace bmh::test
