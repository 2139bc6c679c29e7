"""Model bundles: a manifest of sha256 checksums, checked before anything is loaded."""

import json

import joblib
import pytest

from ctith.bundle import BundleError, package_versions, sha256_file, verify, write_manifest


def _bundle(root):
    (root / "ith_model").mkdir(parents=True)
    joblib.dump({"trees": [1, 2, 3]}, root / "ith_model" / "model.joblib")
    (root / "survival").mkdir()
    (root / "survival" / "model.json").write_text(json.dumps({"coef": [0.5, -1.25]}))
    return write_manifest(root, {"ctith": "test", "packages": package_versions(["numpy", "no-such-dist"])})


def test_manifest_lists_every_file_and_verifies(tmp_path):
    digest = _bundle(tmp_path)
    manifest = verify(tmp_path, expected_sha256=digest)
    assert sorted(manifest["files"]) == ["ith_model/model.joblib", "survival/model.json"]
    entry = manifest["files"]["ith_model/model.joblib"]
    assert entry["sha256"] == sha256_file(tmp_path / "ith_model" / "model.joblib") and entry["bytes"] > 0
    assert manifest["packages"]["numpy"] and manifest["packages"]["no-such-dist"] is None


def test_one_changed_byte_is_refused_naming_the_file(tmp_path):
    _bundle(tmp_path)
    model = tmp_path / "ith_model" / "model.joblib"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, one bit
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="'ith_model/model.joblib' does not match its manifest checksum"):
        verify(tmp_path)


@pytest.mark.parametrize("breakage, message", [
    (lambda r: (r / "survival" / "model.json").unlink(), "'survival/model.json' is listed in the manifest but missing"),
    (lambda r: (r / "extra.joblib").write_bytes(b"x"), "'extra.joblib' is not in the manifest"),
    (lambda r: (r / "link.json").symlink_to(r / "survival" / "model.json"), "'link.json' is a link"),
    (lambda r: (r / "manifest.json").write_text("{not json"), "manifest.json is not a bundle manifest"),
    (lambda r: (r / "manifest.json").unlink(), "is not a model bundle: no manifest.json"),
])
def test_a_broken_bundle_is_one_clear_error(tmp_path, breakage, message):
    _bundle(tmp_path)
    breakage(tmp_path)
    with pytest.raises(BundleError, match=message):
        verify(tmp_path)


def test_a_rewritten_manifest_fails_the_pinned_digest(tmp_path):
    digest = _bundle(tmp_path)
    (tmp_path / "survival" / "model.json").write_text(json.dumps({"coef": [9.0, 9.0]}))
    write_manifest(tmp_path, {"ctith": "test"})  # someone re-signs the edit
    verify(tmp_path)  # consistent in itself...
    with pytest.raises(BundleError, match="manifest.json is not the one expected"):
        verify(tmp_path, expected_sha256=digest)  # ...but not the bundle that was pinned
