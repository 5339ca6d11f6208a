"""bench/iteration.py FILE ITERS WARMUP THREADS -- one Algorithm 1 iteration
after warm-up, written in plain PyTorch (Debian python3-torch), from the state
acq wrote to FILE (bench/iteration.lua --prepare): the same F, G, Q bounds,
shapes, coefficients, optimizers and random draws (torch's generator with
the same seed gives the same samples as acq's). Prints one line of JSON like
bench/iteration.lua's."""
import json
import os
import sys
import time

import torch
import torch.nn.functional as Fn

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import acq_torch as A  # noqa: E402

PHASES = ["G forward", "F + losses", "backward", "optimizer", "Q step"]


def peak_rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def main(path, iters, warmup, threads):
    torch.set_num_threads(threads)
    t = A.read_safetensors(path)
    meta = A.read_safetensors_meta(path)
    method, B = meta["method"], int(meta["batch"])
    size, _, ch = (int(v) for v in meta["shape"].split("x"))
    F = A.load_model({k[2:]: v for k, v in t.items() if k.startswith("F.")}, cin=ch)
    G = A.Generator(method, 10, size, ch)
    G.load_state_dict({k[2:]: v for k, v in t.items() if k.startswith("G.")})
    G.train()
    bounds = {}
    for k, v in t.items():
        if k.startswith("bounds.") and k.endswith(".lo"):
            name = k[len("bounds."):-len(".lo")]
            bounds[name] = (v, t["bounds." + name + ".hi"])
    # ACQ_BENCH_DEVICE=cuda: the models on the GPU; draws on the host, as acq's
    dev = torch.device(os.environ.get("ACQ_BENCH_DEVICE", "cpu"))
    F, G = F.to(dev), G.to(dev)
    Q = A.quantize(F, {k: (lo.to(dev), hi.to(dev)) for k, (lo, hi) in bounds.items()})
    with torch.no_grad():  # Q on the fixed batch of the same-loss check
        x0 = t["check.x"].to(dev)
        f0 = F(x0, mode="eval", stats=False)[0]
        lq_same = A.q_objective(Q(x0, mode="eval", stats=False)[0], f0, f0.argmax(1)).item()
    optG = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    optQ = torch.optim.SGD(Q.parameters(), lr=1e-4, momentum=0.9, nesterov=True, weight_decay=1e-4)
    rng = torch.Generator().manual_seed(7)
    positions = (size // 4) ** 2
    total, split, first = [], {p: [] for p in PHASES}, None
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        lap, last = {}, t0

        def mark(phase):
            nonlocal last
            now = time.perf_counter()
            lap[phase], last = now - last, now

        # 1. sample (z1, z2, y, p) in acq's order, then G
        z1 = torch.randn(B, 100, generator=rng).to(dev)
        z2 = torch.randn(B, 100, generator=rng).to(dev)
        y = torch.randint(0, 10, (B,), generator=rng).to(dev)
        if method == "acq":
            p = torch.randint(0, positions, (B,), generator=rng).to(dev)
            x1, x2 = G(z1, y, p), G(z2, y, p)
        else:
            x1 = G(z1, y)
        mark("G forward")
        # 2. G step on eq. (15) (GDFQ: its own objective)
        if method == "acq":
            LG, le = A.g_objective(F, x1, x2, y, p, z1, z2)
        else:
            LG, le = A.g_objective_gdfq(F, x1, y)
        lg = LG.item()
        mark("F + losses")
        optG.zero_grad()
        LG.backward()
        mark("backward")
        optG.step()
        mark("optimizer")
        # 3. Q step on eq. (16) on the detached samples
        if method == "acq":
            x, fl = torch.cat([x1, x2]).detach(), le.detach()
            target = fl.argmax(1)
        else:
            x, fl, target = x1.detach(), le.detach(), y
        LQ = A.q_objective(Q(x, "eval", stats=False)[0], fl, target)
        lq = LQ.item()
        optQ.zero_grad()
        LQ.backward()
        optQ.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        mark("Q step")
        dt = time.perf_counter() - t0
        if i == 0:
            first = (lg, lq)
        if i >= warmup:
            total.append(dt)
            for ph in PHASES:
                split[ph].append(lap[ph])

    def median(v):
        v = sorted(v)
        return 1e3 * v[(len(v) - 1) // 2]
    print(json.dumps({"side": "pytorch", "device": str(dev), "method": method, "shape": meta["shape"], "batch": B,
                      "threads": threads, "ms": median(total), "L_G": first[0], "L_Q": first[1], "L_Q_same": lq_same,
                      "rss_mb": peak_rss_mb(), "split": {ph: median(split[ph]) for ph in PHASES}}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
