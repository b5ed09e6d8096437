"""The PyTorch side of bench/lstm_speed.sh: iPET's M_seq on synthetic windows, CPU.

BiLSTM(8) returning sequences -> BiLSTM(8) last states -> concat the extra scalar ->
Dense(128, tanh) -> Dropout(0.2) -> Dense(classes); Adam lr 1e-3, cross-entropy, batch 128,
a fresh shuffle each epoch, then 256 validation windows scored (as hush does). The data are the same shapes as lstm_bench's (not the same values:
the time of an epoch does not depend on them). Prints one JSON line per epoch.

With ARCH packet-lstm (7th argument): hush's packet-metadata attack, LSTM(64) last state ->
Dense(64, tanh) -> Dropout(0.2) -> Dense(classes), no extra scalar.

usage: lstm_torch.py WINDOWS STEPS FEATURES CLASSES EPOCHS THREADS [m-seq|packet-lstm]
"""

import json
import sys
import time

import torch
from torch import nn


class MSeq(nn.Module):
    def __init__(self, features, extra, hidden, dense, classes):
        super().__init__()
        self.l1 = nn.LSTM(features, hidden, batch_first=True, bidirectional=True)
        self.l2 = nn.LSTM(2 * hidden, hidden, batch_first=True, bidirectional=True)
        self.dense = nn.Linear(2 * hidden + extra, dense)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(dense, classes)

    def forward(self, x, extra):
        seq, _ = self.l1(x)
        _, (h, _) = self.l2(seq)
        last = torch.cat([h[0], h[1], extra], dim=1)
        return self.out(self.drop(torch.tanh(self.dense(last))))


class PacketLstm(nn.Module):
    def __init__(self, features, hidden, dense, classes):
        super().__init__()
        self.l1 = nn.LSTM(features, hidden, batch_first=True)
        self.dense = nn.Linear(hidden, dense)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(dense, classes)

    def forward(self, x, extra):
        _, (h, _) = self.l1(x)
        return self.out(self.drop(torch.tanh(self.dense(h[0]))))


def main():
    n, steps, features, classes, epochs, threads = map(int, sys.argv[1:7])
    arch = sys.argv[7] if len(sys.argv) > 7 else "m-seq"
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    y = torch.randint(0, classes, (n,))
    x = torch.randn(n, steps, features) + y.view(n, 1, 1).float() / classes
    extra = torch.randn(n, 1)
    vy = torch.randint(0, classes, (256,))
    vx = torch.randn(256, steps, features) + vy.view(256, 1, 1).float() / classes
    vextra = torch.randn(256, 1)
    if arch == "packet-lstm":
        model = PacketLstm(features, 64, 64, classes)
    else:
        model = MSeq(features, 1, 8, 128, classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    batch = 128
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n)
        total = 0.0
        for s in range(0, n, batch):
            idx = perm[s : s + batch]
            opt.zero_grad()
            loss = loss_fn(model(x[idx], extra[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(vx, vextra), vy).item()
        seconds = time.perf_counter() - t0
        print(
            json.dumps(
                {
                    "tool": f"pytorch {torch.__version__}",
                    "arch": arch,
                    "threads": threads,
                    "epoch": epoch,
                    "seconds": seconds,
                    "train_loss": total / n,
                    "val_loss": val_loss,
                    "mkldnn": torch.backends.mkldnn.is_available(),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
