#!/usr/bin/env python3
"""Builds the peers' compiled kernels on the GPU machine (no network there): state-spaces/mamba's
`selective_scan_cuda` (forward kernels only) and Dao-AILab/causal-conv1d's `causal_conv1d_cuda` (forward + update),
with torch.utils.cpp_extension.load for sm_90, the way their setup.py builds them (same nvcc flags), minus the
backward kernels: the bindings' backward functions and their m.def lines are cut out of a temporary copy, so the
backward .cu files (the slow part of the build) are not needed. Their sources are brought along uncommitted
(gpu_check.sh pack) and never modified in place.

Usage: python3 build_peer_kernels.py --mamba DIR --conv DIR --out BUILD_DIR
Afterwards `sys.path.insert(0, BUILD_DIR)` makes `import selective_scan_cuda, causal_conv1d_cuda` work.
"""
import argparse, os, re, shutil, sys, time

# nvcc flags of both projects' setup.py (mamba setup.py, causal-conv1d setup.py), for sm_90 only.
NVCC = ["-O3", "-std=c++17", "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
        "-U__CUDA_NO_BFLOAT16_OPERATORS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
        "-U__CUDA_NO_BFLOAT162_OPERATORS__", "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
        "--expt-relaxed-constexpr", "--expt-extended-lambda", "--use_fast_math", "-lineinfo",
        "-gencode", "arch=compute_90,code=sm_90", "--threads", "4"]


def cut_function(src, name):
    """Removes the top-level C++ function `name` (from its return-type line to the closing brace at column 0)."""
    m = re.search(r"\n(std::vector<at::Tensor>|void|at::Tensor)\s*\n?" + re.escape(name) + r"\s*\(", src)
    if not m:
        raise RuntimeError(f"function {name} not found in the binding")
    end = src.index("\n}\n", m.start()) + 3
    return src[:m.start() + 1] + src[end:]


def cut_def(src, pyname):
    out = [l for l in src.splitlines(True) if not re.search(r'm\.def\("' + re.escape(pyname) + r'"', l)]
    if len(out) == len(src.splitlines(True)):
        raise RuntimeError(f'm.def("{pyname}") not found in the binding')
    return "".join(out)


def stage(src_dir, files, tmp):
    os.makedirs(tmp, exist_ok=True)
    for f in files:
        shutil.copy(os.path.join(src_dir, f), os.path.join(tmp, os.path.basename(f)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mamba", required=True, help="state-spaces/mamba source tree")
    ap.add_argument("--conv", required=True, help="Dao-AILab/causal-conv1d source tree")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    from torch.utils.cpp_extension import load
    os.makedirs(a.out, exist_ok=True)

    t = time.time()
    ss = os.path.join(a.out, "src_selective_scan")
    sdir = os.path.join(a.mamba, "csrc", "selective_scan")
    hdrs = [f for f in os.listdir(sdir) if f.endswith((".h", ".cuh"))]
    stage(sdir, hdrs + ["selective_scan.cpp"] + [f"selective_scan_fwd_{d}.cu" for d in ("fp32", "fp16", "bf16")], ss)
    p = os.path.join(ss, "selective_scan.cpp")
    src = open(p).read()
    src = cut_def(cut_function(src, "selective_scan_bwd"), "bwd")
    open(p, "w").write(src)
    load(name="selective_scan_cuda", sources=[p] + [os.path.join(ss, f"selective_scan_fwd_{d}.cu")
                                                   for d in ("fp32", "fp16", "bf16")],
         extra_cflags=["-O3"], extra_cuda_cflags=NVCC, extra_include_paths=[ss], build_directory=a.out,
         verbose=False)
    print(f"selective_scan_cuda built in {time.time() - t:.0f} s", flush=True)

    t = time.time()
    cs = os.path.join(a.out, "src_causal_conv1d")
    cdir = os.path.join(a.conv, "csrc")
    hdrs = [f for f in os.listdir(cdir) if f.endswith((".h", ".cuh"))]
    stage(cdir, hdrs + ["causal_conv1d.cpp", "causal_conv1d_fwd.cu", "causal_conv1d_update.cu"], cs)
    p = os.path.join(cs, "causal_conv1d.cpp")
    src = open(p).read()
    src = cut_def(cut_function(src, "causal_conv1d_bwd"), "causal_conv1d_bwd")
    open(p, "w").write(src)
    load(name="causal_conv1d_cuda", sources=[p, os.path.join(cs, "causal_conv1d_fwd.cu"),
                                             os.path.join(cs, "causal_conv1d_update.cu")],
         extra_cflags=["-O3"], extra_cuda_cflags=NVCC, extra_include_paths=[cs], build_directory=a.out,
         verbose=False)
    print(f"causal_conv1d_cuda built in {time.time() - t:.0f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
