"""bench/eval_agreement.py WEIGHTS PRED -- the same Fashion-MNIST evaluation in
plain PyTorch (Debian python3-torch): its own idx reader, its own ResNet-20
(pytorchcv layout), the weights acq wrote; compares top-1 and every
prediction with acq's. Exit status 1 on any disagreement."""
import gzip
import json
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as Fn


def read_safetensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    types = {"F32": torch.float32, "I64": torch.int64}
    out = {}
    for k, v in header.items():
        if k != "__metadata__":
            b, e = v["data_offsets"]
            out[k] = torch.frombuffer(bytearray(data[8 + n + b:8 + n + e]), dtype=types[v["dtype"]]).reshape(v["shape"])
    return out


def read_idx(path):
    data = gzip.open(path).read()
    nd = data[3]
    shape = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return torch.frombuffer(bytearray(data[4 + 4 * nd:]), dtype=torch.uint8).reshape(shape)


class Block(nn.Module):
    def __init__(self, i, o, s):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, s, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(o)
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(o)
        self.short = s != 1 or i != o
        if self.short:
            self.short_conv = nn.Conv2d(i, o, 1, s, bias=False)
            self.short_bn = nn.BatchNorm2d(o)

    def forward(self, x):
        y = self.bn2(self.conv2(Fn.relu(self.bn1(self.conv1(x)))))
        return Fn.relu(y + (self.short_bn(self.short_conv(x)) if self.short else x))


class ResNet20(nn.Module):
    def __init__(self, cin, classes):
        super().__init__()
        self.conv = nn.Conv2d(cin, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        chans = [(16, 16, 1), (16, 32, 2), (32, 64, 2)]
        for li, (i, o, s) in enumerate(chans, 1):
            setattr(self, f"layer{li}", nn.Sequential(Block(i, o, s), Block(o, o, 1), Block(o, o, 1)))
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = Fn.relu(self.bn(self.conv(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean((2, 3)))


def main(weights, pred_path):
    torch.set_num_threads(1)
    model = ResNet20(1, 10)
    model.load_state_dict(read_safetensors(weights), strict=True)
    model.eval()
    root = "/usr/share/datasets/fashion-mnist"
    x = read_idx(f"{root}/t10k-images-idx3-ubyte.gz").float().div(255).sub(0.2860).div(0.3530).unsqueeze(1)
    y = read_idx(f"{root}/t10k-labels-idx1-ubyte.gz").long()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 500]).argmax(1) for i in range(0, len(x), 500)])
    acq_pred = read_safetensors(pred_path)["pred"]
    top1 = 100.0 * (pred == y).float().mean().item()
    acq_top1 = 100.0 * (acq_pred == y).float().mean().item()
    diff = (pred != acq_pred).sum().item()
    print(f"pytorch {torch.__version__}: top-1 {top1:.2f} %; acq: top-1 {acq_top1:.2f} %; "
          f"predictions differing: {diff} of {len(y)}")
    sys.exit(1 if diff else 0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
