"""What the Snakemake report shows of each patient: small copies of the per-patient figures.

The report embeds every file it shows, so the per-patient figures (Figure S2's habitat maps,
one per patient) go in as thumbnails: downscaled with a Lanczos filter and stored with a
256-colour palette, about a third of the original's bytes at 40% of its width. The
full-size figures stay beside each patient's outputs.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CtithError
from ..io import atomic_path


def thumbnail(src, dst, width: int = 480) -> tuple[int, int]:
    """Write a ``width``-pixel-wide palette PNG of the image ``src`` to ``dst`` (never wider
    than the original); returns the thumbnail's (width, height)."""
    from PIL import Image, UnidentifiedImageError

    if width < 1:
        raise CtithError(f"thumbnail width must be a positive number of pixels, not {width}")
    try:
        with Image.open(src) as im:
            rgb = im.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise CtithError(f"figure '{src}' cannot be read as an image: {exc}") from None
    w, h = rgb.size
    if w > width:
        rgb = rgb.resize((width, max(1, round(h * width / w))), Image.Resampling.LANCZOS)
    small = rgb.quantize(256, method=Image.Quantize.MEDIANCUT)
    with atomic_path(Path(dst)) as tmp:
        small.save(tmp, format="PNG", optimize=True)
    return small.size
