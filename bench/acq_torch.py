"""bench/acq_torch.py -- the ACQ generator objective, eq. (15), written in plain
PyTorch (Debian python3-torch), for side-by-side timing with acq. Not used by
acq itself; the benchmarks import it.

ResNet-20 (pytorchcv layout, acq's state-dict keys), every BN layer switchable
between F^eval (running statistics) and F^train (batch statistics, running
statistics untouched) and recording the mean and biased variance of its input;
the losses follow spec/fixtures/golden.md."""
import json
import math
import struct

import torch
import torch.nn as nn
import torch.nn.functional as Fn


def read_safetensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    types = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}
    out = {}
    for k, v in header.items():
        if k != "__metadata__":
            b, e = v["data_offsets"]
            raw = bytearray(data[8 + n + b:8 + n + e])
            out[k] = torch.frombuffer(raw, dtype=types[v["dtype"]]).reshape(v["shape"]).clone()
    return out


def read_safetensors_meta(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)).get("__metadata__", {})


class BN(nn.BatchNorm2d):
    """BatchNorm2d with the paper's two inference modes and a stats recorder."""
    mode = "eval"
    stats = None

    def forward(self, x):
        if BN.stats is not None:
            BN.stats.append((x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False),
                             self.running_mean, self.running_var))
        if BN.mode == "eval":
            return Fn.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                 False, 0.0, self.eps)
        return Fn.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class Block(nn.Module):
    def __init__(self, i, o, s):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, s, 1, bias=False)
        self.bn1 = BN(o)
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.bn2 = BN(o)
        self.short = s != 1 or i != o
        if self.short:
            self.short_conv = nn.Conv2d(i, o, 1, s, bias=False)
            self.short_bn = BN(o)

    def forward(self, x):
        y = self.bn2(self.conv2(Fn.relu(self.bn1(self.conv1(x)))))
        return Fn.relu(y + (self.short_bn(self.short_conv(x)) if self.short else x))


class ResNet20(nn.Module):
    def __init__(self, cin, classes):
        super().__init__()
        self.conv = nn.Conv2d(cin, 16, 3, 1, 1, bias=False)
        self.bn = BN(16)
        chans = [(16, 16, 1), (16, 32, 2), (32, 64, 2)]
        for li, (i, o, s) in enumerate(chans, 1):
            setattr(self, f"layer{li}", nn.Sequential(Block(i, o, s), Block(o, o, 1), Block(o, o, 1)))
        self.fc = nn.Linear(64, classes)

    def forward(self, x, mode="eval", stats=True):
        """-> logits, backbone output (the attention input), BN input stats
        (None when stats is False)"""
        BN.mode, BN.stats = mode, [] if stats else None
        x = Fn.relu(self.bn(self.conv(x)))
        a = self.layer3(self.layer2(self.layer1(x)))
        stats, BN.stats = BN.stats, None
        return self.fc(a.mean((2, 3))), a, stats


def attention(a):  # eq. (3)
    s = (a * a).sum(1)
    mn, mx = s.amin((1, 2), keepdim=True), s.amax((1, 2), keepdim=True)
    return (s - mn) / (mx - mn).clamp_min(1e-12)


def bns(stats):  # eq. (6), variance form, sum
    return sum(((m - rm) ** 2).sum() + ((v - rv) ** 2).sum() for m, v, rm, rv in stats)


def cacm(M, p, eps=0.2):  # eq. (10)
    m = M.flatten(1).gather(1, p[:, None])[:, 0]
    return -torch.log(torch.clamp(m + eps, max=1.0)).mean()


def ad(l1, l2, z1, z2):  # eq. (13), batch form
    o1, o2 = l1.argmax(1), l2.argmax(1)
    mask = Fn.one_hot(o1, l1.shape[1]).bool() | Fn.one_hot(o2, l1.shape[1]).bool()
    lp1 = Fn.log_softmax(l1.masked_fill(mask, -1e30), 1)
    lp2 = Fn.log_softmax(l2.masked_fill(mask, -1e30), 1)
    lm = torch.logaddexp(lp1, lp2) - math.log(2.0)
    js = 0.5 * (lp1.exp() * (lp1 - lm)).sum(1) + 0.5 * (lp2.exp() * (lp2 - lm)).sum(1)
    mae = (z1 - z2).abs().mean(1)
    return mae.mean() / (js.mean() + 1e-8)


CIFAR10 = dict(pen_ce=0.5, pen_bns=1.0, pen_cacm=1.0, alpha=0.5, beta=1.0, gamma=1.0)


def g_objective(F, x1, x2, y, p, z1, z2, c=CIFAR10):
    """eq. (15) on the paired batch; returns L and the F^eval logits."""
    x = torch.cat([x1, x2])
    yy, pp = torch.cat([y, y]), torch.cat([p, p])
    le, ae, se = F(x, "eval")
    lt, at, st = F(x, "batch")
    Me, Mt = attention(ae), attention(at)
    B = x1.shape[0]
    L = (Fn.cross_entropy(le, yy) + c["pen_ce"] * Fn.cross_entropy(lt, yy)
         + c["alpha"] * (bns(se) + c["pen_bns"] * bns(st))
         + c["beta"] * (cacm(Me, pp) + c["pen_cacm"] * torch.relu((Mt - Me).abs().mean() - 0.1))
         + c["gamma"] * ad(le[:B], le[B:], z1, z2))
    return L, le


def load_model(weights, cin=3, classes=10):
    F = ResNet20(cin, classes)
    F.load_state_dict(weights)
    for q in F.parameters():
        q.requires_grad_(False)
    return F


def bns_mean(stats):  # GDFQ's code normalisation: per-layer MSE, averaged over layers
    return sum(((m - rm) ** 2).mean() + ((v - rv) ** 2).mean() for m, v, rm, rv in stats) / len(stats)


GDFQ = dict(alpha=0.1)


def g_objective_gdfq(F, x, y, c=GDFQ):
    """GDFQ's generator objective: L_CE + 0.1 L_BNS (mean form), F^eval only."""
    le, _, se = F(x, "eval")
    return Fn.cross_entropy(le, y) + c["alpha"] * bns_mean(se), le


class Generator(nn.Module):
    """GDFQ's generator body with ACQ's input eq. (11) (kind "acq":
    (Emb_class(y) + z) * Emb_position(p)) or GDFQ's eq. (5) (kind "gdfq":
    Emb_class(y) * z); acq's state-dict names (lua/acq/gen.lua). BN always
    in train mode, middle BN eps 0.8 as GDFQ's code writes it."""

    def __init__(self, kind, classes, size, channels, latent=100, width=128, eps=0.8):
        super().__init__()
        self.kind, self.width, self.init = kind, width, size // 4
        self.label_emb = nn.Embedding(classes, latent)
        if kind == "acq":
            self.pos_emb = nn.Embedding(self.init * self.init, latent)
        self.l1 = nn.Linear(latent, width * self.init * self.init)
        self.bn0 = nn.BatchNorm2d(width)
        self.conv1 = nn.Conv2d(width, width, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(width, eps)
        self.conv2 = nn.Conv2d(width, width // 2, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(width // 2, eps)
        self.conv3 = nn.Conv2d(width // 2, channels, 3, 1, 1)
        self.bn_out = nn.BatchNorm2d(channels, affine=False)

    def forward(self, z, y, p=None):
        if self.kind == "acq":
            h = (self.label_emb(y) + z) * self.pos_emb(p)
        else:
            h = self.label_emb(y) * z
        h = self.l1(h).view(-1, self.width, self.init, self.init)
        h = Fn.interpolate(self.bn0(h), scale_factor=2)
        h = Fn.interpolate(Fn.leaky_relu(self.bn1(self.conv1(h)), 0.2), scale_factor=2)
        h = Fn.leaky_relu(self.bn2(self.conv2(h)), 0.2)
        return self.bn_out(torch.tanh(self.conv3(h)))


def fake_quant(x, lo, hi, bits):
    """eqs. (1)-(2) with a straight-through gradient (see src/quant/fakequant.h)."""
    s = (hi - lo).clamp_min(1e-8) / (2 ** bits - 1)
    b = lo / s + 2 ** (bits - 1)
    q = (x.detach() / s - b).round().clamp(-2 ** (bits - 1), 2 ** (bits - 1) - 1)
    y = (q + b) * s
    return y + (x - x.detach()) if x.requires_grad else y


def quantized_layer(m, x, lo, hi, wbits, abits):
    """A conv or linear layer m on x with its weight fake-quantized per output
    channel (current min/max) and its input per layer within [lo, hi]."""
    w = m.weight
    dims = tuple(range(1, w.dim()))
    wq = fake_quant(w, w.detach().amin(dims, keepdim=True), w.detach().amax(dims, keepdim=True), wbits)
    xq = fake_quant(x, lo, hi, abits)
    if isinstance(m, nn.Conv2d):
        return Fn.conv2d(xq, wq, m.bias, m.stride, m.padding)
    return Fn.linear(xq, wq, m.bias)


def quantize(F, bounds, bits=4):
    """Q: a copy of F whose conv/linear layers fake-quantize their weight (per
    output channel, current min/max) and input (per layer, frozen bounds
    from `bounds`: name -> (lo, hi)); BN in eval mode; weights, biases and BN
    affine parameters trainable."""
    import copy
    Q = copy.deepcopy(F)
    for name, m in Q.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            lo, hi = bounds[name]

            def forward(x, m=m, lo=lo, hi=hi):
                return quantized_layer(m, x, lo, hi, bits, bits)
            m.forward = forward
    for q in Q.parameters():
        q.requires_grad_(True)
    return Q


def q_objective(q, f, target, tau=1.0):
    """eq. (16): CE(q, target) + tau KL(softmax(f) || softmax(q)), batch mean, T = 1."""
    lq, lf = Fn.log_softmax(q, 1), Fn.log_softmax(f.detach(), 1)
    kd = (lf.exp() * (lf - lq)).sum() / q.shape[0]
    return Fn.cross_entropy(q, target) + tau * kd
