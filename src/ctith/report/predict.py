"""Scoring one patient with the study's frozen models, from a model bundle.

A model bundle (``results/model_bundle/``) holds every fitted file a new patient needs:
ComBat's estimates, the Rad-score signature, the ITH random forests, the refitted network
and its DL_F LASSO, and the survival models (coefficients, baseline, cut-off). Beside
them: the per-patient stages' settings (so a scan is processed as the study's were), the
pyradiomics parameter file, package versions, and a manifest of sha256 checksums
(``ctith.report.bundle``). :class:`FrozenModels` verifies the manifest before it opens any file,
so no pickle is loaded from a bundle that was changed.

:func:`score_patient` takes one patient's per-patient outputs (the layout of
``results/patients/{patient}/``) and clinical row, and returns what ``prediction.json``
holds: ITH score per K, every ITH model's probability, the Rad-score, DL_E and DL_F, each
survival model's risk, S(t) at its horizons and risk group by the training cut-off, any
warning, and the sha256 of every artefact used. Nothing here fits anything.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import bundle as bundle_io
from ..errors import CtithError

# Survival covariate source -> the signature value it takes.
SIGNATURE_KEYS = {"ith": "ith_signature", "radscore": "rad_score", "dl_e": "dl_e_score", "dl_f": "dl_f_score"}
OUTCOME_COLUMNS = ("dm_event", "dm_time_months")


class PredictError(CtithError):
    pass


class FrozenModels:
    """A verified model bundle: the manifest is checked before any file in it is read."""

    def __init__(self, root, expected_sha256: str | None = None):
        self.root = Path(root)
        self.manifest, self.manifest_sha256 = bundle_io.verified(self.root, expected_sha256)
        self.info = self.manifest["info"]

    def path(self, rel: str) -> Path:
        if rel not in self.manifest["files"]:
            raise PredictError(f"bundle '{self.root}' has no '{rel}'")
        return self.root / rel

    def json(self, rel: str):
        return json.loads(self.path(rel).read_text())

    def table(self, rel: str) -> pd.DataFrame:
        from ..io import read_table

        return read_table(self.path(rel))

    def checksums(self) -> dict:
        return {rel: entry["sha256"] for rel, entry in sorted(self.manifest["files"].items())}


@dataclass
class Scored:
    """One patient scored: ``prediction`` is what ``prediction.json`` holds; the rest is
    what the report draws from (the loaded network, the DL input, each survival model's
    fitted record, Cox model and covariates), so nothing is loaded or computed twice."""

    prediction: dict
    network: object = None
    dl_input: np.ndarray | None = None
    survival: dict = field(default_factory=dict)


def clinical_frame(row: dict, patient_id: str, clinical_columns: dict) -> tuple[pd.DataFrame, list[str]]:
    """The patient's clinical row (the user's column names) as a one-row frame of canonical
    names, and warnings: outcome columns of a patient to predict are ignored."""
    from ..cohort.sheets import rename_clinical

    frame, _ = rename_clinical(pd.DataFrame([{k: "" if v is None else str(v) for k, v in row.items()}]),
                               clinical_columns)
    frame.index = pd.Index([patient_id])
    notes = []
    filled = [c for c in OUTCOME_COLUMNS if c in frame and str(frame[c].iloc[0]).strip() != ""]
    if filled:
        notes.append(f"outcome column(s) {', '.join(filled)} filled for a patient to predict: ignored")
    return frame.drop(columns=[c for c in OUTCOME_COLUMNS if c in frame]), notes


def _ith(models: FrozenModels, patient_dir: Path, patient_id: str, out: dict) -> None:
    from ..io import read_json
    from ..ith.habitats import scores_table
    from ..models.ith_model import MODEL_FILE, load_model

    record = read_json(patient_dir / "ith" / "scores.json")
    ks = sorted(int(k) for k in record["k"])
    X = scores_table([record], ks).iloc[[0]]
    X.index = pd.Index([patient_id])
    out["ith_scores"] = {f"k{k}": float(X[f"ith_k{k}"].iloc[0]) for k in ks}
    out["ith_models"] = {}
    for name in models.info["ith_models"]:
        fitted = models.json(f"ith_model/{name}/fitted.json")
        missing = [c for c in fitted["features"] if c not in X or pd.isna(X[c].iloc[0])]
        if missing:
            raise PredictError(f"patient {patient_id}: ITH model {name} needs {missing[0]}, which "
                               f"'{patient_dir / 'ith' / 'scores.json'}' does not give")
        pipeline = load_model(models.path(f"ith_model/{name}/{MODEL_FILE}"))  # after the manifest check
        prob = float(pipeline.predict_proba(X[fitted["features"]].to_numpy(dtype=float))[:, 1][0])
        out["ith_models"][name] = {"probability": prob, "threshold": fitted["threshold"],
                                   "predicted": int(prob >= fitted["threshold"])}
    out["signatures"]["ith_signature"] = out["ith_models"][models.info["ith_signature_model"]]["probability"]


def _radscore(models: FrozenModels, patient_dir: Path, patient_id: str, clinical: pd.DataFrame, batch: str,
              out: dict) -> None:
    from ..radiomics.harmonize import ComBat, HarmonizeError
    from ..io import read_feature_table
    from ..radiomics.selection import SelectionError, apply_signature

    path = patient_dir / "radiomics" / "features.tsv"
    features = read_feature_table(path).rename(index=lambda _: patient_id)
    combat = ComBat.from_dict(models.json("combat_estimates.json"))
    missing = combat.features_in_.difference(features.columns)
    if len(missing):
        raise PredictError(f"patient {patient_id}: '{path}' has no feature '{missing[0]}', which ComBat was "
                           "fitted on (were the features extracted with the bundle's settings?)")
    covariates = clinical if (combat.categorical or combat.continuous) else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            harmonised = combat.transform(features[combat.features_in_], pd.Series([batch], index=[patient_id]),
                                          covariates, unseen_batch=models.info["config"]["harmonize"]["unseen_batch"])
        except HarmonizeError as exc:
            raise PredictError(f"patient {patient_id}: {exc} (config harmonize.unseen_batch: keep passes it "
                               "unharmonised)") from None
    out["warnings"] += [str(w.message) for w in caught]
    out["harmonised"] = not caught
    try:
        score = apply_signature(models.table("radiomics_signature.tsv"), harmonised)
    except SelectionError as exc:
        raise PredictError(f"patient {patient_id}: Rad-score: {exc}") from None
    out["signatures"]["rad_score"] = float(score.iloc[0])


def _dl(models: FrozenModels, patient_dir: Path, patient_id: str, out: dict) -> tuple[object, np.ndarray]:
    from ..dl import training as dl
    from ..radiomics.selection import apply_signature

    image = np.load(patient_dir / "dl" / "input.npy")[None]
    network = models.json("dl/network.json")
    net = dl.load_model(models.path("dl/model.pt"), dl.TrainParams(**network["params"]))
    prob, feats = dl.predict(net, image)
    if "dl_e_scale" not in network:
        raise PredictError(f"patient {patient_id}: the bundle's network has no dl_e_scale (made by an older "
                           "ctith); rebuild the bundle")
    names = [f"dlf_{j:03d}" for j in range(feats.shape[1])]
    dl_f = pd.DataFrame(feats, columns=names, index=[patient_id])
    out["signatures"].update({"dl_e": float(prob[0]), "dl_e_logit": float(dl.logit(prob)[0]),
                              "dl_e_score": float(dl.dl_e_score(prob, network["dl_e_scale"])[0]),
                              "dl_f_score": float(apply_signature(models.table("dl/dl_f_lasso.tsv"), dl_f).iloc[0])})
    return net, image[0]


def _survival_covariates(models: FrozenModels, fitted: dict, patient_id: str, clinical: pd.DataFrame,
                         signatures: dict) -> pd.DataFrame:
    from ..survival.clinical import ClinicalEncoder
    from ..survival.cox import SurvivalError

    parts = []
    for source in fitted["covariate_sources"]:
        if source == "clinical":
            record = fitted["clinical"]
            try:
                parts.append(ClinicalEncoder.from_dict(record["encoder"]).transform(clinical, record["chosen"]))
            except SurvivalError as exc:
                raise PredictError(f"patient {patient_id}: survival model {fitted['model']}: {exc}") from None
        else:
            parts.append(pd.DataFrame({source: [signatures[SIGNATURE_KEYS[source]]]}, index=[patient_id]))
    return pd.concat(parts, axis=1)


def _survival(models: FrozenModels, patient_id: str, clinical: pd.DataFrame, out: dict) -> dict:
    """Each survival model's prediction; returns model -> (fitted record, Cox model, covariates)."""
    from ..survival.cox import CoxModel

    out["survival"], used = {}, {}
    for name in models.info["survival_models"]:
        fitted = models.json(f"survival/{name}/model.json")
        X = _survival_covariates(models, fitted, patient_id, clinical, out["signatures"])
        cox = CoxModel.from_dict(fitted)
        risk = float(cox.predict_risk(X)[0])
        surv = cox.predict_survival(X, fitted["horizons"])[0]
        q = np.asarray(fitted["training_risk_quantiles"])
        out["survival"][name] = {
            "label": fitted["name"], "risk": risk, "risk_cutoff": fitted["risk_cutoff"],
            "risk_group": "high" if risk > fitted["risk_cutoff"] else "low",
            "training_percentile": float(np.interp(risk, q, np.linspace(0, 100, len(q)))),
            "survival": {f"{t:g}": float(s) for t, s in zip(fitted["horizons"], surv)},
            "dm_probability": {f"{t:g}": float(1 - s) for t, s in zip(fitted["horizons"], surv)}}
        used[name] = (fitted, cox, X)
    return used


def score_patient(models: FrozenModels, patient_dir, patient_id: str, clinical_row: dict,
                  batch: str | None = None) -> Scored:
    """One patient scored (``Scored.prediction``: ``prediction.json``'s content, see the
    module docstring).

    ``patient_dir``: the patient's per-patient outputs (ith/scores.json,
    radiomics/features.tsv, dl/input.npy). ``clinical_row``: the clinical table's row (the
    user's column names; the sample sheet's columns may sit beside). ``batch``: the
    patient's ComBat batch (default: the row's value of the batch column)."""
    patient_dir = Path(patient_dir)
    config = models.info["config"]
    clinical, notes = clinical_frame(clinical_row, patient_id, config["clinical_columns"])
    batch_column = config["harmonize"]["batch_column"]
    if batch is None:
        batch = clinical_row.get(batch_column)
        if batch is None or str(batch).strip() == "":
            raise PredictError(f"patient {patient_id}: no value of the ComBat batch column '{batch_column}' "
                               "(give it in the clinical row, or --batch)")
    out = {"patient_id": patient_id, "batch": {batch_column: str(batch)}, "warnings": notes, "signatures": {}}
    _ith(models, patient_dir, patient_id, out)
    _radscore(models, patient_dir, patient_id, clinical, str(batch), out)
    network, dl_input = _dl(models, patient_dir, patient_id, out)
    survival = _survival(models, patient_id, clinical, out)
    out["bundle"] = {"manifest_sha256": models.manifest_sha256, "artefacts": models.checksums()}
    return Scored(out, network, dl_input, survival)


def report_figure(models: FrozenModels, patient_dir, scored: Scored):
    """The one-page report a clinician reads: the venous slice with the tumour outline, the
    habitat maps for K = 2-5 with their ITH scores, the network's Grad-CAM, the DM risk
    against the training cohort's, and the predicted DM-free curve (A4 portrait)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..dl import training as dl
    from ..ith.figures import _show_ct, _show_map

    prediction = scored.prediction
    pid = prediction["patient_id"]
    main = models.info["config"]["survival"]["figure_model"]
    maps = np.load(Path(patient_dir) / "ith" / "label_maps.npz")
    image = scored.dl_input
    cam = dl.gradcam(scored.network, image[None])[0]

    fig = plt.figure(figsize=(8.27, 11.69))
    grid = fig.add_gridspec(4, 4, height_ratios=[1.25, 1.0, 1.15, 0.75], hspace=0.45, wspace=0.45)
    s = prediction["survival"][main]
    fig.suptitle(f"Distant-metastasis risk: patient {pid}\n{s['label']}: {s['risk_group']} risk "
                 f"(risk {s['risk']:.2f}, training cut-off {s['risk_cutoff']:.2f}; "
                 f"above {s['training_percentile']:.0f}% of training patients)", fontsize=11)
    ax = fig.add_subplot(grid[0, :2])
    _show_ct(ax, maps["image"], maps["mask"])
    ax.set_title("venous phase, largest tumour slice (outline: mask)", fontsize=8)
    ax = fig.add_subplot(grid[0, 2:])
    ax.imshow(image[1], cmap="gray", vmin=0, vmax=1)
    ax.imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    ax.set_title(f"Grad-CAM of the network (DL_E {prediction['signatures']['dl_e']:.2f})", fontsize=8)
    ax.axis("off")
    for j, k in enumerate((2, 3, 4, 5)):
        ax = fig.add_subplot(grid[1, j])
        if f"k{k}" in maps:
            _show_map(ax, maps["image"], maps[f"k{k}"], k, prediction["ith_scores"].get(f"k{k}", float("nan")))
        else:
            _show_ct(ax, maps["image"], maps["mask"])
            ax.set_title(f"K = {k}\nn/a", fontsize=8)

    fitted, cox, X = scored.survival[main]
    ax = fig.add_subplot(grid[2, :2])
    q = np.asarray(fitted["training_risk_quantiles"])
    ax.plot(q, np.linspace(0, 100, len(q)), color="0.4", label="training cohort")
    ax.axvline(fitted["risk_cutoff"], color="0.6", ls="--", lw=1, label="cut-off (training median)")
    ax.axvline(s["risk"], color="crimson", lw=2, label=f"patient {pid}")
    ax.set_xlabel(f"risk ({s['label']}, linear predictor)", fontsize=8)
    ax.set_ylabel("training patients below (%)", fontsize=8)
    ax.set_title("DM risk against the training cohort", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.tick_params(labelsize=7)

    end = max(fitted["training_follow_up_months"][1], max(fitted["horizons"]))
    times = np.linspace(0, end, 200)
    ax = fig.add_subplot(grid[2, 2:])
    ax.step(times, cox.predict_survival(X, times)[0], where="post", color="crimson")
    for t, v in s["survival"].items():
        ax.plot(float(t), v, "o", color="crimson", ms=3)
        ax.annotate(f"{v:.2f}", (float(t), v), textcoords="offset points", xytext=(0, 5), fontsize=6, ha="center")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("months after CT", fontsize=8)
    ax.set_ylabel("DM-free probability", fontsize=8)
    ax.set_title("predicted DM-free curve", fontsize=9)
    ax.tick_params(labelsize=7)

    ax = fig.add_subplot(grid[3, :])
    ax.axis("off")
    lines = [f"{v['label']}: risk {v['risk']:.2f} ({v['risk_group']}), DM-free at "
             + ", ".join(f"{t} mo {p:.2f}" for t, p in v["survival"].items()) for v in prediction["survival"].values()]
    sig = prediction["signatures"]
    lines.append(f"Signatures: ITH {sig['ith_signature']:.3f}, Rad-score {sig['rad_score']:.3f}, "
                 f"DL_E {sig['dl_e']:.3f}, DL_F {sig['dl_f_score']:.3f}")
    lines += [f"Warning: {w}" for w in prediction["warnings"]]
    lines.append(f"Frozen models: bundle manifest sha256 {prediction['bundle']['manifest_sha256'][:16]}...; "
                 "research use, not a diagnostic device.")
    ax.text(0, 1, "\n".join(lines), va="top", ha="left", fontsize=7, family="monospace", wrap=True)
    return fig
