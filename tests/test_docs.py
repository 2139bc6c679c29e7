"""The README is a front door and docs/ holds the rest: every relative link and anchor
resolves, every repository path the pages name exists, every page is reachable from the
README, and the README stays short."""

from __future__ import annotations

import re

import pytest

from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# Inline code naming a file or folder of the repository (outputs under results/ are not).
REPO_PATH = re.compile(r"`((?:src|tests|workflow|docs|envs|profiles|\.ci)/[\w./-]+|config\.yaml|pyproject\.toml)`")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", FENCE.sub("", page.read_text()), re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_and_anchor_resolves(page):
    text = FENCE.sub("", page.read_text())
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif anchor and anchor not in _anchors(dest):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.name}: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_repository_path_named_exists(page):
    text = page.read_text()
    missing = []
    for path in REPO_PATH.findall(text):
        if any(c in path for c in "{}*<>"):
            continue  # a pattern
        if not (REPO / path.rstrip("/")).exists():
            missing.append(path)
    assert not missing, f"{page.name} names {missing}"


def test_readme_is_a_front_door_to_every_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    linked = {target.partition("#")[0] for target in LINK.findall(readme)}
    orphans = [p.name for p in PAGES[1:] if f"docs/{p.name}" not in linked]
    assert not orphans, f"docs pages the README does not link: {orphans}"


def test_the_link_check_can_fail(tmp_path):
    """A broken link, anchor and path are each caught (the checks above are not vacuous)."""
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[a](missing.md) [b](#no-such) [c](#title) `tests/no_such_file.py`\n")
    text = page.read_text()
    targets = LINK.findall(text)
    assert targets == ["missing.md", "#no-such", "#title"]
    assert "title" in _anchors(page) and "no-such" not in _anchors(page)
    assert REPO_PATH.findall(text) == ["tests/no_such_file.py"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_ctith_name_the_pages_give_imports(page):
    """`ctith.module` or `ctith.module.Name` in a page resolves (code moves rename them)."""
    import importlib

    missing = []
    for dotted in re.findall(r"`(ctith(?:\.\w+)+)`", page.read_text()):
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
                break
            except ModuleNotFoundError:
                continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
        if obj is None:
            missing.append(dotted)
    assert not missing, f"{page.name} names {missing}"


REPORT_INSIDE = re.compile(r"--report\s+(\S+)(?=.*--directory\s+(\S+))")


def report_paths_outside_directory(text: str) -> list[str]:
    """`snakemake --report P ... --directory D` lines whose P starts with D: Snakemake reads P
    inside D, so D/D/... does not exist and the report fails (FileNotFoundError)."""
    bad = []
    for line in text.splitlines():
        m = REPORT_INSIDE.search(line)
        if m and m.group(1).startswith(m.group(2).rstrip("/") + "/"):
            bad.append(line.strip())
    return bad


def test_report_commands_name_the_report_inside_their_directory():
    from ctith.cohort.template import OVERLAY

    assert report_paths_outside_directory("snakemake --report run/report.html --directory run")  # it can fail
    for text in [*(page.read_text() for page in PAGES), OVERLAY]:
        assert not report_paths_outside_directory(text)
