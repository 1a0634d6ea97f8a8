"""PyTorch CPU baseline for docs/benchmarks.md: the default Restormer forward on a 256x256 image.

Run from the repository root:  /usr/bin/python3 tests/reference/bench_torch_cpu.py [--threads 2] [--size 256]
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from restormer import Restormer  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--size", type=int, default=256)
p.add_argument("--repeat", type=int, default=3)
a = p.parse_args()
torch.set_num_threads(a.threads)
net = Restormer().eval()
x = torch.rand(1, 3, a.size, a.size)
times = []
with torch.no_grad():
    net(x)  # warm-up
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        net(x)
        times.append(time.perf_counter() - t0)
times.sort()
print(f"torch {torch.__version__} restormer forward {a.size}x{a.size} cpu threads={a.threads}: "
      f"{times[len(times) // 2]:.3f} s (median of {a.repeat})")
