"""Model bundles: fitted files and a manifest of their sha256 checksums, checked before use.

A bundle is a folder. ``manifest.json`` lists every file in it (relative POSIX paths) with
its size and sha256, and whatever else describes the fit (config, package versions).
:func:`verify` reads the manifest and checks every file against it before anything in
the bundle is opened, so a changed, missing or added file stops the caller with a message
naming it. Nothing in a bundle is a pickle: the forests are skops files that load only
trusted types (``ctith.models.ith_model.load_model``), the network a state dict (``weights_only``).
A manifest guards against corruption and edits, not against someone who rewrites the
manifest too: the sha256 of the manifest itself, printed when the bundle is written, pins
a whole bundle (``expected_sha256``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from ..errors import CtithError
from ..io import write_json

MANIFEST = "manifest.json"
FORMAT = 1


class BundleError(CtithError):
    pass


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_manifest(root, info: dict | None = None) -> str:
    """List every file under ``root`` (but the manifest) in ``root/manifest.json``, with
    ``info`` beside; returns the manifest's own sha256."""
    root = Path(root)
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        if path == root / MANIFEST:
            continue  # rewritten below
        if path.is_symlink():
            raise BundleError(f"bundle '{root}': '{path.relative_to(root)}' is a link; a bundle holds files only")
        files[path.relative_to(root).as_posix()] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    write_json({"format": FORMAT, **(info or {}), "files": files}, root / MANIFEST)
    return sha256_file(root / MANIFEST)


def verify(root, expected_sha256: str | None = None) -> dict:
    """The manifest of the bundle at ``root``, once every file matches it; else a
    :class:`BundleError` naming the first file that does not (nothing else is read)."""
    return verified(root, expected_sha256)[0]


def verified(root, expected_sha256: str | None = None) -> tuple[dict, str]:
    """:func:`verify`, and the manifest's own sha256 (read once: what was checked is what is
    returned)."""
    root = Path(root)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"'{root}' is not a model bundle: no {MANIFEST}")
    raw = manifest_path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise BundleError(f"bundle '{root}': {MANIFEST} is not the one expected (sha256 {digest}, "
                          f"expected {expected_sha256})")
    try:
        manifest = json.loads(raw)
        files = manifest["files"]
    except (ValueError, KeyError, TypeError):
        raise BundleError(f"bundle '{root}': {MANIFEST} is not a bundle manifest") from None
    if manifest.get("format") != FORMAT:
        raise BundleError(f"bundle '{root}': manifest format {manifest.get('format')!r}; this ctith reads {FORMAT}")
    present = set()
    for path in root.rglob("*"):
        if path.is_file() or path.is_symlink():
            rel = path.relative_to(root).as_posix()
            if rel == MANIFEST:
                continue
            if path.is_symlink():
                raise BundleError(f"bundle '{root}': '{rel}' is a link; a bundle holds files only")
            present.add(rel)
    for rel, entry in sorted(files.items()):
        path = root / rel
        if rel not in present:
            raise BundleError(f"bundle '{root}': '{rel}' is listed in the manifest but missing")
        if path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            raise BundleError(f"bundle '{root}': '{rel}' does not match its manifest checksum (changed "
                              "after the bundle was written); refusing to load it")
    extra = sorted(present - set(files))
    if extra:
        raise BundleError(f"bundle '{root}': '{extra[0]}' is not in the manifest; refusing a bundle with "
                          "files its manifest does not list")
    return manifest, digest


def write_bundle(out_dir, files: dict, info: dict, records: dict | None = None) -> str:
    """Copy ``files`` (bundle-relative path -> source path) and write ``records``
    (bundle-relative path -> JSON-safe object) into a fresh ``out_dir``, write the manifest
    with ``info`` (config, stages, package versions) and return its sha256. The folder is
    built beside and renamed into place: a reader never sees half a bundle."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    for rel, src in sorted(files.items()):
        dst = tmp / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    for rel, obj in sorted((records or {}).items()):
        write_json(obj, tmp / rel)
    digest = write_manifest(tmp, {"info": info})
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return digest


def network_record(training: dict) -> dict:
    """What scoring needs of a network's ``training.json``: its architecture and how it was
    trained, without the training patients' IDs or the time it took (a bundle leaves the
    study's data behind, and two runs of one seed give the same bundle)."""
    keep = ("params", "torch", "device", "precision", "best_epoch", "epochs_run", "n_fit", "dl_e_scale")
    return {k: training[k] for k in keep if k in training}


def package_versions(names) -> dict:
    """Installed versions of these distributions (None where one is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out
