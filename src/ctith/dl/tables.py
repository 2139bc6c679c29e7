"""The DL tables: each net's own scores, and the training patients' DL_E and DL_F assembled
from them.

A net scores its training patients when it is trained (their DL_E sets its scale) and, a fold
net, the patients it held out. ``scores.tsv`` keeps those numbers, so that no patient is
scored twice by one net: the training patients' tables come from the nets' files, and
``dl_predict`` scores only the patients who are not training. Numpy and pandas only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CtithError
from ..io import read_json, read_table
from .scale import dl_e_score, logit


def dl_e_scale(info: dict, model_path) -> dict:
    """A net's DL_E scale from its training.json (a clear error for a net from an older ctith)."""
    if "dl_e_scale" not in info:
        raise CtithError(f"network '{model_path}': its training.json has no dl_e_scale (trained by an older "
                         "ctith); retrain it")
    return info["dl_e_scale"]


def net_scores(ids, roles, prob, feats) -> pd.DataFrame:
    """A net's scores.tsv: each patient's role (train, held_out), DL_E and DL_F, as predicted."""
    table = pd.DataFrame(feats, columns=[f"dlf_{j:03d}" for j in range(feats.shape[1])])
    table.insert(0, "dl_e", prob)
    table.insert(0, "role", roles)
    table.insert(0, "patient_id", ids)
    return table


def read_net_scores(net_dir) -> tuple[dict, pd.DataFrame]:
    """A net's training.json and scores.tsv (DL_E and DL_F read back as the float32 they were)."""
    table = read_table(Path(net_dir) / "scores.tsv").set_index("patient_id")
    values = [c for c in table.columns if c != "role"]
    table[values] = table[values].astype(np.float32)
    return read_json(Path(net_dir) / "training.json"), table


def train_tables(refit_dir, fold_dirs) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The training patients' DL_E (each fold net's of the patients it held out: out of fold;
    the refit's beside), their DL_F from the refit, and each fold net's DL_F of its training
    and held-out patients (the DL_F signature's cross-fitting): the tables ``dl-predict
    --fold-models`` writes, without scoring anyone again."""
    refit_info, refit = read_net_scores(refit_dir)
    ids = refit_info["train_patients"]
    names = [c for c in refit.columns if c.startswith("dlf_")]
    prob = refit.loc[ids, "dl_e"].to_numpy()
    dl_e = pd.DataFrame({"patient_id": ids, "cohort": "train", "dl_e": prob, "fit": "refit", "dl_e_refit": prob})
    score = dl_e_score(prob, dl_e_scale(refit_info, refit_dir))
    row = {pid: i for i, pid in enumerate(ids)}
    fold_rows = []
    for net_dir in fold_dirs:
        info, net = read_net_scores(net_dir)
        held = [row[pid] for pid in info["held_out_patients"]]
        p_held = net.loc[info["held_out_patients"], "dl_e"].to_numpy()
        dl_e.loc[held, "dl_e"] = p_held
        dl_e.loc[held, "fit"] = "oof"
        score[held] = dl_e_score(p_held, dl_e_scale(info, net_dir))
        order = info["train_patients"] + info["held_out_patients"]
        fold_rows.append(net.loc[order, names].reset_index().assign(fold=info["fold"])[["fold", "patient_id", *names]])
    unseen = dl_e.loc[dl_e["fit"] != "oof", "patient_id"].tolist()
    if unseen:
        raise CtithError(f"patient {unseen[0]}: a training patient that no fold net held out; were the "
                         "fold nets trained with other cross-fitting folds?")
    dl_e.insert(3, "dl_e_logit", logit(dl_e["dl_e"].to_numpy(float)))
    dl_e.insert(4, "dl_e_score", score)
    dlf = refit.loc[ids, names].reset_index()
    dlf.insert(1, "cohort", "train")
    return dl_e, dlf, pd.concat(fold_rows, ignore_index=True)


def read_known(paths, ids, cohorts: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training patients' DL_E and DL_F tables as written (``train_tables``), indexed by
    patient: every training patient of ``ids`` in each, and nobody outside ``ids``."""
    tables = tuple(read_table(path).set_index("patient_id") for path in paths)
    for path, table in zip(paths, tables):
        missing = [pid for pid in ids if cohorts.get(pid) == "train" and pid not in table.index]
        if missing:
            raise CtithError(f"patient {missing[0]}: a training patient missing from '{path}'")
        unknown = [pid for pid in table.index if pid not in ids]
        if unknown:
            raise CtithError(f"patient {unknown[0]}: in '{path}' but not among --inputs")
    return tables


def with_known(scored: pd.DataFrame, known: pd.DataFrame, ids) -> pd.DataFrame:
    """``scored`` rows and ``known`` rows (taken as written) together, in the order of ``ids``."""
    both = pd.concat([scored, known.reset_index()[scored.columns]], ignore_index=True)
    return both.set_index("patient_id").loc[list(ids)].reset_index()
