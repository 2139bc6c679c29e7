"""Training throughput: the real training loop against the bare model, same device, same run.

Prints images per second of
- the real loop (``ctith.dl.train``: batches drawn from the on-device image tensor,
  flips and 45-degree rotations on the device, forward, loss, backward, AdamW step;
  the first epoch is warm-up and not counted), and
- the bare model: forward, loss, backward and AdamW step on random tensors already on
  the device, at the same batch size, precision and memory format,
and their ratio. On CUDA both use bf16 autocast and channels_last.

    python tests/benchmarks/bench_dl.py [--images 96] [--epochs 3] [--batch-size 16] [--device auto]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from ctith import dl


def bare_model(params: dl.TrainParams, device: torch.device, steps: int, size: int) -> float:
    cuda = device.type == "cuda"
    memory = torch.channels_last if cuda else torch.contiguous_format
    model = dl.build_model(params).to(device, memory_format=memory).train()
    opt = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    x = torch.rand(params.batch_size, 3, size, size, device=device).contiguous(memory_format=memory)
    y = (torch.rand(params.batch_size, device=device) > 0.5).float()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)

    def step():
        with autocast:
            loss = loss_fn(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):  # warm-up
        step()
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    return steps * params.batch_size / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=96, help="training images (random 3 x 224 x 224)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = dl.pick_device(args.device)
    print(f"device: {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                 f" ({torch.get_num_threads()} threads)") + f", torch {torch.__version__}")
    rng = np.random.default_rng(0)
    images = rng.random((args.images, 3, args.size, args.size), dtype=np.float32)
    labels = (np.arange(args.images) % 3 == 0).astype(int)
    params = dl.TrainParams(epochs=args.epochs + 1, patience=10**6, batch_size=args.batch_size,
                            inner_val_fraction=0.0, device=str(device))
    result = dl.train(images, labels, params, log=lambda s: None)
    timed = result.history[1:]  # epoch 1 is warm-up
    real = sum(h["images"] for h in timed) / sum(h["fit_seconds"] for h in timed)
    steps = max(3, sum(h["images"] for h in timed) // args.batch_size)
    bare = bare_model(params, device, steps, args.size)
    print(f"real training loop (data + augmentation): {real:.1f} images/s")
    print(f"bare model on device tensors:             {bare:.1f} images/s")
    print(f"ratio real / bare: {real / bare:.2f}")


if __name__ == "__main__":
    main()
