# bench/overhead.py N -- the same tiny op from Python with Debian's
# python3-torch: c = a + b on two 1-element f32 tensors, N times.
# Prints one line: "pytorch <calls per second>".
import sys
import time

import torch

n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
torch.set_num_threads(1)
a, b = torch.tensor([1.0]), torch.tensor([2.0])
for _ in range(1000):
    c = a + b
t0 = time.process_time()
for _ in range(n):
    c = a + b
dt = time.process_time() - t0
print("pytorch %.0f" % (n / dt))
