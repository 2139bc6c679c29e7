"""One demo patient's images from its spec: the venous-phase CT in HU, the optional plain
CT, reader 1's mask and the re-delineations, and the true habitat map. Anatomy, a
lobulated tumour whose tissues are arranged as its true heterogeneity says, then each
institution's scanner (PSF, iodine gain, correlated noise as measured on real CT).

Units: HU for intensities, mm for geometry. Arrays are (z, y, x); the image grid is
LPS with identity direction (x to the patient's left, y posterior, z superior).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .patients import PatientSpec
from .presets import COMPARTMENT_SCALE_MM, SCANNERS, SLICE_THICKNESS_MM, TISSUES


def gaussian_field(rng: np.random.Generator, shape, spacing_zyx, sigma_mm: float) -> np.ndarray:
    """Unit-SD stationary Gaussian random field: white noise smoothed by a Gaussian of
    ``sigma_mm``, by spectral synthesis on the full grid (FFT).

    Nothing is interpolated from a coarser grid, so no grid shows in the field. It is
    periodic over the array, which the margin around the tumour hides.
    """
    from scipy import fft

    full = [fft.next_fast_len(int(n), real=True) for n in shape]  # fast FFT sizes, cropped after
    white = rng.standard_normal(full, dtype=np.float32)
    spectrum = fft.rfftn(white)
    sigma_px = [sigma_mm / sp for sp in spacing_zyx]
    spectrum = ndimage.fourier_gaussian(spectrum, sigma=sigma_px, n=full[-1])
    out = fft.irfftn(spectrum, s=full)[tuple(slice(0, n) for n in shape)].astype(np.float32)
    out -= out.mean()
    sd = float(out.std())
    return out / (sd if sd > 0 else 1.0)


def _multiscale_field(rng, shape, spacing_zyx, sigmas_mm, weights) -> np.ndarray:
    """Unit-SD sum of fields at several scales: tissue varies at large scales as much as
    at small ones (real organs do)."""
    w = np.asarray(weights, dtype=np.float64)
    out = sum(float(wi) * gaussian_field(rng, shape, spacing_zyx, s) for s, wi in zip(sigmas_mm, w))
    return out / float(np.sqrt((w ** 2).sum()))


def _ellipse(xx, yy, cx, cy, ax, ay) -> np.ndarray:
    return ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0


@dataclass
class PatientImages:
    venous: sitk.Image
    mask: sitk.Image
    plain: sitk.Image | None
    mask_reader2: sitk.Image | None
    habitat_map: np.ndarray  # (z, y, x) habitat index + 1 inside the tumour, 0 outside
    mask_reader1_repeat: sitk.Image | None = None
    organs: dict = field(default_factory=dict)  # name -> (z, y, x) bool, as drawn (for tests)


def _habitat_labels(rng, spec: PatientSpec, shape, spacing_zyx, rn: np.ndarray) -> np.ndarray:
    """Index into ``spec.habitats`` for every voxel of the tumour box.

    Each tissue competes through its own random field (the highest wins), weighted by its
    share. A coherent tumour (low true heterogeneity) holds its tissues in a few large
    compartments, necrosis central; a heterogeneous one mixes them in a disordered
    patchwork at every scale down to ``fragment_scale_mm``.
    """
    h = spec.true_heterogeneity
    fine = np.sqrt(np.clip(h, 0.0, 1.0))  # share of the fine scale in each field
    fields, keys = [], []
    for k, tissue in enumerate(spec.habitats):
        if tissue == "calcification":
            continue
        f = (np.sqrt(1.0 - fine ** 2) * gaussian_field(rng, shape, spacing_zyx, COMPARTMENT_SCALE_MM)
             + fine * gaussian_field(rng, shape, spacing_zyx, spec.fragment_scale_mm))
        if tissue == "necrotic":  # ischaemic core: central in coherent tumours
            f = f + 2.5 * (1.0 - h) * (0.6 - rn)
        fields.append(f + 0.9 * np.log(spec.habitat_weights[k]))
        keys.append(k)
    labels = np.asarray(keys)[np.argmax(np.stack(fields), axis=0)]
    if "calcification" in spec.habitats:  # punctate foci
        spots = gaussian_field(rng, shape, spacing_zyx, 1.0) > 2.6
        labels[spots] = spec.habitats.index("calcification")
    return labels


@dataclass
class _Grid:
    """The patient's voxel grid: (z, y, x) coordinates in mm, the in-plane meshgrid."""
    n: int
    nz: int
    s: float
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    yy: np.ndarray
    xx: np.ndarray

    @property
    def spacing(self):
        return (SLICE_THICKNESS_MM, self.s, self.s)

    @classmethod
    def of(cls, spec: PatientSpec) -> "_Grid":
        n, nz, s = spec.matrix, spec.n_slices, spec.spacing_xy
        x = (np.arange(n) - (n - 1) / 2.0) * s + spec.fov_centre_mm[0]
        y = (np.arange(n) - (n - 1) / 2.0) * s + spec.fov_centre_mm[1]
        z = (np.arange(nz) - (nz - 1) / 2.0) * SLICE_THICKNESS_MM
        yy, xx = np.meshgrid(y, x, indexing="ij")
        return cls(n, nz, s, x, y, z, yy, xx)


@dataclass
class _Anatomy:
    """Both phases' HU, each voxel's organ-structure SD and organ, as painted so far."""
    venous: np.ndarray
    plain: np.ndarray
    sd_map: np.ndarray
    organ_id: np.ndarray
    organ_names: list
    inner: np.ndarray  # the abdominal cavity in-plane: the tumour stays inside it

    def paint(self, name, mask2d, zsel, v_hu, p_hu, sd=0.0):
        m = np.zeros(self.venous.shape, dtype=bool)
        m[zsel] = mask2d
        self.venous[m] = v_hu
        self.plain[m] = p_hu
        self.sd_map[m] = sd
        if name not in self.organ_names:
            self.organ_names.append(name)
        self.organ_id[m] = self.organ_names.index(name) + 1


def _paint_anatomy(rng, spec: PatientSpec, g: _Grid) -> _Anatomy:
    """Slice-invariant in-plane layout, organs spanning z ranges."""
    shape = (g.nz, g.n, g.n)
    xx, yy, z = g.xx, g.yy, g.z
    a, b = spec.body_axes_mm
    anat = _Anatomy(np.full(shape, -1000.0, dtype=np.float32), np.full(shape, -1000.0, dtype=np.float32),
                    np.zeros(shape, dtype=np.float32), np.zeros(shape, dtype=np.uint8), [], None)
    paint = anat.paint
    allz = slice(0, g.nz)
    subq = rng.uniform(12.0, 30.0)
    body = _ellipse(xx, yy, 0, 0, a, b)
    paint("subcutaneous_fat", body, allz, -100.0, -100.0, 10.0)
    paint("muscle_wall", _ellipse(xx, yy, 0, 0, a - subq, b - subq), allz, 55.0, 50.0, 12.0)
    inner = _ellipse(xx, yy, 0, 0, a - subq - 10.0, b - subq - 10.0)
    anat.inner = inner
    paint("visceral_fat", inner, allz, -95.0, -95.0, 10.0)
    spine_y = b * 0.55
    paint("bone", _ellipse(xx, yy, 0, spine_y, 20, 18), allz, 650.0, 650.0, 40.0)  # vertebral cortex
    paint("bone", _ellipse(xx, yy, 0, spine_y, 16, 14), allz, 230.0, 230.0, 35.0)  # cancellous bone
    for side in (-1, 1):
        paint("psoas", _ellipse(xx, yy, side * 38, spine_y - 2, 17, 14), allz, 55.0, 50.0, 12.0)
        kz = rng.uniform(-30, 30)
        ksel = (np.abs(z - kz) < 55)
        paint("kidney", _ellipse(xx, yy, side * 72, spine_y - 15, 30, 22), ksel, 165.0, 32.0, 14.0)
        paint("renal_pelvis", _ellipse(xx, yy, side * 70, spine_y - 15, 12, 9), ksel, 10.0, 8.0, 4.0)
    paint("aorta", _ellipse(xx, yy, 12, spine_y - 30, 11, 11), allz, 155.0, 42.0, 6.0)
    paint("ivc", _ellipse(xx, yy, -24, spine_y - 28, 14, 10), allz, 140.0, 40.0, 6.0)
    upper = z > rng.uniform(-10, 40)
    paint("liver", inner & (xx < -a * 0.2) & (yy < b * 0.3), upper, 110.0, 55.0, 13.0)
    paint("spleen", _ellipse(xx, yy, a * 0.55, b * 0.3, 30, 45) & inner, upper, 120.0, 48.0, 12.0)
    for _ in range(int(rng.integers(6, 12))):  # bowel loops in the anterior abdomen
        bx, by = rng.uniform(-0.6 * a, 0.6 * a), rng.uniform(-0.7 * b, 0.0)
        r = rng.uniform(10, 22)
        z0 = rng.uniform(z.min(), z.max())
        zsel = np.abs(z - z0) < rng.uniform(15, 60)
        paint("bowel_wall", _ellipse(xx, yy, bx, by, r, r * 0.8) & inner, zsel, 60.0, 40.0, 8.0)
        content = rng.choice([-900.0, 10.0, 25.0])
        paint("bowel_content", _ellipse(xx, yy, bx, by, r - 3, r * 0.8 - 3) & inner, zsel, content, content, 5.0)
    return anat


def _tumour_shape(rng, spec: PatientSpec, g: _Grid, inner: np.ndarray):
    """A lobulated ellipsoid inside the abdomen: its bounding box (slices), the tumour in
    the box, and each box voxel's normalised radius."""
    s = g.s
    cx, cy, cz = spec.tumour_centre_mm
    rx, ry, rz = spec.tumour_radii_mm
    zsel = np.abs(g.z - cz) <= rz * 1.3 + SLICE_THICKNESS_MM
    ysel = np.abs(g.y - cy) <= ry * 1.3 + 2 * s
    xsel = np.abs(g.x - cx) <= rx * 1.3 + 2 * s
    zi, yi, xi = np.flatnonzero(zsel), np.flatnonzero(ysel), np.flatnonzero(xsel)
    box = (slice(zi[0], zi[-1] + 1), slice(yi[0], yi[-1] + 1), slice(xi[0], xi[-1] + 1))
    Z, Y, X = np.meshgrid(g.z[box[0]], g.y[box[1]], g.x[box[2]], indexing="ij")
    dz, dy, dx = (Z - cz) / rz, (Y - cy) / ry, (X - cx) / rx
    rn = np.sqrt(dx ** 2 + dy ** 2 + dz ** 2) + 1e-9
    lob = np.zeros_like(rn)
    for _ in range(6):  # smooth radial modulation: lobules
        w = rng.normal(size=3)
        w *= rng.uniform(2.0, 4.5) / np.linalg.norm(w)
        lob += np.cos((w[0] * dx + w[1] * dy + w[2] * dz) / rn + rng.uniform(0, 2 * np.pi))
    lob /= np.sqrt(6 / 2)
    tum_box = (rn <= 1.0 + spec.lobulation * lob * 0.5) & inner[box[1], box[2]][None]
    return box, tum_box, rn


def _paint_habitats(rng, spec: PatientSpec, g: _Grid, anat: _Anatomy, box, tum_box, rn) -> np.ndarray:
    """Distinct tissues arranged as the true heterogeneity says, each with its own HU (both
    phases) and texture; returns the habitat map (habitat index + 1, 0 outside)."""
    shape = tum_box.shape
    lab_box = _habitat_labels(rng, spec, shape, g.spacing, rn)
    hab = np.zeros((g.nz, g.n, g.n), dtype=np.int16)
    hab[box] = np.where(tum_box, lab_box + 1, 0)
    anat.organ_id[hab > 0] = 0
    for k, t in enumerate(spec.habitats):
        m = hab == k + 1
        if not m.any():
            continue
        hu = spec.habitat_hu[k]
        anat.venous[m] = hu
        if t == "solid":
            p = max(hu - spec.enhancement_hu, 25.0)
        elif t == "myxoid":
            p = hu - 0.3 * spec.enhancement_hu
        elif t == "necrotic":
            p = hu - 2.0
        else:
            p = hu
        anat.plain[m] = p
        anat.sd_map[m] = 0.0
    # Habitat texture: each tissue its own structure at large and fine scales, so local
    # texture features differ between habitats as well as their mean HU.
    tex = np.zeros(shape, dtype=np.float32)
    for k, t in enumerate(spec.habitats):
        mk = (lab_box == k) & tum_box
        if mk.any():
            tissue = TISSUES[t]
            field_k = _multiscale_field(rng, shape, g.spacing, (tissue["grain"], 6.0), (1.0, 1.0))
            tex[mk] = field_k[mk] * tissue["sd"]
    anat.venous[box] += tex
    anat.plain[box] += tex
    return hab


def _scan(rng, spec: PatientSpec, g: _Grid, anat: _Anatomy) -> list:
    """Organ structure and scanner physics, independent noise for the two phases: both
    phases as int16 HU."""
    prof = SCANNERS[spec.institution]
    scanner_offset = (prof.scanners.index(spec.scanner) - 1) * 3.0
    org_tex = _multiscale_field(rng, anat.venous.shape, g.spacing, (1.5, 5.0, 15.0), (0.5, 0.8, 1.0)) * anat.sd_map
    out = []
    for img in (anat.venous, anat.plain):
        img = img + org_tex
        img = ndimage.gaussian_filter(img, sigma=(0.0, prof.psf_px, prof.psf_px))  # scanner PSF
        img = img + (prof.iodine_gain - 1.0) * np.clip(img, -150.0, 400.0) + prof.hu_offset + scanner_offset
        noise = ndimage.gaussian_filter(rng.standard_normal(img.shape, dtype=np.float32),
                                        sigma=(0.0, prof.noise_corr_px, prof.noise_corr_px))
        img = img + noise / noise.std() * prof.noise_sd
        out.append(np.clip(np.round(img), -1024, 3071).astype(np.int16))
    return out


def _redelineations(rng, spec: PatientSpec, g: _Grid, box, tum_box, inner):
    """Reader 2's mask, the boundary moved by up to ~1.5 mm, smoothly, as a second reader
    draws it; and reader 1's again weeks later (Appendix 3), the same hand moving it less
    (~0.6 mm), from its own seed so no other draw of the patient moves."""
    sp, shape, full = g.spacing, tum_box.shape, (g.nz, g.n, g.n)
    inside = ndimage.distance_transform_edt(tum_box, sampling=sp)
    outside = ndimage.distance_transform_edt(~tum_box, sampling=sp)
    sdist = inside - outside
    m2 = (sdist + 1.5 * gaussian_field(rng, shape, sp, 6.0)) > 0
    mask2 = np.zeros(full, dtype=np.uint8)
    mask2[box] = m2 & inner[box[1], box[2]][None]
    m1r = (sdist + 0.6 * gaussian_field(np.random.default_rng(spec.seed ^ 0x4E9EA7), shape, sp, 8.0)) > 0
    mask1r = np.zeros(full, dtype=np.uint8)
    mask1r[box] = m1r & inner[box[1], box[2]][None]
    return mask2, mask1r


def render_patient(spec: PatientSpec) -> PatientImages:
    """Render the venous-phase CT, plain CT, masks and the true habitat map."""
    rng = np.random.default_rng(spec.seed)
    g = _Grid.of(spec)
    anat = _paint_anatomy(rng, spec, g)
    box, tum_box, rn = _tumour_shape(rng, spec, g, anat.inner)
    tumour = np.zeros((g.nz, g.n, g.n), dtype=bool)
    tumour[box] = tum_box
    hab = _paint_habitats(rng, spec, g, anat, box, tum_box, rn)
    venous_a, plain_a = _scan(rng, spec, g, anat)
    mask2 = mask1r = None
    if spec.has_reader2:
        mask2, mask1r = _redelineations(rng, spec, g, box, tum_box, anat.inner)

    def to_image(arr):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing((g.s, g.s, SLICE_THICKNESS_MM))
        img.SetOrigin((float(g.x[0]), float(g.y[0]), float(g.z[0]) + 100.0))
        return img

    return PatientImages(
        venous=to_image(venous_a),
        mask=to_image(tumour.astype(np.uint8)),
        plain=to_image(plain_a) if spec.has_plain_ct else None,
        mask_reader2=to_image(mask2) if mask2 is not None else None,
        mask_reader1_repeat=to_image(mask1r) if mask1r is not None else None,
        habitat_map=hab,
        organs={name: anat.organ_id == i + 1 for i, name in enumerate(anat.organ_names)},
    )


SOFT_TISSUE = ("liver", "spleen", "psoas", "muscle_wall", "kidney")


def organ_noise(images: PatientImages, organs=SOFT_TISSUE, min_voxels: int = 500) -> dict:
    """Noise of the rendered venous phase in homogeneous soft tissue, as measured on real CT.

    Per organ drawn (eroded by 3 in-plane pixels, so no edge counts; at least
    ``min_voxels`` left): the SD of the residual after a 3 x 3 in-plane median (the
    pixel-scale noise) and the overall HU SD (noise plus the organ's large-scale
    structure). Returns {organ: (residual SD, overall SD)} in HU.
    """
    v = sitk.GetArrayFromImage(images.venous).astype(np.float64)
    resid = v - ndimage.median_filter(v, size=(1, 3, 3))
    out = {}
    for name in organs:
        if name not in images.organs:
            continue
        core = ndimage.binary_erosion(images.organs[name], structure=np.ones((1, 3, 3)), iterations=3)
        if core.sum() >= min_voxels:
            out[name] = (float(resid[core].std()), float(v[core].std()))
    return out
