"""Face blurring for the resharder (``blur=true``), with CommonPool's ``face_bboxes`` convention.

Boxes are ``[x_min, y_min, x_max, y_max]`` as fractions of the image's width and height (as in
the pool's metadata and img2dataset's blurrer). Each box is grown by a tenth of its longer side,
the image is Gaussian-blurred with sigma a tenth of the longest box side, and the blurred image
is blended in through an equally blurred box mask, so box edges leave no seam. Like DataComp's
resharder, blurred images are re-encoded as WebP at quality 100.
"""

from __future__ import annotations

import io
from typing import Sequence

WEBP_QUALITY = 100


def _box_pixels(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int, int]:
    """A normalised box in pixels, grown by 10% of its longer side and clipped; plus that side."""
    x0, y0, x1, y1 = (int(box[0] * width), int(box[1] * height), int(box[2] * width), int(box[3] * height))
    side = max(x1 - x0, y1 - y0)
    grow = int(0.1 * side)
    return (max(x0 - grow, 0), max(y0 - grow, 0), min(x1 + grow, width), min(y1 + grow, height), side)


def blur_faces(data: bytes, boxes: Sequence[Sequence[float]]) -> bytes:
    """Blur the boxed regions of an encoded image; returns WebP bytes (the input when ``boxes`` is empty)."""
    from PIL import Image, ImageDraw, ImageFilter

    if not boxes:
        return data
    img = Image.open(io.BytesIO(data))
    img = img.convert("RGBA" if img.mode in ("RGBA", "LA", "P") else "RGB")
    mask = Image.new("L", img.size, 0)
    draw = ImageDraw.Draw(mask)
    longest = 0
    for box in boxes:
        x0, y0, x1, y1, side = _box_pixels(box, *img.size)
        longest = max(longest, side)
        if x1 > x0 and y1 > y0:
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=255)
    sigma = max(1.0, 0.1 * longest)
    blurred = img.filter(ImageFilter.GaussianBlur(sigma))
    soft_mask = mask.filter(ImageFilter.GaussianBlur(sigma))
    out = io.BytesIO()
    Image.composite(blurred, img, soft_mask).save(out, format="WEBP", quality=WEBP_QUALITY)
    return out.getvalue()
