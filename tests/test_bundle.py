"""Model bundles: a manifest of sha256 checksums, checked before anything is loaded."""

import json

import pytest

from ctith.report.bundle import BundleError, package_versions, sha256_file, verify, write_manifest


def _bundle(root):
    (root / "ith_model").mkdir(parents=True)
    (root / "ith_model" / "model.skops").write_bytes(bytes(range(256)) * 8)
    (root / "survival").mkdir()
    (root / "survival" / "model.json").write_text(json.dumps({"coef": [0.5, -1.25]}))
    return write_manifest(root, {"ctith": "test", "packages": package_versions(["numpy", "no-such-dist"])})


def test_manifest_lists_every_file_and_verifies(tmp_path):
    digest = _bundle(tmp_path)
    manifest = verify(tmp_path, expected_sha256=digest)
    assert sorted(manifest["files"]) == ["ith_model/model.skops", "survival/model.json"]
    entry = manifest["files"]["ith_model/model.skops"]
    assert entry["sha256"] == sha256_file(tmp_path / "ith_model" / "model.skops") and entry["bytes"] > 0
    assert manifest["packages"]["numpy"] and manifest["packages"]["no-such-dist"] is None


def test_one_changed_byte_is_refused_naming_the_file(tmp_path):
    _bundle(tmp_path)
    model = tmp_path / "ith_model" / "model.skops"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, one bit
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="'ith_model/model.skops' does not match its manifest checksum"):
        verify(tmp_path)


@pytest.mark.parametrize("breakage, message", [
    (lambda r: (r / "survival" / "model.json").unlink(), "'survival/model.json' is listed in the manifest but missing"),
    (lambda r: (r / "extra.skops").write_bytes(b"x"), "'extra.skops' is not in the manifest"),
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


def test_write_bundle_copies_and_replaces_whole(tmp_path):
    """A bundle is built beside its folder and renamed into place: an older bundle's files
    never linger in a new one."""
    from ctith.report.bundle import write_bundle
    from ctith.report.predict import FrozenModels

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.json").write_text('{"x": 1}')
    (tmp_path / "src" / "b.tsv").write_text("feature\tcoefficient\n")
    out = tmp_path / "bundle"
    write_bundle(out, {"a.json": tmp_path / "src" / "a.json", "old/b.tsv": tmp_path / "src" / "b.tsv"}, {"k": 1})
    digest = write_bundle(out, {"a.json": tmp_path / "src" / "a.json"}, {"k": 2})
    models = FrozenModels(out, digest)
    assert models.info == {"k": 2} and list(models.checksums()) == ["a.json"] and models.manifest_sha256 == digest
    assert not (out / "old").exists() and not list(tmp_path.glob(".bundle*"))
    assert models.json("a.json") == {"x": 1}
    with pytest.raises(Exception, match="has no 'old/b.tsv'"):
        models.path("old/b.tsv")


def test_predict_refuses_what_is_not_a_bundle_before_reading_anything(tmp_path, capsys):
    from ctith import cli

    (tmp_path / "scan.nii.gz").write_bytes(b"not read")
    args = ["predict", "--bundle", str(tmp_path), "--patient-id", "P1", "--image", str(tmp_path / "scan.nii.gz"),
            "--mask", str(tmp_path / "scan.nii.gz"), "--clinical-row", '{"age": "60"}', "--out-dir",
            str(tmp_path / "out")]
    assert cli.main(args) == 1
    assert "is not a model bundle: no manifest.json" in capsys.readouterr().err
    assert cli.main(args + ["--patient-dir", str(tmp_path)]) == 1
    assert "give --patient-dir" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
