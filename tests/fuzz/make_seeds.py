#!/usr/bin/env python3
"""Seed corpora for the libFuzzer targets, generated from the fixtures and bundled data (stdlib only).

usage: make_seeds.py SOURCE_DIR OUT_DIR   -> OUT_DIR/<target>/seed_*
Torch pickles are written by Python's own pickle with stand-in `torch` modules, so their opcodes are the ones
torch.save emits (GLOBAL, BINPERSID, REDUCE, SETITEMS, memo) without needing torch.
"""
import collections, io, json, os, pickle, struct, sys, types, zipfile

src, out = sys.argv[1], sys.argv[2]
fixtures = os.path.join(src, "tests", "fixtures")


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# --- safetensors: real headers (names, dtypes) with the shapes shrunk so the seeds stay small -------------
SIZES = {"F32": 4, "F64": 8, "BF16": 2, "F16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def safetensors(tensors, meta=None):
    header, blob = {}, b""
    if meta:
        header["__metadata__"] = meta
    for name, dtype, shape in tensors:
        n = SIZES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + n]}
        blob += bytes((i * 37 + 11) % 251 for i in range(n))
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + blob


for fam in ["pythia-tiny", "mamba-tiny-hf"]:
    raw = open(os.path.join(fixtures, fam, "model.safetensors"), "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    items = [(k, v["dtype"], [min(d, 3) for d in v["shape"]]) for k, v in sorted(hdr.items()) if k != "__metadata__"]
    for i in range(0, len(items), 6):
        put("safetensors", f"seed_{fam}_{i}", safetensors(items[i:i + 6], {"format": "pt"}))
put("safetensors", "seed_dtypes", safetensors([(f"t.{d}", d, [2, 3]) for d in SIZES]))
put("safetensors", "seed_empty", safetensors([("e", "F32", [0, 5]), ("s", "F32", [])]))

# --- inputs/routes files (bmh forward --inputs / --force-routes) -----------------------------------------
put("inputs", "seed_ids", safetensors([("input_ids", "I64", [2, 5])]))
put("inputs", "seed_routes", safetensors([("input_ids", "I64", [1, 4]), ("route.1.expert", "I64", [1, 4]),
                                          ("route.3.expert", "I64", [1, 4])]))

# --- torch pickles with stand-in torch modules ----------------------------------------------------------
torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
torch._utils = utils
sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
STORAGES = {}
for cls in ["FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "DoubleStorage"]:
    c = type(cls, (), {})
    c.__module__, c.__qualname__ = "torch", cls
    setattr(torch, cls, c)
    STORAGES[cls] = c


def _rebuild_tensor_v2(*a):
    pass


def _rebuild_parameter(*a):
    pass


for f in (_rebuild_tensor_v2, _rebuild_parameter):
    f.__module__ = "torch._utils"
    setattr(utils, f.__name__, f)


class Storage:
    def __init__(self, cls, key, numel):
        self.cls, self.key, self.numel = cls, key, numel


class Tensor:
    def __init__(self, storage, size, stride=None, offset=0, param=False):
        self.storage, self.size, self.offset, self.param = storage, size, offset, param
        if stride is None:
            stride, acc = [], 1
            for d in reversed(size):
                stride.insert(0, acc)
                acc *= d
        self.stride = stride

    def __reduce_ex__(self, proto):
        t = (_rebuild_tensor_v2, (self.storage, self.offset, tuple(self.size), tuple(self.stride), False,
                                  collections.OrderedDict()))
        if self.param:
            return (_rebuild_parameter, (Wrapped(t), True, collections.OrderedDict()))
        return t


class Wrapped:
    def __init__(self, r):
        self.r = r

    def __reduce_ex__(self, proto):
        return self.r


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", STORAGES[obj.cls], obj.key, "cpu", obj.numel)
        return None


def torch_pickle(obj):
    b = io.BytesIO()
    TorchPickler(b, protocol=2).dump(obj)
    return b.getvalue()


# Storages "0".."7" of 1024 float32 each: the records fuzz_torch_pickle wraps every input with.
s = [Storage("FloatStorage", str(k), 1024) for k in range(8)]
sd = collections.OrderedDict()
sd["embedding.word_embeddings.weight"] = Tensor(s[0], [16, 8])
sd["decoder.layers.0.mixer.A_log"] = Tensor(s[1], [4, 4], param=True)
sd["decoder.layers.0.mixer.D"] = Tensor(s[1], [4], offset=16)
sd["decoder.layers.0.moe.router.weight"] = Tensor(s[2], [2, 8], stride=[1, 2])  # a transposed view
sd["decoder.layers.1.norm.weight"] = Tensor(Storage("HalfStorage", "3", 2048), [8])
sd["decoder.final_layernorm.bias"] = Tensor(Storage("BFloat16Storage", "4", 2048), [8])
seeds = {"state_dict": torch_pickle(sd), "nested": torch_pickle({"model": sd, "step": 3}),
         "list": torch_pickle([Tensor(s[5], [3, 3]), Tensor(s[5], [2], offset=9)]),
         "shared_memo": torch_pickle({"a": sd["decoder.layers.0.mixer.A_log"], "b": sd["decoder.layers.0.mixer.A_log"]})}
for name, data in seeds.items():
    put("torch_pickle", "seed_" + name, data)
    put("pickle", "seed_" + name, data)
for fam in ["blackmamba-tiny", "blackmamba-tiny-variant", "mamba-tiny-ssm"]:
    z = zipfile.ZipFile(os.path.join(fixtures, fam, "pytorch_model.bin"))
    pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
    put("pickle", "seed_" + fam, z.read(pkl))
lst = []
lst.append(lst)  # a list inside itself, through the memo
put("pickle", "seed_cycle", pickle.dumps(lst, protocol=2))
put("pickle", "seed_types", pickle.dumps([None, True, 1, -7, 2**40, 1.5, "s", b"b", (1,), (1, 2), (1, 2, 3), {}], protocol=4))


def torch_zip(pkl, records, prefix="archive"):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_STORED) as z:
        z.writestr(prefix + "/data.pkl", pkl)
        z.writestr(prefix + "/byteorder", "little")
        for k, data in records.items():
            z.writestr(prefix + "/data/" + k, data)
        z.writestr(prefix + "/version", "3\n")
    return b.getvalue()


recs = {str(k): bytes(4096) for k in range(5)}
put("torch_zip", "seed_small", torch_zip(seeds["state_dict"], recs))
put("torch_zip", "seed_nested", torch_zip(seeds["nested"], recs))
put("torch_zip", "seed_list", torch_zip(seeds["list"], {"5": bytes(4096)}))

# --- configs: one byte picks the parser (0 = detect from keys, 1..4 = one family), then the JSON ---------
for fam in ["blackmamba-tiny", "blackmamba-tiny-variant", "mamba-tiny-ssm", "mamba-tiny-hf", "pythia-tiny"]:
    cfg = open(os.path.join(fixtures, fam, "config.json"), "rb").read()
    for sel in range(5):
        put("config", f"seed_{fam}_{sel}", bytes([sel]) + cfg)

# --- tokenizer.json: a byte-level BPE small enough to mutate -------------------------------------------
def bytes_to_unicode():  # GPT-2's map (encoder.py); the byte-level alphabet
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


alphabet = bytes_to_unicode()
vocab = {c: i for i, c in enumerate(alphabet)}
merges = [["h", "e"], ["l", "l"], ["he", "ll"], ["Ġ", "w"]]
for a, b in merges:
    vocab[a + b] = len(vocab)
tok = {"version": "1.0", "truncation": None, "padding": None,
       "added_tokens": [{"id": len(vocab), "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                         "rstrip": False, "normalized": False, "special": True}],
       "normalizer": {"type": "NFC"},
       "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
       "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
       "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
       "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                 "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                 "vocab": vocab, "merges": merges}}
put("tokenizer_json", "seed_tiny", json.dumps(tok, ensure_ascii=False))
tok["model"]["merges"] = [" ".join(m) for m in merges]
put("tokenizer_json", "seed_tiny_legacy_merges", json.dumps(tok, ensure_ascii=False))

# --- task files: one byte picks the task, then the first lines of its bundled file ----------------------
tasks = [("lambada_openai", "lambada_test.jsonl"), ("piqa", "valid.jsonl"), ("winogrande", "dev.jsonl"),
         ("arc_easy", "ARC-Easy-Test.jsonl"), ("arc_challenge", "ARC-Challenge-Test.jsonl"),
         ("openbookqa", "test.jsonl"), ("hellaswag", "hellaswag_val_full.txt")]
for sel, (task, fname) in enumerate(tasks):
    with open(os.path.join(src, "data", "tasks", task, fname), "rb") as f:
        head = b"".join(f.readline() for _ in range(3))
    put("task_jsonl", f"seed_{task}", bytes([sel]) + head)

# --- experiment files ------------------------------------------------------------------------------------
for name in sorted(os.listdir(os.path.join(src, "experiments"))):
    if name.endswith(".json"):
        put("experiment", "seed_" + name, open(os.path.join(src, "experiments", name), "rb").read())
