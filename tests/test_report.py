"""Thumbnails for the Snakemake report (ctith.report.thumbnails)."""

import numpy as np
import pytest
from PIL import Image

from ctith.cli import main
from ctith.errors import CtithError
from ctith.report.thumbnails import thumbnail


def _figure(path, width=1320, height=648):
    rng = np.random.default_rng(0)
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, : width // 2] = (31, 119, 180)
    rgb[:, width // 2:] = rng.integers(0, 255, (height, width - width // 2, 3))
    Image.fromarray(rgb).save(path)


def test_thumbnail_width_aspect_palette_and_colours(tmp_path):
    src, dst = tmp_path / "habitats.png", tmp_path / "out" / "P001.png"
    _figure(src)
    assert thumbnail(src, dst, 480) == (480, 236)  # 648 * 480 / 1320 = 235.6
    with Image.open(dst) as im:
        assert im.mode == "P" and im.size == (480, 236)
        left = np.asarray(im.convert("RGB"))[:, :200]
    assert np.abs(left.astype(int) - (31, 119, 180)).max() <= 2  # flat colours survive the palette
    assert dst.stat().st_size < src.stat().st_size / 3
    # Never enlarged; no temporary file left beside the output.
    assert thumbnail(src, tmp_path / "big.png", 5000) == (1320, 648)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["P001.png"]


def test_unreadable_figure_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "B007" / "habitats.png"
    bad.parent.mkdir()
    bad.write_bytes(b"not a png")
    with pytest.raises(CtithError, match="B007/habitats.png' cannot be read as an image"):
        thumbnail(bad, tmp_path / "t.png")
    assert main(["thumbnails", "--images", str(bad), "--names", "B007", "--out-dir", str(tmp_path / "th")]) == 1
    assert "cannot be read as an image" in capsys.readouterr().err
    assert main(["thumbnails", "--images", str(bad), "--names", "B007", "B008", "--out-dir", str(tmp_path)]) == 1


def test_every_report_caption_is_clean_rst_and_says_what_to_look_at():
    """Snakemake renders captions as reStructuredText: a stray |x| or *x is an error in the
    report. Each caption also tells the reader what to look at."""
    import io

    import docutils.core

    from conftest import REPO

    captions = sorted((REPO / "workflow" / "report").glob("*.rst"))
    assert len(captions) >= 25
    for path in captions:
        text = path.read_text().replace("{{ snakemake.wildcards.patient }}", "A001")
        errors = io.StringIO()
        docutils.core.publish_parts(text, writer_name="html",
                                    settings_overrides={"warning_stream": errors, "report_level": 2})
        assert not errors.getvalue(), f"{path.name}: {errors.getvalue()}"
        assert "look" in text.lower(), f"{path.name} does not say what to look at"


def test_figures_are_written_reproducibly(tmp_path, monkeypatch):
    """A figure saved twice, a second apart, is the same bytes: no time in PNG or PDF
    metadata (matplotlib stamps a PDF's CreationDate unless told not to)."""
    import time

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ctith.cli._common import save_figure

    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)

    def draw():
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [1, 0])
        return fig

    for name, extra in (("f.png", {}), ("f.pdf", {"format": "pdf"})):
        save_figure(draw(), tmp_path / "a" / name, **extra)
        time.sleep(1.1)
        save_figure(draw(), tmp_path / "b" / name, **extra)
        first = (tmp_path / "a" / name).read_bytes()
        assert first == (tmp_path / "b" / name).read_bytes(), name
        assert b"tIME" not in first and b"CreationDate" not in first
