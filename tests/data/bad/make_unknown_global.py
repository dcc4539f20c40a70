# Makes tests/data/bad/unknown_global/pytorch_model.bin: the mamba-tiny-ssm archive's pickle with its first
# global (torch._utils._rebuild_tensor_v2) replaced by posix.system, as a malicious checkpoint would; storages dropped.
# Run with /usr/bin/python3 from the repository root.
import zipfile

src = zipfile.ZipFile("tests/fixtures/mamba-tiny-ssm/pytorch_model.bin")
pkl = src.read("pytorch_model/data.pkl")
bad = pkl.replace(b"torch._utils\n_rebuild_tensor_v2\n", b"posix\nsystem\n", 1)
assert bad != pkl
with zipfile.ZipFile("tests/data/bad/unknown_global/pytorch_model.bin", "w", zipfile.ZIP_STORED) as out:
    for name in src.namelist():
        if "/data/" not in name:
            out.writestr(name, bad if name.endswith("data.pkl") else src.read(name))
