"""CBAM-ResNet with Mish, on-device augmentation, seeded CPU training, DL_E / DL_F, Grad-CAM."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ctith import cli
from ctith.cohort import crossfit
from ctith.dl import training as dl, figures as dl_figures, network as dl_network
from ctith.io import read_json, write_tsv


def blobs(n=48, size=48, seed=0):
    """A learnable task: DM patients' images hold a bright blob, the others a dim one."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 3 == 0).astype(int)  # imbalanced: a third positive
    yy, xx = np.mgrid[:size, :size]
    x = rng.uniform(0, 0.2, (n, 3, size, size)).astype(np.float32)
    for i in range(n):
        cy, cx = rng.integers(16, size - 16, 2)
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2) < 64
        x[i, :, blob] += 0.7 if y[i] else 0.2
    return x, y


SMALL = dict(depth=18, base_width=8, head_hidden=16, dropout=0.1, epochs=20, patience=50, batch_size=8, lr=3e-3,
             inner_val_fraction=0.25, device="cpu")


@pytest.mark.parametrize("depth, blocks", [(18, 8), (34, 16), (50, 16)])
def test_architecture_cbam_in_every_block_mish_and_head_dropout(depth, blocks):
    model = dl_network.CBAMResNet(depth, base_width=8, head_hidden=16, dropout=0.3)
    residual = [m for m in model.modules() if isinstance(m, dl_network.BasicBlock)]
    assert len(residual) == blocks
    assert all(isinstance(b.cbam, dl_network.CBAM) for b in residual)
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert any(isinstance(m, nn.Mish) for m in model.modules())
    assert [type(m) for m in model.head] == [nn.Dropout, nn.Linear]
    assert model.head[0].p == 0.3
    x = torch.rand(2, 3, 96, 96)
    assert model(x).shape == (2,) and model.features(x).shape == (2, 16)
    with pytest.raises(ValueError, match="depth must be one of"):
        dl_network.CBAMResNet(20)


def test_cbam_applies_channel_then_spatial_attention():
    torch.manual_seed(0)
    cbam = dl_network.CBAM(32, reduction=4)
    x = torch.randn(2, 32, 8, 8)
    assert torch.allclose(cbam(x), cbam.spatial(cbam.channel(x)))
    assert not torch.allclose(cbam(x), cbam.channel(cbam.spatial(x)))
    # Channel attention scales whole channels; spatial attention scales whole positions.
    ratio_c = cbam.channel(x) / x
    assert torch.allclose(ratio_c, ratio_c[..., :1, :1].expand_as(ratio_c), atol=1e-5)
    ratio_s = cbam.spatial(x) / x
    assert torch.allclose(ratio_s, ratio_s[:, :1].expand_as(ratio_s), atol=1e-5)


def test_augment_rotates_in_45_degree_steps_and_flips():
    yy, xx = torch.meshgrid(torch.arange(33.0), torch.arange(33.0), indexing="ij")
    x = torch.exp(-((yy - 6) ** 2 + (xx - 16) ** 2) / 4.0)[None, None]  # a blob straight "up" of the centre
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(200):
        out = dl.augment(x, gen)[0, 0]
        assert out.sum().item() == pytest.approx(x.sum().item(), rel=0.02)  # the blob stays whole
        cy, cx = (yy * out).sum() / out.sum(), (xx * out).sum() / out.sum()
        angle = math.degrees(math.atan2(cx.item() - 16, 16 - cy.item())) % 360
        step = round(angle / 45) % 8
        assert min(abs(angle - 45 * step), abs(angle - 45 * step - 360)) < 2
        seen.add(step)
    assert seen == set(range(8))
    # Multiples of 90 degrees (with or without a flip) move pixels exactly.
    img = torch.rand(64, 1, 16, 16)
    outs = dl.augment(img, torch.Generator().manual_seed(1))
    n_exact = sum(any(torch.allclose(o, torch.flip(torch.rot90(im, k, (1, 2)), f), atol=1e-5)
                      for k in range(4) for f in ((), (2,)))
                  for o, im in zip(outs, img))
    assert 16 <= n_exact <= 48  # about half the draws are multiples of 90 degrees


def test_training_loss_falls_and_same_seed_gives_identical_weights():
    x, y = blobs()
    params = dl.TrainParams(**SMALL)
    a = dl.train(x, y, params, log=lambda s: None)
    b = dl.train(x, y, params, log=lambda s: None)
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    losses = [h["train_loss"] for h in a.history]
    assert np.mean(losses[-3:]) < 0.3 * np.mean(losses[:3])
    assert a.info["n_fit"] == 36 and a.info["n_inner_val"] == 12 and a.info["device"] == "cpu"
    assert a.info["pos_weight"] == pytest.approx(24 / 12)
    prob, feats = dl.predict(a.model, x)
    assert prob.shape == (48,) and feats.shape == (48, 16) and ((0 <= prob) & (prob <= 1)).all()
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, prob) > 0.8
    c = dl.train(x, y, dl.TrainParams(**{**SMALL, "seed": 7}), log=lambda s: None)
    assert not torch.equal(c.model.stem[0].weight, a.model.stem[0].weight)


def test_a_fixed_stop_epoch_trains_the_start_of_the_same_schedule():
    """stop_epoch N (the refit at the fold nets' kept epoch): epochs 1..N of the `epochs`-long
    cosine schedule, the same steps as a run that goes on, and epoch N's weights kept."""
    x, y = blobs(n=24)
    common = {**SMALL, "epochs": 6, "dropout": 0.0}
    short = dl.train(x, y, dl.TrainParams(**common, stop_epoch=3), log=lambda s: None)
    full = dl.train(x, y, dl.TrainParams(**common, min_epochs=1), log=lambda s: None)
    assert short.info["epochs_run"] == short.info["best_epoch"] == 3
    assert [h["lr"] for h in short.history] == [h["lr"] for h in full.history[:3]]
    assert [h["train_loss"] for h in short.history] == [h["train_loss"] for h in full.history[:3]]
    with pytest.raises(ValueError, match="outside the schedule's 6 epochs"):
        dl.train(x, y, dl.TrainParams(**common, stop_epoch=7), log=lambda s: None)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_each_precision_gives_byte_identical_weights_twice(tmp_path, precision):
    """One machine, one config: the saved model.pt is the same bytes twice, in bf16 too.
    A bf16-trained net keeps float32 weights, scored in float32 on any CPU."""
    x, y = blobs(n=30, size=40)
    params = dl.TrainParams(**{**SMALL, "epochs": 4, "precision": precision})
    runs = [dl.train(x, y, params, log=lambda s: None) for _ in range(2)]
    for i, run in enumerate(runs):
        dl.save_weights(run.model, tmp_path / f"{i}.pt")
    assert (tmp_path / "0.pt").read_bytes() == (tmp_path / "1.pt").read_bytes()
    assert runs[0].info["precision"] == precision and runs[0].info["params"]["precision"] == precision
    state = torch.load(tmp_path / "0.pt", weights_only=True)
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float32}
    assert all(v.is_contiguous() for v in state.values())
    prob, _ = dl.predict(dl.load_model(tmp_path / "0.pt", params), x)
    assert np.isfinite(prob).all()


def test_auto_precision_follows_the_hardware(monkeypatch):
    """auto: bf16 where the CPU computes it natively (AVX512-BF16, AMX-BF16, Arm BF16), fp32
    elsewhere; fp32 and bf16 as asked; anything else refused."""
    from ctith.dl import device as dl_device

    cpu = torch.device("cpu")
    for caps, expected in (({"avx2": True}, "fp32"), ({"avx512_bf16": True}, "bf16"),
                           ({"amx_bf16": True, "avx512_bf16": False}, "bf16"), ({"bf16": True}, "bf16")):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda caps=caps: caps)
        assert dl_device.resolve_precision("auto", cpu) == expected, caps
        assert dl_device.resolve_precision("fp32", cpu) == "fp32"
        assert dl_device.resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16"):
        dl_device.resolve_precision("fp16", cpu)
    # A CPU without native bf16 trains in fp32, and training.json says so.
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True})
    x, y = blobs(n=20, size=40)
    info = dl.train(x, y, dl.TrainParams(**{**SMALL, "epochs": 1, "min_epochs": 1}), log=lambda s: None).info
    assert info["precision"] == "fp32" and info["params"]["precision"] == "auto"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_narrow_network_trains_on_channels_last_without_crashing(precision):
    """oneDNN's own strided 1 x 1 backward pass writes out of bounds on channels_last inputs
    of under 16 channels (torch 2.13). StridedPointwise takes every second pixel with an
    exact 1 x 1 average pool instead, and gives the strided convolution's numbers."""
    torch.manual_seed(0)
    conv = dl_network.StridedPointwise(4, 8, 2)
    strided = nn.Conv2d(4, 8, 1, 2, bias=False)
    strided.weight.data.copy_(conv.weight.data)
    x = torch.randn(3, 4, 13, 13)
    assert torch.equal(conv(x), strided(x))
    model = dl_network.CBAMResNet(18, base_width=4, head_hidden=8).to(memory_format=torch.channels_last)
    for batch in (3, 5, 7):
        x = torch.rand(batch, 3, 56, 56).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x).float().sum()
        out.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_weights_round_trip_with_weights_only(tmp_path):
    params = dl.TrainParams(**SMALL)
    model = dl.build_model(params)
    dl.save_weights(model, tmp_path / "m.pt")
    back = dl.load_model(tmp_path / "m.pt", params)
    x = torch.rand(2, 3, 64, 64)
    model.eval()
    assert torch.equal(model(x), back(x))
    torch.save({"model": model}, tmp_path / "pickled.pt")  # a full pickle is refused
    with pytest.raises(Exception):
        dl.load_model(tmp_path / "pickled.pt", params)


def test_gradcam_shape_and_range():
    x, y = blobs(n=12)
    model = dl.build_model(dl.TrainParams(**SMALL))
    maps = dl.gradcam(model, x[:3])
    assert maps.shape == (3, 48, 48)
    assert maps.min() >= 0 and maps.max() <= 1


def test_cli_trains_on_training_patients_only(tmp_path, capsys):
    """dl-train sees training patients only: validation labels and images change nothing.
    The fold nets give every training patient an out-of-fold DL_E, and the DL_F signature
    is cross-fitted on their features. Two nets on four shared folds merged (--crossfit-folds):
    fold net k holds out the shared folds k and k + 2."""
    x, y = blobs(n=40)
    ids = [f"P{i:02d}" for i in range(40)]
    cohort = ["train"] * 28 + ["internal_validation"] * 6 + ["external_validation"] * 6
    paths = []
    for pid, img in zip(ids, x):
        d = tmp_path / "patients" / pid / "dl"
        d.mkdir(parents=True)
        np.save(d / "input.npy", img)
        (d / "qc.json").write_text(f'{{"patient_id": "{pid}"}}')
        paths.append(str(d / "input.npy"))
    write_tsv(pd.DataFrame({"patient_id": ids, "institution": "A", "cohort": cohort, "assigned_by": "sheet"}),
              tmp_path / "split.tsv")
    folds = crossfit.assign_folds(ids[:28], y[:28], 4, seed=0)
    write_tsv(folds.reset_index(), tmp_path / "folds.tsv")
    months = np.random.default_rng(1).uniform(3, 60, 40).round(1)

    def run(tag, labels):
        write_tsv(pd.DataFrame({"patient_id": ids, "dm_event": labels, "dm_time_months": months}),
                  tmp_path / "clinical.tsv")
        params = '{"depth": 18, "base_width": 8, "head_hidden": 16, "epochs": 4, "min_epochs": 1, "patience": 1, "batch_size": 8}'
        common = ["--inputs", *paths, "--split", str(tmp_path / "split.tsv"), "--clinical", str(tmp_path / "clinical.tsv")]
        out = tmp_path / tag
        folds_file = ["--folds", str(tmp_path / "folds.tsv"), "--crossfit-folds", "2"]
        stop_from = ["--stop-epoch-from", str(out / "fold0/training.json"), str(out / "fold1/training.json")]
        for fit, fold in (("fold0", [*folds_file, "--fold", "0"]), ("fold1", [*folds_file, "--fold", "1"]),
                          ("refit", stop_from)):
            assert cli.main(["dl-train", *common, "--params", params, "--device", "cpu", *fold,
                             "--out-dir", str(out / fit)]) == 0
        assert cli.main(["dl-predict", *common, "--model", str(out / "refit/model.pt"),
                         "--fold-models", str(out / "fold0/model.pt"), str(out / "fold1/model.pt"),
                         "--gradcam-patients", "4", "--out-dl-e", str(out / "dl_e.tsv"), "--out-dl-f",
                         str(out / "dl_f.tsv"), "--out-fold-features", str(out / "fold_features.tsv"),
                         "--out-gradcam", str(out / "gc.npz"), "--loss-figure", str(out / "s3.png"),
                         "--figure", str(out / "s5.png")]) == 0
        assert cli.main(["dl-signature", "--dl-f", str(out / "dl_f.tsv"), "--fold-features",
                         str(out / "fold_features.tsv"), "--folds", str(tmp_path / "folds.tsv"), "--clinical",
                         str(tmp_path / "clinical.tsv"), "--crossfit-folds", "2",
                         "--out-scores", str(out / "dl_f_signature.tsv"),
                         "--out-signature", str(out / "lasso.tsv"), "--out-report", str(out / "selection.json")]) == 0
        return out

    a = run("a", y)
    # The folds table alone would be ignored: refused, so a refit is never mistaken for a fold net.
    assert cli.main(["dl-train", "--inputs", *paths, "--split", str(tmp_path / "split.tsv"), "--clinical",
                     str(tmp_path / "clinical.tsv"), "--folds", str(tmp_path / "folds.tsv"),
                     "--out-dir", str(tmp_path / "x")]) == 1
    assert "needs both --folds" in capsys.readouterr().err and not (tmp_path / "x").exists()
    flipped = y.copy()
    flipped[28:] = 1 - flipped[28:]
    b = run("b", flipped)
    for fit in ("refit", "fold0", "fold1"):
        assert (a / fit / "model.pt").read_bytes() == (b / fit / "model.pt").read_bytes()
    for name in ("dl_e.tsv", "fold_features.tsv", "dl_f_signature.tsv", "lasso.tsv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    refit = read_json(a / "refit/training.json")
    assert refit["train_patients"] == ids[:28]
    # The refit trains to the middle of the fold nets' kept epochs, on their schedule.
    kept = [read_json(a / f"fold{k}/training.json")["best_epoch"] for k in (0, 1)]
    assert refit["fold_kept_epochs"] == kept and refit["params"]["stop_epoch"] == math.ceil(sum(kept) / 2)
    assert refit["epochs_run"] == refit["best_epoch"] == refit["params"]["stop_epoch"]
    held = read_json(a / "fold1/training.json")
    assert held["held_out_patients"] == sorted(folds.index[folds.isin([1, 3])]) and held["fold"] == 1
    assert sorted(held["train_patients"]) == sorted(folds.index[folds.isin([0, 2])])
    dl_e = pd.read_csv(a / "dl_e.tsv", sep="\t")
    dl_f = pd.read_csv(a / "dl_f.tsv", sep="\t")
    assert list(dl_e["patient_id"]) == ids and dl_e["dl_e"].between(0, 1).all()
    assert list(dl_e["fit"]) == ["oof"] * 28 + ["refit"] * 12
    assert (dl_e["dl_e"][28:] == dl_e["dl_e_refit"][28:]).all() and (dl_e["dl_e"][:28] != dl_e["dl_e_refit"][:28]).any()
    assert np.allclose(dl_e["dl_e_logit"], np.log(dl_e["dl_e"] / (1 - dl_e["dl_e"])))
    # DL_E's score: each net's log-odds standardised over the patients that net trained on.
    fold1_rows = dl_e.index[dl_e["patient_id"].isin(held["held_out_patients"])]
    for net, rows in (("refit", dl_e.index[28:]), ("fold1", fold1_rows)):
        scale = read_json(a / net / "training.json")["dl_e_scale"]
        expected = (dl_e.loc[rows, "dl_e_logit"] - scale["logit_mean"]) / scale["logit_sd"]
        assert np.allclose(dl_e.loc[rows, "dl_e_score"], expected, atol=1e-9)
    trained_on = np.log(dl_e["dl_e_refit"][:28] / (1 - dl_e["dl_e_refit"][:28]))
    scale = refit["dl_e_scale"]
    assert np.isclose(trained_on.mean(), scale["logit_mean"], atol=1e-4)
    assert np.isclose(trained_on.std(ddof=0), scale["logit_sd"], rtol=1e-4)
    assert dl_f.shape == (40, 2 + 16) and list(dl_f.columns[:3]) == ["patient_id", "cohort", "dlf_000"]
    fold_features = pd.read_csv(a / "fold_features.tsv", sep="\t")
    assert len(fold_features) == 2 * 28 and list(fold_features.columns[:3]) == ["fold", "patient_id", "dlf_000"]
    signature = pd.read_csv(a / "dl_f_signature.tsv", sep="\t")
    assert list(signature["fit"]) == ["oof"] * 28 + ["refit"] * 12
    assert signature["dl_f_score"].notna().all()
    assert (signature["dl_f_score"][28:] == signature["dl_f_score_refit"][28:]).all()
    gc = np.load(a / "gc.npz")
    assert list(gc["patient_id"]) == ids[28:] and gc["gradcam"].shape == (12, 48, 48)
    loss = pd.read_csv(a / "refit/loss.tsv", sep="\t")
    assert list(loss.columns[:2]) == ["epoch", "train_loss"] and "val_loss" in loss
    assert (a / "s3.png").stat().st_size > 10_000 and (a / "s5.png").stat().st_size > 10_000

    # The workflow's way: each net scored its training (and held-out) patients when trained
    # (scores.tsv); dl-train-features assembles the training patients' tables from them, the
    # same as scoring them again; dl_predict takes those rows and scores only the others.
    split = ["--split", str(tmp_path / "split.tsv"), "--clinical", str(tmp_path / "clinical.tsv")]
    assert cli.main(["dl-predict", "--inputs", *paths[:28], *split, "--model", str(a / "refit/model.pt"),
                     "--fold-models", str(a / "fold0/model.pt"), str(a / "fold1/model.pt"),
                     "--out-dl-e", str(a / "rescored_dl_e.tsv"), "--out-dl-f", str(a / "rescored_dl_f.tsv"),
                     "--out-fold-features", str(a / "rescored_fold_features.tsv")]) == 0
    assert cli.main(["dl-train-features", "--refit", str(a / "refit"), "--fold-nets", str(a / "fold0"),
                     str(a / "fold1"), "--out-dl-e", str(a / "train_dl_e.tsv"), "--out-dl-f",
                     str(a / "train_dl_f.tsv"), "--out-fold-features", str(a / "train_fold_features.tsv")]) == 0
    for name in ("dl_e", "dl_f", "fold_features"):
        assembled = pd.read_csv(a / f"train_{name}.tsv", sep="\t")
        pd.testing.assert_frame_equal(assembled, pd.read_csv(a / f"rescored_{name}.tsv", sep="\t"), rtol=1e-5,
                                      atol=1e-6)
    # The refit scores its training patients in the same batches either way: the same bytes.
    assert (a / "train_dl_f.tsv").read_bytes() == (a / "rescored_dl_f.tsv").read_bytes()
    train_rows = ["--train-dl-e", str(a / "train_dl_e.tsv"), "--train-dl-f", str(a / "train_dl_f.tsv")]
    assert cli.main(["dl-predict", "--inputs", *paths, *split, "--model", str(a / "refit/model.pt"), *train_rows,
                     "--out-dl-e", str(a / "dl_e2.tsv"), "--out-dl-f", str(a / "dl_f2.tsv")]) == 0
    for name in ("dl_e", "dl_f"):
        once = pd.read_csv(a / f"{name}2.tsv", sep="\t")
        pd.testing.assert_frame_equal(once, pd.read_csv(a / f"{name}.tsv", sep="\t"), rtol=1e-5, atol=1e-6)
        train_text = (a / f"train_{name}.tsv").read_text().splitlines()
        assert (a / f"{name}2.tsv").read_text().splitlines()[:29] == train_text  # header and rows, as written
    # Both tables or neither, and every training patient in them.
    assert cli.main(["dl-predict", "--inputs", *paths, *split, "--model", str(a / "refit/model.pt"),
                     *train_rows[:2], "--out-dl-e", str(a / "x.tsv"), "--out-dl-f", str(a / "y.tsv")]) == 1
    assert "go together" in capsys.readouterr().err
    write_tsv(pd.read_csv(a / "train_dl_f.tsv", sep="\t").iloc[1:], a / "short_dl_f.tsv")
    assert cli.main(["dl-predict", "--inputs", *paths, *split, "--model", str(a / "refit/model.pt"),
                     *train_rows[:3], str(a / "short_dl_f.tsv"), "--out-dl-e", str(a / "x.tsv"),
                     "--out-dl-f", str(a / "y.tsv")]) == 1
    assert f"patient {ids[0]}: a training patient missing from" in capsys.readouterr().err
    assert not (a / "x.tsv").exists()


def test_inner_split_stratified_and_unchanged_by_the_small_fold_rule():
    from sklearn.model_selection import train_test_split

    labels = np.array([0, 1] * 15 + [0] * 10)
    fit, val = dl.inner_split(labels, 0.2, seed=3)
    idx = np.arange(len(labels))
    expected = train_test_split(idx, test_size=0.2, random_state=3, stratify=labels)[1]
    assert list(val) == sorted(expected) and len(val) == 8 and len(fit) == 32
    # 6 patients, 2 with DM: a fifth is one patient, too few to hold both classes.
    fit, val = dl.inner_split(np.array([0, 1, 0, 0, 1, 0]), 0.2, seed=3)
    assert len(val) == 2 and sorted(np.array([0, 1, 0, 0, 1, 0])[val]) == [0, 1] and len(fit) == 4


def test_loss_figure_plots_numbers_read_back_as_text():
    # dl-predict draws Figure S3 from loss.tsv, read back as text: the axes must be numeric.
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e} for e in range(1, 6)]
    as_text = [{k: str(v) for k, v in h.items()} for h in history]
    for h in (history, as_text):
        ax = dl_figures.loss_figure(h, best_epoch=3).axes[0]
        assert np.allclose(ax.lines[0].get_ydata(), [1.0 / e for e in range(1, 6)])
        assert np.allclose(ax.lines[1].get_xdata(), range(1, 6))
        assert ax.get_ylim()[1] < 1.5  # a numeric axis, not one category per value
