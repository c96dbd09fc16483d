"""Procedural scenes for the shapes demo: one class shape on a cluttered background, with its mask.

Every scene is 64×64 RGB uint8. The clutter (colour gradients, low-frequency waves, thin straight
lines, soft round spots, pixel noise) is drawn first and never contains a class shape; the object
is drawn on top of it and is never occluded, so its ground-truth mask is exactly where the class
evidence is. The mask marks the pixels at least half covered by the object (coverage is computed
on a 4×4 supersampled grid, so edges are anti-aliased in the image).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
IMAGE_SIZE = 64

_SUPERSAMPLE = 4
_RADIUS_RANGE = (10.0, 20.0)  # circumradius of the object, in pixels
_MIN_CONTRAST = 110.0  # Euclidean RGB distance between the object and the background under it
_NOISE_STD = 4.0


@dataclass
class ShapeScenes:
    """A batch of scenes: images (n, H, W, 3) uint8, masks (n, H, W) bool, labels (n,) int64."""

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...] = SHAPE_CLASSES

    def __len__(self) -> int:
        return len(self.labels)


def generate_scenes(n: int, seed: int, size: int = IMAGE_SIZE) -> ShapeScenes:
    """`n` scenes with balanced classes (counts differ by at most one), the same for the same seed."""
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}.")
    n_classes = len(SHAPE_CLASSES)
    labels = np.random.default_rng((seed, 0)).permutation(np.arange(n) % n_classes).astype(np.int64)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=bool)
    for i, label in enumerate(labels):
        images[i], masks[i] = render_scene(int(label), np.random.default_rng((seed, 1, i)), size)
    return ShapeScenes(images=images, masks=masks, labels=labels)


def render_scene(label: int, rng: np.random.Generator, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """One scene showing SHAPE_CLASSES[label]: (image (H, W, 3) uint8, mask (H, W) bool)."""
    shape = SHAPE_CLASSES[label]
    canvas = _background(rng, size)
    _draw_spots(canvas, rng, count=int(rng.integers(4, 9)))
    _draw_lines(canvas, rng, count=int(rng.integers(3, 8)))

    radius = rng.uniform(*_RADIUS_RANGE) * size / IMAGE_SIZE
    extent = radius * _EXTENT[shape]
    cx, cy = rng.uniform(extent + 1.0, size - extent - 1.0, size=2)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    coverage = _coverage(shape, cx, cy, radius, angle, size)
    mask = coverage >= 0.5

    colour = _contrasting_colour(rng, canvas[mask].mean(axis=0))
    # A gentle linear shading across the object so it is not a flat sticker.
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    theta = rng.uniform(0.0, 2.0 * np.pi)
    ramp = ((xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)) / max(extent, 1.0)
    shaded = colour[None, None, :] * (1.0 + 0.12 * ramp[..., None])
    alpha = coverage[..., None]
    canvas = canvas * (1.0 - alpha) + shaded * alpha

    canvas += rng.normal(0.0, _NOISE_STD, size=canvas.shape)
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return image, mask


# How far each shape reaches from its centre, in units of the radius (for placement inside the image).
_EXTENT = {"circle": 0.9, "square": 0.72 * np.sqrt(2.0), "triangle": 1.15, "star": 1.1, "cross": 1.0 * np.hypot(1.0, 0.3)}


def _outline(shape: str) -> np.ndarray:
    """Polygon vertices (k, 2) of a unit-radius shape centred on the origin (not for the circle)."""
    if shape == "square":
        h = 0.72
        return np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    if shape == "triangle":
        a = np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        return 1.15 * np.stack([np.cos(a), np.sin(a)], axis=1)
    if shape == "star":
        a = np.pi / 2 + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.1, 0.47)
        return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)
    if shape == "cross":
        L, w = 1.0, 0.3
        return np.array([[w, w], [L, w], [L, -w], [w, -w], [w, -L], [-w, -L], [-w, -w], [-L, -w],
                         [-L, w], [-w, w], [-w, L], [w, L]])
    raise ValueError(f"Unknown shape {shape!r}; expected one of {SHAPE_CLASSES}.")


def _coverage(shape: str, cx: float, cy: float, radius: float, angle: float, size: int) -> np.ndarray:
    """Fraction of each pixel covered by the shape, (size, size) floats in [0, 1]."""
    s = _SUPERSAMPLE
    reach = radius * _EXTENT[shape] + 1.0
    x0, x1 = max(int(np.floor(cx - reach)), 0), min(int(np.ceil(cx + reach)), size)
    y0, y1 = max(int(np.floor(cy - reach)), 0), min(int(np.ceil(cy + reach)), size)
    # Sub-pixel sample centres inside the bounding box, in image coordinates (pixel i spans [i, i+1)).
    xs = x0 + (np.arange((x1 - x0) * s) + 0.5) / s
    ys = y0 + (np.arange((y1 - y0) * s) + 0.5) / s
    px, py = np.meshgrid(xs - cx, ys - cy)
    # Rotate the samples by -angle so the shape can be tested in its own frame.
    c, sn = np.cos(angle), np.sin(angle)
    u, v = (c * px + sn * py) / radius, (-sn * px + c * py) / radius
    if shape == "circle":
        inside = u * u + v * v <= 0.9 ** 2
    else:
        inside = _inside_polygon(u, v, _outline(shape))
    box = inside.reshape(y1 - y0, s, x1 - x0, s).mean(axis=(1, 3))
    out = np.zeros((size, size))
    out[y0:y1, x0:x1] = box
    return out


def _inside_polygon(x: np.ndarray, y: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Even-odd rule point-in-polygon test, vectorised over the points."""
    inside = np.zeros(x.shape, dtype=bool)
    vx, vy = vertices[:, 0], vertices[:, 1]
    for i in range(len(vertices)):
        j = i - 1
        straddles = (vy[i] > y) != (vy[j] > y)
        dy = vy[j] - vy[i]
        if dy == 0:
            continue  # a horizontal edge never straddles
        x_cross = vx[i] + (vx[j] - vx[i]) * (y - vy[i]) / dy
        inside ^= straddles & (x < x_cross)
    return inside


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A two-colour linear gradient plus low-frequency colour waves, float (size, size, 3) in 0..255."""
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    theta = rng.uniform(0.0, 2.0 * np.pi)
    t = (xx - 0.5) * np.cos(theta) + (yy - 0.5) * np.sin(theta)
    t = (t - t.min()) / (t.max() - t.min())
    start, end = rng.uniform(0.0, 255.0, size=(2, 3))
    canvas = start + (end - start) * t[..., None]
    for _ in range(2):
        freq = rng.uniform(0.5, 2.0) * 2.0 * np.pi
        phi = rng.uniform(0.0, 2.0 * np.pi)
        direction = rng.uniform(0.0, 2.0 * np.pi)
        wave = np.sin(freq * (xx * np.cos(direction) + yy * np.sin(direction)) + phi)
        canvas += wave[..., None] * rng.uniform(-30.0, 30.0, size=3)
    return np.clip(canvas, 0.0, 255.0)


def _blend(canvas: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    a = alpha[..., None]
    canvas *= 1.0 - a
    canvas += a * colour


def _draw_lines(canvas: np.ndarray, rng: np.random.Generator, count: int) -> None:
    """Thin straight anti-aliased segments in random colours (they never close into a shape)."""
    size = canvas.shape[0]
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    for _ in range(count):
        (ax, ay), (bx, by) = rng.uniform(-0.2 * size, 1.2 * size, size=(2, 2))
        width = rng.uniform(0.7, 1.6)
        dx, dy = bx - ax, by - ay
        t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / (dx * dx + dy * dy + 1e-9), 0.0, 1.0)
        dist = np.hypot(xx - (ax + t * dx), yy - (ay + t * dy))
        alpha = np.clip(width / 2 + 0.5 - dist, 0.0, 1.0) * rng.uniform(0.6, 1.0)
        _blend(canvas, alpha, rng.uniform(0.0, 255.0, size=3))


def _draw_spots(canvas: np.ndarray, rng: np.random.Generator, count: int) -> None:
    """Small soft elliptical spots (Gaussian fall-off, no edges), much smaller than any object."""
    size = canvas.shape[0]
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    for _ in range(count):
        mx, my = rng.uniform(0.0, size, size=2)
        sx, sy = rng.uniform(1.2, 3.0, size=2)
        phi = rng.uniform(0.0, np.pi)
        u = (xx - mx) * np.cos(phi) + (yy - my) * np.sin(phi)
        v = -(xx - mx) * np.sin(phi) + (yy - my) * np.cos(phi)
        alpha = np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2)) * rng.uniform(0.6, 1.0)
        _blend(canvas, alpha, rng.uniform(0.0, 255.0, size=3))


def _contrasting_colour(rng: np.random.Generator, behind: np.ndarray, tries: int = 64) -> np.ndarray:
    """A random colour at least _MIN_CONTRAST away from `behind` (the best of `tries` if none is)."""
    best, best_distance = None, -1.0
    for _ in range(tries):
        colour = rng.uniform(0.0, 255.0, size=3)
        distance = float(np.linalg.norm(colour - behind))
        if distance >= _MIN_CONTRAST:
            return colour
        if distance > best_distance:
            best, best_distance = colour, distance
    return best
