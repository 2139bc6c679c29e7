"""`ctith template`: the columns every configured stage needs, with their meanings from the
schemas; docs/cohort_columns.md is its output and cannot drift. (The end-to-end run of the
tests, conftest's local_run, runs on sheets rewritten through the template.)"""

import pandas as pd
import pytest
import yaml

from ctith import cli
from ctith.errors import CtithError
from ctith.cohort.template import clinical_columns, column_docs, write_template
from conftest import REPO
from workflow_run import fill_template

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


def test_docs_page_is_the_templates_guide():
    assert (REPO / "docs/cohort_columns.md").read_text() == column_docs(CONFIG), \
        "regenerate: python -c \"import yaml; from ctith.cohort.template import column_docs; " \
        "open('docs/cohort_columns.md','w').write(column_docs(yaml.safe_load(open('config.yaml'))))\""


def test_template_lists_what_the_stages_need_and_each_code(tmp_path):
    files = write_template(tmp_path / "t", CONFIG)
    assert [p.name for p in files] == ["samples.tsv", "clinical.tsv", "my_cohort.yaml", "README.md"]
    columns = (tmp_path / "t/clinical.tsv").read_text().rstrip("\n").split("\t")
    assert columns[:3] == ["patient_id", "dm_event", "dm_time_months"]
    for needed in ["necrosis", "enhancement_pattern", "enhancement_degree", "calcification",
                   "adjacent_organ_involvement", "resection_margin", "plain_ct_done", "tumor_shape_r2"]:
        assert needed in columns
    guide = (tmp_path / "t/README.md").read_text()
    assert "| `tumor_shape` | Table S3 row 'Tumor shape' (reader1) | 0 / 1 | semantic feature: 0 round or oval, " \
           "1 lobulated or irregular |" in guide
    assert "reader 2's rating of `enhancement_degree`, same codes (Table S3)" in guide
    overlay = yaml.safe_load((tmp_path / "t/my_cohort.yaml").read_text())
    assert overlay["demo"] == {"generate": False} and overlay["samples"] == str(tmp_path / "t/samples.tsv")
    with pytest.raises(CtithError, match="exists; choose an empty folder"):
        write_template(tmp_path / "t", CONFIG)


def test_columns_follow_the_config():
    config = {**CONFIG, "survival": {**CONFIG["survival"], "models": {"ith": {"label": "ITH", "covariates": ["ith"]}}},
              "reproducibility": {**CONFIG["reproducibility"], "table_s3": []}}
    assert "necrosis" not in clinical_columns(config) and "necrosis" in clinical_columns(CONFIG)


def test_a_filled_template_validates(tiny_cohort, tmp_path, capsys):
    fill_template(tiny_cohort, tmp_path / "t")
    clinical = pd.read_csv(tiny_cohort / "clinical.tsv", sep="\t")
    assert list(clinical.columns) == clinical_columns(CONFIG)
    overlay = yaml.safe_load((tmp_path / "t/my_cohort.yaml").read_text())
    overlay.update(samples=str(tiny_cohort / "samples.tsv"), clinical=str(tiny_cohort / "clinical.tsv"),
                   crossfit={"folds": 2})
    (tmp_path / "t/my_cohort.yaml").write_text(yaml.safe_dump(overlay))
    assert cli.main(["validate", "--config", str(tmp_path / "t/my_cohort.yaml"),
                     "--defaults", str(REPO / "config.yaml")]) == 0
    assert "\nOK: " in capsys.readouterr().out  # after the template's own file list
