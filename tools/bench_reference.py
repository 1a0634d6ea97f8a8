#!/usr/bin/env python3
"""PyTorch baseline for `amsnet bench --what suite`: the reference AMSNet code (lll143653/amsnet) timed
on the same device, with the same configuration and precision policy, eager or torch.compile'd.

The reference code is not part of this repository. Fetch it (git clone of lll143653/amsnet) and give
its folder with --amsnet-src. Its modules import training-only packages (lightning, loguru, cv2, ...);
any that are missing are replaced by empty stand-ins (listed under "stubbed" in the output), since
nothing on the timed path uses them. Writes the same JSON keys as `amsnet bench --json`; compare
with tools/bench_compare.py.

  python3 tools/bench_reference.py --amsnet-src REF --device cuda [--compile] [--precision fp32|tf32|bf16]
"""
import argparse
import gc
import importlib
import importlib.abc
import importlib.machinery
import json
import statistics
import sys
import time
import types
import typing

import torch
import torch.nn as nn

PRESETS = {  # the same configurations as `amsnet train --preset` (SPEC's is `restormer`)
    "restormer": dict(dim=48, num_blocks=[4, 6, 6, 8], num_refinement_blocks=4),
    "small": dict(dim=16, num_blocks=[1, 2, 2, 2], num_refinement_blocks=1),
    "tiny": dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1),
}
STUBBABLE = {"loguru", "lightning", "pytorch_lightning", "torchmetrics", "joblib", "cv2", "matplotlib",
             "torchvision", "einops"}
stubbed = []


class _Anything(nn.Module):
    """Stands in for any class or function of a missing package (LightningModule -> nn.Module)."""

    def __init__(self, *args, **kwargs):
        super().__init__()


class _StubModule(types.ModuleType):
    # codes/model.py takes these from a star import of pytorch_lightning.utilities.types
    __all__ = ["Any", "Optimizer"]
    __path__ = []
    Any = typing.Any
    Optimizer = torch.optim.Optimizer

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything


def _rearrange(x, pattern, **k):
    """einops.rearrange for the four patterns of the reference Restormer (einops is not in Debian)."""
    if pattern == "b c h w -> b (h w) c":
        return x.flatten(2).transpose(1, 2)
    if pattern == "b (h w) c -> b c h w":
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], k["h"], k["w"])
    if pattern == "b (head c) h w -> b head c (h w)":
        return x.reshape(x.shape[0], k["head"], x.shape[1] // k["head"], x.shape[2] * x.shape[3])
    if pattern == "b head c (h w) -> b (head c) h w":
        return x.reshape(x.shape[0], x.shape[1] * x.shape[2], k["h"], k["w"])
    raise NotImplementedError(f"einops stand-in: pattern '{pattern}'")


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top not in STUBBABLE:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                return None  # the real package is there: use it
        if top not in stubbed:
            stubbed.append(top)
        return importlib.machinery.ModuleSpec(name, self, is_package=True)

    def create_module(self, spec):
        m = _StubModule(spec.name)
        if spec.name == "einops":
            m.rearrange = _rearrange
        return m

    def exec_module(self, module):
        pass


def build_model(src, preset, r3):
    sys.path.insert(0, src)
    sys.meta_path.insert(0, _StubFinder())
    model_mod = importlib.import_module("codes.model")
    loss_mod = importlib.import_module("codes.loss")
    restormer = dict(inp_channels=3, out_channels=3, heads=[1, 2, 4, 8], ffn_expansion_factor=2.66, bias=False,
                     LayerNorm_type="BiasFree", dual_pixel_task=False, **PRESETS[preset])
    # configs/restormer.yaml of the reference: one Restormer, two complementary masks, PD 5 / PD 2.
    net_param = dict(branch_num=1, dn_branch="Restormer", branches_order=[0, 0], net_param=restormer)
    return model_mod.MultiMaskPdDn(pd_train=5, pd_val=2, dn_net="mmbd", r3=r3, r3_num=8, net_param=net_param,
                                   loss_fn=loss_mod.FirstPdMaskLoss(loss_type="l1", pd_factor=5))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--amsnet-src", required=True, help="checkout of github.com/lll143653/amsnet")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--preset", default="restormer", choices=sorted(PRESETS))
    ap.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"],
                    help="fp32: no TF32 anywhere (amsnet's default); tf32: TF32 matmuls and convolutions "
                         "(AMS_TF32=1); bf16: autocast to bfloat16")
    ap.add_argument("--compile", action="store_true", help="torch.compile the Restormer")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--only", default="", help="comma-separated keys to run (default: all)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    if a.device == "cuda":
        assert torch.cuda.is_available(), "--device cuda: PyTorch sees no GPU"
        tf32 = a.precision == "tf32"
        try:  # torch >= 2.9: the new API (mixing it with allow_tf32 raises under torch.compile)
            torch.backends.cuda.matmul.fp32_precision = "tf32" if tf32 else "ieee"
            torch.backends.cudnn.conv.fp32_precision = "tf32" if tf32 else "ieee"
        except AttributeError:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)

    models = {}

    def model(r3):
        if r3 not in models:
            m = build_model(a.amsnet_src, a.preset, r3).to(dev)
            if a.compile:
                m.dn.branches[0] = torch.compile(m.dn.branches[0])
            models[r3] = m
        return models[r3]

    def autocast():
        return torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.precision == "bf16")

    def sync():
        if a.device == "cuda":
            torch.cuda.synchronize()

    def live_tensor_bytes():
        """Bytes of every CPU tensor storage alive (parameters, optimizer state, inputs), each once."""
        storages = {}
        for o in gc.get_objects():
            try:
                if isinstance(o, torch.Tensor) and o.device.type == "cpu" and not o.is_sparse:
                    st = o.storage()
                    storages[st.data_ptr()] = st.nbytes()
            except Exception:  # objects gc sees half-built, or tensors without storage
                pass
        return sum(storages.values())

    def cpu_peak(fn):
        """Peak CPU tensor memory of one run: what was alive before it plus the high-water mark of the
        allocations the profiler records during it (the same quantity as amsnet's engine peak)."""
        before = live_tensor_bytes()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
        cur = high = 0
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
        start = (lambda e: e.start_ns()) if events and hasattr(events[0], "start_ns") else (lambda e: e.start_us())
        for e in sorted(events, key=start):
            cur += e.nbytes()
            high = max(high, cur)
        return before + high

    def measure(fn):
        """Median seconds over --repeat runs after --warmup, and the peak memory of one run."""
        for _ in range(a.warmup):
            fn()
        sync()
        if a.device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(a.repeat):
            if a.device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        if a.device == "cuda":
            peak = torch.cuda.max_memory_allocated()
        else:
            try:
                peak = cpu_peak(fn)
            except Exception as e:  # a profiler API this torch lacks: keep the times
                print(f"bench_reference: no CPU peak memory ({type(e).__name__}: {e})", file=sys.stderr)
                peak = None
        return statistics.median(times), peak

    results = []

    def report(key, name, items, unit, make):
        """make() builds the timed function: a failure there or in a run is this entry's error only."""
        if a.only and key not in a.only.split(","):
            return
        try:
            seconds, peak = measure(make())
            r = dict(key=key, name=name, seconds=seconds, throughput=items / seconds, unit=unit,
                     peak_memory_bytes=peak)
        except torch.cuda.OutOfMemoryError as e:  # the 4K photo may not fit the reference's untiled inference
            torch.cuda.empty_cache()
            r = dict(key=key, name=name, error="out of memory: " + str(e).split("\n")[0])
        except Exception as e:  # e.g. torch.compile failing on one shape: keep the other entries
            if a.device == "cuda":
                torch.cuda.empty_cache()
            r = dict(key=key, name=name, error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300])
        results.append(r)
        print(json.dumps(r), file=sys.stderr, flush=True)

    def train_step(batch):
        m = model(0.0)
        m.train()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=0)
        x = torch.rand(batch, 3, 160, 160, device=dev)

        def step():
            with autocast():
                loss = m(x)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return step

    def infer(w, h, r3):
        m = model(0.16 if r3 else 0.0)
        m.eval()
        x = torch.rand(1, 3, h, w, device=dev)

        def run():
            with torch.no_grad(), autocast():
                m(x)
        return run

    for b in (2, 8):
        report(f"train_b{b}", f"amsnet-B training step (batch {b}, crop 160, pd 5)", b, "images/s",
               lambda b=b: train_step(b))
    report("infer_256", "amsnet inference 256x256 (pd 2, 2 branches)", 1, "images/s", lambda: infer(256, 256, False))
    report("infer_256_r3", "amsnet inference 256x256 (pd 2, 2 branches, R^3 x8)", 1, "images/s",
           lambda: infer(256, 256, True))
    report("infer_1024", "amsnet inference 1024x1024 (pd 2, 2 branches)", 1, "images/s",
           lambda: infer(1024, 1024, False))
    report("infer_3840x2160", "amsnet inference 3840x2160 (pd 2, 2 branches)", 1, "images/s",
           lambda: infer(3840, 2160, False))

    name = torch.cuda.get_device_name() if a.device == "cuda" else "cpu"
    out = dict(engine="pytorch " + ("torch.compile" if a.compile else "eager"), torch=torch.__version__,
               cuda=torch.version.cuda, device=name, precision=a.precision, preset=a.preset,
               warmup=a.warmup, repeat=a.repeat, stubbed=stubbed, results=results)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
