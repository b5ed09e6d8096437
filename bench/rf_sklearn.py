"""scikit-learn's side of bench/rf_speed.sh: the same CSV, split, trees and repeats as rf_bench."""
import json
import statistics
import sys
import time

import numpy as np
from sklearn.ensemble import RandomForestClassifier

path, repeat, test_fold, trees, jobs = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
with open(path) as f:
    header = f.readline().strip().split(",")
    rows = [line.strip().split(",") for line in f]
nf = len(header) - 3
x = np.array([[float(v) for v in r[:nf]] for r in rows], dtype=np.float32)
y = np.array([r[nf] for r in rows])
test = np.array([r[nf + 2] == test_fold for r in rows])
fit_s, pred_s, acc = [], [], 0.0
for seed in range(repeat):
    clf = RandomForestClassifier(n_estimators=trees, criterion="gini", max_features="sqrt", bootstrap=True, n_jobs=jobs, random_state=seed)
    t = time.perf_counter()
    clf.fit(x[~test], y[~test])
    fit_s.append(time.perf_counter() - t)
    t = time.perf_counter()
    p = clf.predict(x[test])
    pred_s.append(time.perf_counter() - t)
    acc += float((p == y[test]).mean())
import sklearn
print(json.dumps({"tool": f"scikit-learn {sklearn.__version__}", "threads": jobs, "train_rows": int((~test).sum()), "test_rows": int(test.sum()),
                  "features": nf, "trees": trees, "fit_s": statistics.median(fit_s), "predict_s": statistics.median(pred_s), "accuracy": acc / repeat}))
