"""A dataset far from ImageNet, made offline: digits rendered from the
fonts on this machine, one folder per class.

    python benchmarks/make_glyphs.py --output /tmp/glyphs --per-class 100

Each image is one digit (the class, 0-9) in a random font among the
TrueType text fonts matplotlib ships (DejaVu, STIX, Computer Modern; so
every machine with the package has them), at a random size,
angle and position, in a random grey on a noisy grey background: shapes
and strokes, no objects, no colour, no texture ImageNet would know. The
same seed gives the same images. `--split` writes `train/` and
`validation/` beside each other.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np


def fonts():
    """The TrueType fonts matplotlib ships (every machine has them)."""
    import matplotlib

    folder = os.path.join(
        os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf"
    )
    # Text fonts only: the symbol fonts (cmex, cmsy, STIX sizes and
    # non-Unicode) map digits to other glyphs or to nothing.
    text_fonts = ("DejaVu", "STIXGeneral", "cmr", "cmss", "cmtt", "cmb", "cmmi")
    found = sorted(
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if name.endswith(".ttf")
        and name.startswith(text_fonts)
        and "Display" not in name  # a handful of glyphs, no digits
    )
    if not found:
        raise SystemExit(f"No TrueType fonts in {folder}.")
    return found


def render(digit, font_path, rng, size):
    from PIL import Image, ImageDraw, ImageFont

    background = int(rng.integers(0, 256))
    ink = (background + int(rng.integers(80, 176))) % 256
    image = Image.new("L", (size * 2, size * 2), background)
    font = ImageFont.truetype(font_path, int(size * rng.uniform(0.5, 1.0)))
    draw = ImageDraw.Draw(image)
    draw.text((size, size), str(digit), fill=ink, font=font, anchor="mm")
    image = image.rotate(
        rng.uniform(-30, 30), fillcolor=background, center=(size, size)
    )
    dx, dy = rng.integers(-size // 6, size // 6 + 1, 2)
    left, top = size // 2 + dx, size // 2 + dy
    image = image.crop((left, top, left + size, top + size))
    pixels = np.asarray(image, "float32")
    if np.mean(pixels != background) < 0.01:
        return None  # the font has no such glyph: draw again
    pixels += rng.normal(0, 12, pixels.shape)
    pixels = np.clip(pixels, 0, 255).astype("uint8")
    return Image.fromarray(pixels).convert("RGB")


def write(folder, per_class, size, rng, font_paths):
    for digit in range(10):
        out = os.path.join(folder, str(digit))
        os.makedirs(out, exist_ok=True)
        for i in range(per_class):
            image = None
            while image is None:
                font = font_paths[int(rng.integers(len(font_paths)))]
                image = render(digit, font, rng, size)
            image.save(os.path.join(out, f"{digit}_{i:05d}.png"))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", required=True, help="folder to write")
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--validation-per-class", type=int, default=0)
    p.add_argument("--size", type=int, default=96, help="pixels a side")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if os.path.exists(args.output):
        raise SystemExit(f"{args.output} exists: choose a new folder.")
    rng = np.random.default_rng(args.seed)
    font_paths = fonts()
    staging = args.output + ".partial"
    if args.validation_per_class:
        write(
            os.path.join(staging, "train"),
            args.per_class,
            args.size,
            rng,
            font_paths,
        )
        write(
            os.path.join(staging, "validation"),
            args.validation_per_class,
            args.size,
            rng,
            font_paths,
        )
    else:
        write(staging, args.per_class, args.size, rng, font_paths)
    os.replace(staging, args.output)
    print(
        f"wrote {args.output}: 10 classes, {args.per_class} images a class "
        f"({len(font_paths)} fonts, {args.size} px)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
