"""Training throughput: the real training loop against the bare model, fp32 and bf16, in one run.

For each precision it prints images per second of
- the bare model: forward, loss, backward and AdamW step on one random batch already on the
  device, at the loop's batch size, precision and memory format;
- the real loop (``ctith.dl.training.train`` at the demo's sizes: a fold net's training patients, 20%
  of them held out for early stopping, batch 16): batches drawn from the image tensor,
  flips and 45-degree rotations, forward, loss, backward, AdamW step, and every epoch's
  early-stopping evaluation and kept-weights copy. Training images over the epochs' whole
  wall time; the first epoch (one-time kernel set-up) and the set-up around the epochs
  (images to the device, the model built, the kept weights restored) are reported apart;
and the loop-to-model ratio. Rounds alternate bare and loop, fp32 and bf16, so that a
change in the machine's load falls on all of them; medians are printed.

With ``--parallel N``, instead: N nets at once, each in its own process on one thread (as
Snakemake runs ``dl_train`` with ``dl.threads: 1`` on N cores), against one net on N
threads (``dl.threads: N``, one at a time), in the precision ``auto`` picks; rounds
alternate the two. Printed: each way's images/s in all and per core.

    python tests/benchmarks/bench_dl.py [--patients 32] [--epochs 6] [--rounds 3] [--device auto]
    python tests/benchmarks/bench_dl.py --parallel 2 [--patients 54]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn

from ctith.dl import training as dl
from ctith.dl.device import Compute, native_bf16, pick_device


def bare_model(params: dl.TrainParams, compute: Compute, steps: int, size: int) -> float:
    """Images/s of forward, loss, backward and optimiser step on one batch on the device."""
    torch.manual_seed(params.seed)
    memory = compute.memory_format
    model = dl.build_model(params).to(compute.device, memory_format=memory).train()
    opt = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    x = torch.rand(params.batch_size, 3, size, size, device=compute.device).contiguous(memory_format=memory)
    y = (torch.rand(params.batch_size, device=compute.device) > 0.5).float()

    def step():
        with compute.autocast():
            loss = loss_fn(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):  # warm-up: kernel set-up
        step()
    compute.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    compute.synchronize()
    return steps * params.batch_size / (time.perf_counter() - t)


def real_loop(params: dl.TrainParams, images: np.ndarray, labels: np.ndarray) -> dict:
    """Images/s of ``dl.train``'s epochs after the first, and where their time went."""
    t = time.perf_counter()
    result = dl.train(images, labels, params, log=lambda s: None)
    total = time.perf_counter() - t
    epochs = result.history[1:]
    loop = sum(h["epoch_seconds"] for h in epochs)
    fit = sum(h["fit_seconds"] for h in epochs)
    evaluation = sum(h["eval_seconds"] for h in epochs)
    return {"rate": sum(h["images"] for h in epochs) / loop, "fit": fit / loop, "eval": evaluation / loop,
            "other": 1 - (fit + evaluation) / loop, "epoch_s": loop / len(epochs),
            "first_epoch_s": result.history[0]["epoch_seconds"],
            # set-up (data to the device, the model built) and the end (best weights back)
            "setup_s": total - sum(h["epoch_seconds"] for h in result.history),
            "n_fit": result.info["n_fit"], "n_val": result.info["n_inner_val"]}


def _loop_rate(threads: int, patients: int, size: int, epochs: int, batch_size: int) -> float:
    """Images/s of the real loop in this process on ``threads`` threads (a worker's task)."""
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    images = rng.random((patients, 3, size, size), dtype=np.float32)
    labels = (np.arange(patients) % 5 < 2).astype(int)
    params = dl.TrainParams(epochs=epochs, min_epochs=1, patience=10**6, batch_size=batch_size, device="cpu")
    return real_loop(params, images, labels)["rate"]


def parallel(args) -> None:
    """N one-thread nets at once against one N-thread net: images/s in all and per core."""
    import multiprocessing

    n = args.parallel
    task = (args.patients, args.size, args.epochs, args.batch_size)
    rates = {"one net on {} threads".format(n): [], f"{n} nets at once, one thread each": []}
    ctx = multiprocessing.get_context("spawn")  # each worker its own torch thread pool
    for _ in range(args.rounds):
        with ctx.Pool(1) as pool:
            rates[f"one net on {n} threads"].append(pool.apply(_loop_rate, (n, *task)))
        with ctx.Pool(n) as pool:
            rates[f"{n} nets at once, one thread each"].append(sum(pool.starmap(_loop_rate, [(1, *task)] * n)))
    print(f"real loop, {args.patients} patients ({args.epochs} epochs, the first left out), batch {args.batch_size}, "
          f"precision {Compute.of('cpu').precision}; medians of {args.rounds} rounds")
    for way, r in rates.items():
        med = statistics.median(r)
        print(f"{way:<36}{med:>8.2f} img/s in all{med / n:>8.2f} img/s per core")
    first, second = (statistics.median(r) for r in rates.values())
    print(f"{n} one-thread nets / one {n}-thread net: {second / first:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=32,
                    help="training patients of one net (the demo's fold nets: 32 of its 36)")
    ap.add_argument("--epochs", type=int, default=6, help="epochs per loop run (the first is set-up)")
    ap.add_argument("--bare-steps", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--parallel", type=int, help="N one-thread nets at once against one N-thread net (CPU)")
    args = ap.parse_args()
    if args.parallel:
        return parallel(args)
    device = pick_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"device: {device} ({name}), torch {torch.__version__}, native bf16: {native_bf16(device)}")
    rng = np.random.default_rng(0)
    images = rng.random((args.patients, 3, args.size, args.size), dtype=np.float32)
    labels = (np.arange(args.patients) % 5 < 2).astype(int)  # 40% DM, as the demo's training cohort
    results = {p: {"bare": [], "loop": []} for p in ("fp32", "bf16")}
    for _ in range(args.rounds):
        for precision in results:
            # min_epochs 1: every epoch may keep its weights (the copy is timed), none stops early.
            params = dl.TrainParams(epochs=args.epochs, min_epochs=1, patience=10**6, batch_size=args.batch_size,
                                    device=str(device), precision=precision)
            compute = Compute.of(str(device), precision)
            results[precision]["bare"].append(bare_model(params, compute, args.bare_steps, args.size))
            results[precision]["loop"].append(real_loop(params, images, labels))
    loop0 = results["fp32"]["loop"][0]
    print(f"loop: {loop0['n_fit']} training images and {loop0['n_val']} early-stopping images per epoch, "
          f"batch {args.batch_size}, {args.size} x {args.size}; medians of {args.rounds} rounds")
    print(f"{'precision':<10}{'bare img/s':>11}{'loop img/s':>11}{'loop/bare':>10}{'fit':>7}{'eval':>7}"
          f"{'other':>7}{'epoch s':>9}{'1st epoch s':>12}{'set-up s':>10}")
    rates = {}
    for precision, r in results.items():
        bare = statistics.median(r["bare"])
        med = {k: statistics.median(run[k] for run in r["loop"]) for k in r["loop"][0]}
        rates[precision] = med["rate"]
        print(f"{precision:<10}{bare:>11.2f}{med['rate']:>11.2f}{med['rate'] / bare:>10.2f}{med['fit']:>7.0%}"
              f"{med['eval']:>7.0%}{med['other']:>7.1%}{med['epoch_s']:>9.2f}{med['first_epoch_s']:>12.2f}"
              f"{med['setup_s']:>10.2f}")
    print(f"bf16 / fp32, real loop: {rates['bf16'] / rates['fp32']:.2f}")


if __name__ == "__main__":
    main()
