"""bench/eval_agreement.py WEIGHTS PRED -- the same Fashion-MNIST evaluation in
plain PyTorch (Debian python3-torch): its own idx reader, its own ResNet-20
(pytorchcv layout, from bench/acq_torch.py), the weights acq wrote; compares top-1 and every
prediction with acq's. Exit status 1 on any disagreement."""
import gzip
import struct
import sys

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from acq_torch import ResNet20, read_safetensors  # noqa: E402


def read_idx(path):
    data = gzip.open(path).read()
    nd = data[3]
    shape = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return torch.frombuffer(bytearray(data[4 + 4 * nd:]), dtype=torch.uint8).reshape(shape)


def main(weights, pred_path):
    torch.set_num_threads(1)
    model = ResNet20(1, 10)
    model.load_state_dict(read_safetensors(weights), strict=True)
    model.eval()
    root = "/usr/share/datasets/fashion-mnist"
    x = read_idx(f"{root}/t10k-images-idx3-ubyte.gz").float().div(255).sub(0.2860).div(0.3530).unsqueeze(1)
    y = read_idx(f"{root}/t10k-labels-idx1-ubyte.gz").long()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 500])[0].argmax(1) for i in range(0, len(x), 500)])
    acq_pred = read_safetensors(pred_path)["pred"]
    top1 = 100.0 * (pred == y).float().mean().item()
    acq_top1 = 100.0 * (acq_pred == y).float().mean().item()
    diff = (pred != acq_pred).sum().item()
    print(f"pytorch {torch.__version__}: top-1 {top1:.2f} %; acq: top-1 {acq_top1:.2f} %; "
          f"predictions differing: {diff} of {len(y)}")
    sys.exit(1 if diff else 0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
