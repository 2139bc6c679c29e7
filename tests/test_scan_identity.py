"""One scan filed under two patients: caught from the sheet's paths and from pixel digests."""

import json

import pandas as pd
import pytest
import SimpleITK as sitk

from ctith import cli
from ctith.cohort import ingest
from ctith.errors import SheetError
from ctith.io import write_tsv


def test_copied_real_ct_under_another_path_and_format_is_caught(real_ct, tmp_path, capsys):
    """The real CT filed as P1, and a copy re-exported as NRRD under another folder filed as
    P2: their pixel digests match. In different cohorts the QC step refuses to go on and
    names both patients and both files; in one cohort it warns."""
    copy = tmp_path / "elsewhere" / "export.nrrd"
    copy.parent.mkdir()
    sitk.WriteImage(sitk.ReadImage(str(real_ct.image)), str(copy))
    other = ingest.ingest(real_ct.image, real_ct.masks["liver"], "P3").qc  # another mask: the digest is the CT's
    qc = [ingest.ingest(real_ct.image, real_ct.masks["spleen"], "P1").qc,
          ingest.ingest(copy, real_ct.masks["kidney_left"], "P2").qc]
    assert qc[0]["pixel_sha256"] == qc[1]["pixel_sha256"] == other["pixel_sha256"]
    shifted = sitk.ReadImage(str(real_ct.image)) + 1  # one HU everywhere: another scan
    sitk.WriteImage(shifted, str(tmp_path / "shifted.nii.gz"))
    qc.append(ingest.ingest(tmp_path / "shifted.nii.gz", real_ct.masks["spleen"], "P4").qc)
    assert qc[2]["pixel_sha256"] != qc[0]["pixel_sha256"]

    paths = []
    for q in qc:
        paths.append(tmp_path / q["patient_id"] / "qc.json")
        paths[-1].parent.mkdir()
        paths[-1].write_text(json.dumps(q))
    split = tmp_path / "split.tsv"
    write_tsv(pd.DataFrame({"patient_id": ["P1", "P2", "P4"], "institution": "A",
                            "cohort": ["train", "external_validation", "train"]}), split)
    args = ["qc-table", "--qc", *map(str, paths), "--split", str(split), "--out", str(tmp_path / "qc.tsv")]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "patients P1 (train) and P2 (external_validation) have the same CT pixels" in err
    assert str(real_ct.image) in err and str(copy) in err and "P4" not in err
    assert not (tmp_path / "qc.tsv").exists()

    write_tsv(pd.DataFrame({"patient_id": ["P1", "P2", "P4"], "institution": "A", "cohort": "train"}), split)
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "warning: patients P1 (train) and P2 (train) have the same CT pixels" in err


def test_repeated_path_in_the_sample_sheet_names_both_patients(tiny_cohort_dir):
    from ctith.cohort import sheets
    from ctith.io import read_table
    from test_sheets import CONFIG

    samples, clinical = read_table(tiny_cohort_dir / "samples.tsv"), read_table(tiny_cohort_dir / "clinical.tsv")
    a, b = samples["patient_id"].iloc[0], samples["patient_id"].iloc[1]
    samples.loc[1, ["image", "image_series_uid"]] = samples.loc[0, ["image", "image_series_uid"]].to_numpy()
    with pytest.raises(SheetError) as info:
        sheets.validate_inputs(samples, clinical, CONFIG, str(tiny_cohort_dir / "samples.tsv"),
                               str(tiny_cohort_dir / "clinical.tsv"))
    assert f"patients {a} and {b}: one scan filed under two patients" in str(info.value)
