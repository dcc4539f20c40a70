// Checkpoint I/O: safetensors (memory-mapped, validated; sharded via *.index.json) and PyTorch torch.save
// zip archives (pytorch_model.bin) through a restricted unpickler. Every error names the file and the key.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace bmh {

struct Checkpoint {
  TensorMap tensors;                          // nested dicts flattened with '.': {"model": {"a.b": t}} -> "model.a.b"
  std::map<std::string, std::string> file_of; // tensor name -> file it came from (for error messages)
};

// Reads one .safetensors file; tensors borrow from a read-only mapping of the file.
Checkpoint read_safetensors(const std::string& path);
// What read_safetensors does with the mapped bytes: validates data[0, size) as a safetensors file and returns
// tensors that borrow from it and hold `owner` (the mapping). `path` names the bytes in errors and file_of.
Checkpoint parse_safetensors(const uint8_t* data, uint64_t size, const std::shared_ptr<const void>& owner,
                             const std::string& path);
// Writes tensors (and optional __metadata__) to path through a temp file + rename.
void write_safetensors(const std::string& path, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// Reads a torch.save zip archive (pytorch_model.bin). Only the globals real checkpoints use are accepted.
Checkpoint read_torch_zip(const std::string& path);
// What read_torch_zip does with the mapped file: reads data[0, size) as a torch.save archive (`path` names it in
// errors and file_of). Tensors own their bytes; data need only outlive the call.
Checkpoint parse_torch_zip(const uint8_t* data, uint64_t size, const std::string& path);
// Writes tensors as torch.save does (stored zip, protocol-2 pickle of an OrderedDict), through a temp file +
// rename; wrap_key non-empty nests the dict as {wrap_key: state_dict} (Zyphra's {"model": ...}). Tensors
// sharing one buffer share one storage (tied weights).
void write_torch_zip(const std::string& path, const TensorMap& tensors, const std::string& wrap_key = "");
// Finds and reads the weights of a checkpoint directory: model.safetensors, model.safetensors.index.json,
// pytorch_model.bin or pytorch_model.bin.index.json (in that order).
Checkpoint load_checkpoint_dir(const std::string& dir);

}  // namespace bmh
