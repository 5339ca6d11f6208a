"""bench/losses.py FILE ITERS WARMUP THREADS -- time of the whole ACQ generator
objective, eq. (15) (F^eval and F^train forwards of the 2B samples, every
loss, backward to the generator output), in plain PyTorch, on the inputs and
ResNet-20 weights acq wrote to FILE (bench/losses.lua --prepare). Prints one
line: "pytorch <L> <ms per iteration>"."""
import sys
import time

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from acq_torch import g_objective, load_model, read_safetensors  # noqa: E402


def main(path, iters, warmup, threads):
    torch.set_num_threads(threads)
    t = read_safetensors(path)
    F = load_model({k[3:]: v for k, v in t.items() if k.startswith("fp.")})
    x1, x2 = t["in.x1"].requires_grad_(), t["in.x2"].requires_grad_()
    args = (t["in.y"], t["in.p"], t["in.z1"], t["in.z2"])
    times = []
    for i in range(warmup + iters):
        x1.grad = x2.grad = None
        t0 = time.perf_counter()
        L, _ = g_objective(F, x1, x2, *args)
        L.backward()
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
    times.sort()
    print("pytorch %.9g %.3f %.6g" % (L.item(), 1e3 * times[len(times) // 2], x1.grad.abs().sum().item()))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
