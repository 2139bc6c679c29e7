"""How reproducible are the network's weights across machines? One training, several CPUs.

The same seeded training (the default CBAM-ResNet-18, a fold net's sizes, a few epochs) runs
in fresh processes under settings that stand for other machines: the thread count, and the
instruction set that PyTorch's kernels (ATEN_CPU_CAPABILITY) and oneDNN's
(ONEDNN_MAX_CPU_ISA) may use (an AVX2 machine, an AVX-512 one without bf16). Each run saves
its weights and its DL_E of a set of images; the script prints, against the first run, whether
the weights are the same bytes, their largest difference, and the largest DL_E difference.

    python tests/benchmarks/dl_reproducibility.py [--epochs 4] [--images 32]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

# (label, environment, threads, precision, the setting it is compared with)
SETTINGS = [
    ("this CPU, 2 threads, fp32", {}, 2, "fp32", 0),
    ("  the same, again", {}, 2, "fp32", 0),
    ("this CPU, 1 thread, fp32", {}, 1, "fp32", 0),
    ("AVX-512 without bf16, 2 threads, fp32", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, 2, "fp32", 0),
    ("AVX2 only, 2 threads, fp32", {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}, 2, "fp32", 0),
    ("this CPU, 2 threads, bf16", {}, 2, "bf16", 0),
    ("  the same, again", {}, 2, "bf16", 5),
]

CHILD = """
import sys, numpy as np, torch
from ctith import dl
out, threads, precision, epochs, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
rng = np.random.default_rng(0)
images = rng.random((n, 3, 224, 224), dtype=np.float32)
labels = (np.arange(n) % 5 < 2).astype(int)
images[labels == 1, :, 80:140, 80:140] += 0.5  # something to learn
params = dl.TrainParams(epochs=epochs, min_epochs=1, patience=10**6, device="cpu", precision=precision)
result = dl.train(images, labels, params, log=lambda s: None)
dl.save_weights(result.model, out + "/model.pt")
np.save(out + "/dl_e.npy", dl.predict(result.model, images)[0])
"""


def run(setting, folder: Path, epochs: int, images: int) -> Path:
    label, env, threads, precision, _ = setting
    folder.mkdir()
    subprocess.run([sys.executable, "-c", CHILD, str(folder), str(threads), precision, str(epochs), str(images)],
                   env={**os.environ, **env}, check=True)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--images", type=int, default=32)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folders = [run(s, Path(tmp) / str(i), args.epochs, args.images) for i, s in enumerate(SETTINGS)]
        print(f"{args.images} images, {args.epochs} epochs; each setting against the one it names")
        print(f"{'setting':<42}{'against':<28}{'same bytes':>11}{'max |dw|':>11}{'max |dDL_E|':>13}")
        for setting, folder in zip(SETTINGS, folders):
            ref = folders[setting[4]]
            a, b = (torch.load(f / "model.pt", weights_only=True) for f in (folder, ref))
            same = (folder / "model.pt").read_bytes() == (ref / "model.pt").read_bytes()
            dw = max(float((a[k].double() - b[k].double()).abs().max()) for k in b if b[k].is_floating_point())
            de = float(np.abs(np.load(folder / "dl_e.npy") - np.load(ref / "dl_e.npy")).max())
            print(f"{setting[0]:<42}{SETTINGS[setting[4]][0].strip():<28}{'yes' if same else 'no':>11}"
                  f"{dw:>11.2e}{de:>13.2e}")

if __name__ == "__main__":
    main()
