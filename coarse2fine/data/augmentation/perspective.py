"""Random perspective warp in numpy (torchvision's RandomPerspective), an augmentation Op.

Coordinates are continuous with pixel (row i, column j) covering [j, j + 1] x [i, i + 1],
so its centre is at (j + 0.5, i + 0.5); that is the frame torchvision solves and applies
its homography in (corner points (0, 0) ... (W - 1, H - 1) included).
"""

from __future__ import annotations

import functools

import numpy as np


def solve_homography(from_points, to_points) -> np.ndarray:
  """[8] coefficients (a, b, c, d, e, f, g, h) of the homography taking from_points[k] to to_points[k].

  (x, y) -> ((a x + b y + c) / (g x + h y + 1), (d x + e y + f) / (g x + h y + 1)); both point
  sets are 4 (x, y) pairs, no three collinear.
  """
  src = np.asarray(from_points, dtype=np.float64).reshape(4, 2)
  dst = np.asarray(to_points, dtype=np.float64).reshape(4, 2)
  # Multiplying out the denominator makes each correspondence two linear equations in the 8 unknowns.
  system = np.zeros((8, 8))
  for k, ((x, y), (u, v)) in enumerate(zip(src, dst)):
    system[2 * k] = [x, y, 1, 0, 0, 0, -u * x, -u * y]
    system[2 * k + 1] = [0, 0, 0, x, y, 1, -v * x, -v * y]
  return np.linalg.solve(system, dst.reshape(8))


def apply_homography(coeffs: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Maps points (x, y) (arrays of any one shape) through the 8 coefficients of `solve_homography`."""
  a, b, c, d, e, f, g, h = (float(v) for v in coeffs)
  denom = g * x + h * y + 1.0
  # A point on the horizon line maps to infinity; push it far outside instead of dividing by 0.
  denom = np.where(np.abs(denom) < 1e-12, 1e-12, denom)
  return (a * x + b * y + c) / denom, (d * x + e * y + f) / denom


@functools.lru_cache(maxsize=16)
def _pixel_centres(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
  """([H * W] x, [H * W] y) of the pixel centres, row-major."""
  y, x = np.mgrid[0:height, 0:width]
  x = (x.reshape(-1) + 0.5).astype(np.float64)
  y = (y.reshape(-1) + 0.5).astype(np.float64)
  x.flags.writeable = False
  y.flags.writeable = False
  return x, y


def warp_perspective(image: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
  """Output pixel at p samples [H, W, C] `image` bilinearly at homography(p); same shape.

  `coeffs` map output to input coordinates. The image is zero-padded (fill 0) and the
  sampling blends with the padding across the border's last half pixel, as torchvision's
  tensor path (grid_sample with zero padding) does.
  """
  height, width, channels = image.shape
  x, y = _pixel_centres(height, width)
  sx, sy = apply_homography(coeffs, x, y)
  # Back to pixel-index units (centre of pixel j at j), clamped to the zero ring around the image.
  sx = np.clip(sx - 0.5, -1.0, width)
  sy = np.clip(sy - 0.5, -1.0, height)
  x0 = np.minimum(np.floor(sx), width - 1)  # so x0 + 1 stays inside the padded image
  y0 = np.minimum(np.floor(sy), height - 1)
  fx = (sx - x0).astype(np.float32)
  fy = (sy - y0).astype(np.float32)
  stride = width + 2
  top_left = ((y0 + 1) * stride + (x0 + 1)).astype(np.intp)  # index into the padded image
  padded = np.zeros((channels, height + 2, stride), dtype=np.float32)
  padded[:, 1:-1, 1:-1] = image.transpose(2, 0, 1)
  flat = padded.reshape(channels, -1)
  top = flat[:, top_left] * (1.0 - fx) + flat[:, top_left + 1] * fx
  bottom = flat[:, top_left + stride] * (1.0 - fx) + flat[:, top_left + stride + 1] * fx
  out = top * (1.0 - fy) + bottom * fy
  return out.reshape(channels, height, width).transpose(1, 2, 0)  # channel-planar [H, W, C] view


def image_corners(height: int, width: int) -> np.ndarray:
  """[4, 2] (x, y): top-left, top-right, bottom-right, bottom-left as torchvision places them."""
  return np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], dtype=np.float64)


def corner_offsets_to_points(offsets, height: int, width: int) -> np.ndarray:
  """[4, 2] (x, y) corners, each moved inward by its (dx, dy) of `offsets` [4, 2] from the image corners.

  Corner order: top-left, top-right, bottom-right, bottom-left, at (0, 0), (W - 1, 0),
  (W - 1, H - 1), (0, H - 1) before the move.
  """
  start = image_corners(height, width)
  inward = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64)
  return start + inward * np.asarray(offsets, dtype=np.float64)


class RandomPerspective:
  """With probability p, a random perspective warp with bilinear sampling and fill 0 (torchvision semantics).

  Each corner moves inward by independent integer amounts, uniform in 0..int(scale * (W // 2))
  horizontally and 0..int(scale * (H // 2)) vertically; the whole image is squeezed into the
  quadrilateral of the moved corners, and the outside is filled with 0.
  """

  def __init__(self, distortion_scale: float = 0.5, p: float = 0.5):
    if not 0 <= distortion_scale <= 1:
      raise ValueError(f"RandomPerspective distortion_scale={distortion_scale} must be in [0, 1].")
    self.distortion_scale = float(distortion_scale)
    self.p = float(p)

  def sample_offsets(self, height: int, width: int, u) -> np.ndarray:
    """[4, 2] integer inward (dx, dy) per corner from 8 uniforms `u` in [0, 1)."""
    max_dx = int(self.distortion_scale * (width // 2))
    max_dy = int(self.distortion_scale * (height // 2))
    u = np.asarray(u, dtype=np.float64).reshape(4, 2)
    return np.floor(u * np.array([max_dx + 1, max_dy + 1])).astype(np.int64)

  def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    u = rng.random(9)  # [apply, 8 corner offsets], always drawn so later ops see the same stream
    if u[0] >= self.p:
      return image
    height, width = image.shape[:2]
    offsets = self.sample_offsets(height, width, u[1:])
    if not offsets.any():
      return image  # the identity warp, exactly
    end = corner_offsets_to_points(offsets, height, width)
    # The output's corners are the moved points; find where each output pixel reads the input.
    return warp_perspective(image, solve_homography(end, image_corners(height, width)))
