"""Atomic file writes: a finished output is never replaced by a partial one."""

from __future__ import annotations

import glob
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

if TYPE_CHECKING:  # imported where used: per-patient commands writing JSON skip pandas' 0.6 s
    import pandas as pd


# mkstemp creates files readable by their owner only; an output takes the mode a plain
# open() would give it (0666 less the umask), so a shared site's group can read results.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the real suffix (e.g. ".nii.gz") so writers that choose a format by
    # extension still see it.
    suffix = suffix if suffix is not None else "".join(path.suffixes)
    # A job killed while writing (SIGKILL, a node lost) leaves its temporary file behind;
    # the rerun of that job clears it. One job at a time writes a given output.
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp{glob.escape(suffix)}"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _jsonable(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(obj, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text())


def write_tsv(df: pd.DataFrame, path: str | os.PathLike, index: bool = False) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=index, lineterminator="\n")


def write_tsv_if_changed(df: pd.DataFrame, path: str | os.PathLike) -> bool:
    """Write ``df`` as TSV only when the file's bytes would change (its modification time
    then still says when its content last did). True when written."""
    text = df.to_csv(sep="\t", index=False, lineterminator="\n")
    path = Path(path)
    if path.is_file() and path.read_text() == text:
        return False
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return True


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a TSV or CSV sheet with every column as text (types are checked later)."""
    import pandas as pd

    path = Path(path)
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[])


def read_feature_table(path: str | os.PathLike) -> pd.DataFrame:
    """A feature table (patient_id, then one column per feature) as floats."""
    import pandas as pd

    df = pd.read_csv(path, sep="\t", dtype={"patient_id": str}).set_index("patient_id")
    return df.astype(float)


def read_feature_tables(paths) -> list[pd.DataFrame]:
    """Many feature tables (each as :func:`read_feature_table` reads it), parsed together: for a
    one-row file pandas builds a Series per column, which with 1,130 features took 0.2 s a
    file. Files with the same header are parsed as one text, by the same parser, so every
    value is the float a file of its own would give."""
    import io

    import pandas as pd

    texts = [Path(p).read_text() for p in paths]
    tables, start = [], 0
    while start < len(texts):
        header = texts[start].split("\n", 1)[0]
        end = start + 1
        while end < len(texts) and texts[end].split("\n", 1)[0] == header:
            end += 1
        bodies = [t.split("\n", 1)[1] if "\n" in t else "" for t in texts[start:end]]
        counts = [sum(1 for line in b.split("\n") if line) for b in bodies]
        text = header + "\n" + "".join(b if b.endswith("\n") or not b else b + "\n" for b in bodies)
        group = pd.read_csv(io.StringIO(text), sep="\t", dtype={"patient_id": str}).set_index("patient_id")
        group = group.astype(float)
        offsets = np.cumsum([0, *counts])
        tables += [group.iloc[offsets[i]:offsets[i + 1]] for i in range(len(bodies))]
        start = end
    return tables


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency needed)."""
    import pandas as pd

    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_markdown(df: pd.DataFrame, path: str | os.PathLike, after: str = "") -> None:
    """The table as Markdown, then ``after`` (more Markdown), written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(markdown_table(df) + after)
