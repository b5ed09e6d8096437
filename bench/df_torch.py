"""The PyTorch side of bench/df_speed.sh: Deep Fingerprinting (Sirinam et al., CCS 2018) on CPU.

The network of DF's Keras code: four blocks of [Conv1D(f, 8, same) -> BatchNorm -> ELU/ReLU] x 2
-> MaxPool1D(8, stride 4, same) -> Dropout(0.1), with 32, 64, 128, 256 filters (ELU in the first
block); Flatten -> Dense(512) -> BatchNorm -> ReLU -> Dropout(0.7) -> Dense(512) -> BatchNorm ->
ReLU -> Dropout(0.5) -> Dense(classes). Batch normalisation as Keras' (eps 1e-3, momentum 0.99,
i.e. PyTorch momentum 0.01). Adamax lr 0.002 (0.9, 0.999, eps 1e-8), cross-entropy, batch 128, a
fresh shuffle each epoch, then the validation rows scored (as hush does).

The rows are the CSV `hush attack features -a df --data DIR` wrote (dir_0000.., label, group,
fold): fold 0 validates, the rest trains, as df_bench does. Prints one JSON line per epoch.

usage: df_torch.py ROWS.csv EPOCHS THREADS
"""

import csv
import json
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


class SameConv(nn.Module):
    """Conv1d with Keras' 'same' padding for an even kernel (the extra zero at the end)."""

    def __init__(self, c_in, c_out, k):
        super().__init__()
        self.k = k
        self.conv = nn.Conv1d(c_in, c_out, k)

    def forward(self, x):
        return self.conv(F.pad(x, ((self.k - 1) // 2, self.k // 2)))


class SamePool(nn.Module):
    """MaxPool1d with Keras' 'same' padding (ceil(L / stride) outputs, -inf padding)."""

    def __init__(self, k, s):
        super().__init__()
        self.k, self.s = k, s

    def forward(self, x):
        n = x.shape[-1]
        out = -(-n // self.s)
        total = max((out - 1) * self.s + self.k - n, 0)
        x = F.pad(x, (total // 2, total - total // 2), value=float("-inf"))
        return F.max_pool1d(x, self.k, self.s)


def bn(c):
    return nn.BatchNorm1d(c, eps=1e-3, momentum=0.01)


class DF(nn.Module):
    def __init__(self, length, classes):
        super().__init__()
        layers, c = [], 1
        for i, f in enumerate([32, 64, 128, 256]):
            act = nn.ELU(alpha=1.0) if i == 0 else nn.ReLU()
            layers += [SameConv(c, f, 8), bn(f), act, SameConv(f, f, 8), bn(f), act,
                       SamePool(8, 4), nn.Dropout(0.1)]
            c = f
            length = -(-length // 4)
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(256 * length, 512), bn(512), nn.ReLU(), nn.Dropout(0.7),
            nn.Linear(512, 512), bn(512), nn.ReLU(), nn.Dropout(0.5), nn.Linear(512, classes))

    def forward(self, x):
        return self.head(self.features(x))


def main():
    path, epochs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    with open(path) as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    steps = sum(h.startswith("dir_") for h in header)
    li, fi = header.index("label"), header.index("fold")
    labels = sorted({r[li] for r in rows})
    idx = {l: i for i, l in enumerate(labels)}
    def tensors(keep):
        sel = [r for r in rows if keep(r[fi])]
        x = torch.tensor([[float(v) for v in r[:steps]] for r in sel]).unsqueeze(1)
        y = torch.tensor([idx[r[li]] for r in sel])
        return x, y
    x, y = tensors(lambda f: f != "0")
    vx, vy = tensors(lambda f: f == "0")
    model = DF(steps, len(labels))
    opt = torch.optim.Adamax(model.parameters(), lr=0.002, betas=(0.9, 0.999), eps=1e-8)
    lossf = nn.CrossEntropyLoss()
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(len(y))
        for i in range(0, len(y), 128):
            b = perm[i:i + 128]
            opt.zero_grad()
            loss = lossf(model(x[b]), y[b])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(vx).argmax(1) == vy).float().mean().item()
        seconds = time.perf_counter() - t0
        print(json.dumps({"tool": f"pytorch {torch.__version__}", "threads": threads,
                          "epoch": epoch, "seconds": round(seconds, 3), "train_rows": len(y),
                          "steps": steps, "val_accuracy": round(acc, 4)}), flush=True)


if __name__ == "__main__":
    main()
