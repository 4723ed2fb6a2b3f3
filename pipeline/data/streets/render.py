"""Photos of the synthetic street scenes, rendered in a Style from nothing but the label map.

The camera (horizon, vanishing point, road edges) is recovered from the road in the label.
Every value that ends up in a pixel is computed with IEEE arithmetic alone (+, -, *, /, sqrt,
floor, ldexp): no transcendental function of numpy (whose SIMD kernels differ by CPU), of libm
(whose FMA variants differ by CPU) or of BLAS; `exp`, `log` and `power` below stand in for them.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import ndimage
from skimage import measure

# Cityscapes train ids used by the generator (pipeline/data/palette.py has the full table)
ROAD, SIDEWALK, BUILDING, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN = 0, 1, 2, 4, 5, 6, 7
VEGETATION, TERRAIN, SKY, PERSON, CAR = 8, 9, 10, 11, 13

TIMES_OF_DAY = ("day", "dusk", "night")
FOGGY_DENSITY = 0.04  # fog density (per camera height of depth) from which an image counts as Foggy
_NOISE_SEED = 20170611  # the noise bank is a constant texture; images differ by where they cut it
_X_TYPICAL = 2.6  # typical lateral distance of a facade from the camera (camera heights)

RGB = tuple[float, float, float]
_SKINS = ((0.93, 0.75, 0.62), (0.76, 0.55, 0.40), (0.45, 0.30, 0.22))

# Materials: the photo is one table look-up per pixel. Ids below 19 are the classes' own materials;
# the others are the parts that give things their look (windows, lamps, clothes).
M_HOUSE, M_GLASS, M_LIT = 32, 40, 41  # M_HOUSE + k: the k-th house colour
M_CAR, M_CAR_GLASS, M_TAIL, M_HEAD, M_PLATE, M_TYRE = 48, 56, 57, 58, 59, 60
M_SKIN, M_SHIRT, M_TROUSERS = 64, 68, 76  # 3 skins, 8 shirts, 2 trousers
M_SIGN, M_SIGN_FACE, M_BULB = 80, 83, 85  # 3 sign colours; 3 bulbs (red, amber, green)
_OBJECTS = np.zeros(256, np.uint8)  # label -> the class for things rendered one by one, else 0
for _cls in (POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN, PERSON, CAR):
    _OBJECTS[_cls] = _cls
# texture amplitude per class: fine grain, foliage-sized blobs, large stains
_GRAIN = np.zeros((3, 256), np.float32)
for _cls, _amps in {ROAD: (0.10, 0.0, 0.07), SIDEWALK: (0.06, 0.0, 0.03), BUILDING: (0.05, 0.06, 0.0),
                    VEGETATION: (0.18, 0.30, 0.0), TERRAIN: (0.12, 0.0, 0.06), POLE: (0.08, 0, 0),
                    CAR: (0.03, 0, 0), PERSON: (0.04, 0, 0), FENCE: (0.08, 0, 0)}.items():
    _GRAIN[:, _cls] = _amps


# --------------------------------------------------------------------------- portable math
# numpy picks exp/log/power kernels by CPU (AVX-512 ones differ from AVX2's in the last bits), glibc
# picks FMA or plain variants of exp/log/pow, and BLAS picks kernels that sum in other orders. One
# last bit is enough to move a rounded pixel, so a data set rendered on two machines had other
# bytes. These use only operations IEEE 754 rounds exactly, the same on every x86-64 machine.
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10  # fdlibm's split of ln 2
_INV_LN2 = 1.44269504088896338700e+00
_SQRT_HALF = 0.70710678118654757274
_EXP_TERMS = tuple(1.0 / math.factorial(n) for n in range(14))  # Taylor: |r| <= ln2/2 -> < 1e-17
_ATANH_TERMS = tuple(1.0 / n for n in range(1, 24, 2))  # 2 atanh(s) = 2 (s + s^3/3 + ...), |s| < 0.18


def portable_exp(x) -> np.ndarray:
    """e**x in float64 (within a few units in the last place), identical on every IEEE machine."""
    x = np.asarray(x, np.float64)
    k = np.floor(x * _INV_LN2 + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO  # |r| <= ln2/2
    p = np.full_like(r, _EXP_TERMS[-1])
    for c in _EXP_TERMS[-2::-1]:  # Horner
        p = p * r + c
    return np.ldexp(p, np.clip(k, -1100, 1100).astype(np.int64))


def portable_log(x) -> np.ndarray:
    """Natural log of x > 0 in float64, identical on every IEEE machine."""
    m, e = np.frexp(np.asarray(x, np.float64))  # x = m 2**e, m in [0.5, 1)
    low = m < _SQRT_HALF
    m, e = np.where(low, 2.0 * m, m), np.where(low, e - 1, e)  # m in [sqrt(1/2), sqrt(2))
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    p = np.full_like(s, _ATANH_TERMS[-1])
    for c in _ATANH_TERMS[-2::-1]:
        p = p * s2 + c
    return e * _LN2_HI + (2.0 * s * p + e * _LN2_LO)


def portable_power(base, exponent: float) -> np.ndarray:
    """base**exponent for base >= 0 (0 where base is 0), identical on every IEEE machine."""
    base = np.asarray(base, np.float64)
    positive = base > 0
    return np.where(positive, portable_exp(exponent * portable_log(np.where(positive, base, 1.0))), 0.0)


def gaussian_smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur on a torus (scipy.ndimage.gaussian_filter's kernel, truncated at 4 sigma),
    with the kernel's weights from the portable exp: scipy's own come from numpy's."""
    radius = int(4.0 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = portable_exp(-0.5 / (sigma * sigma) * (offsets * offsets))
    weights /= math.fsum(weights.tolist())
    smooth = ndimage.correlate1d(image, weights, axis=0, mode="wrap")
    return ndimage.correlate1d(smooth, weights, axis=1, mode="wrap")


def draw_unit_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Approximately standard normal numbers (the sum of 12 uniforms, less 6: Irwin-Hall), from
    uniform draws alone: numpy's normal sampler calls libm's exp and log in its rare cases."""
    uniform = rng.random((12, *shape))
    total = uniform[0].copy()
    for part in uniform[1:]:  # in a fixed order
        total += part
    return total - 6.0


def draw_poisson(rng: np.random.Generator, lam: float) -> int:
    """A Poisson(lam) count by inverting its distribution function at one uniform draw."""
    u, k = rng.random(), 0
    p = float(portable_exp(-lam))
    cdf = p
    while u > cdf and k < 100:
        k += 1
        p *= lam / k
        cdf += p
    return k


def exact_std(array: np.ndarray) -> float:
    """The standard deviation, from exactly rounded sums (math.fsum), so in no CPU's summation order."""
    values = np.asarray(array, np.float64).ravel()
    mean = math.fsum(values.tolist()) / values.size
    deviations = values - mean
    return math.sqrt(math.fsum((deviations * deviations).tolist()) / values.size)


@dataclass(frozen=True)
class Style:
    """How one photo looks: light, weather and the colours of things (the label fixes the layout)."""

    time_of_day: str  # "day" | "dusk" | "night"
    overcast: bool
    fog_density: float  # extinction per camera height of depth; >= FOGGY_DENSITY reads as fog
    wet_road: bool
    exposure: float
    sun_side: int  # -1 | 1: which side of the street is sunlit (clear days)
    road_rgb: RGB
    sidewalk_rgb: RGB
    vegetation_rgb: RGB
    terrain_rgb: RGB
    building_rgbs: tuple[RGB, ...]  # 1 to 8 house colours
    car_rgbs: tuple[RGB, ...]  # 1 to 8 car colours
    shirt_rgbs: tuple[RGB, ...]  # 8 clothes colours
    window_spacing: float  # camera heights between window columns along a facade
    floor_height: float  # camera heights per storey
    lit_windows: float  # fraction of windows lit (dusk and night)
    crosswalk_depth: float  # depth of a zebra crossing; 0 = none

    def __post_init__(self) -> None:
        if self.time_of_day not in TIMES_OF_DAY:
            raise ValueError(f"time_of_day must be one of {TIMES_OF_DAY}, got {self.time_of_day!r}")
        for name in ("building_rgbs", "car_rgbs", "shirt_rgbs"):
            if not 1 <= len(getattr(self, name)) <= 8:
                raise ValueError(f"{name} must hold 1 to 8 colours, got {len(getattr(self, name))}")


@functools.lru_cache(maxsize=8)
def _noise_bank(size: int) -> tuple[np.ndarray, ...]:
    """Fine, medium and coarse unit normal noise, and uniform [0, 1) numbers, on (2*size, 2*size)
    tori: computed once per size, then each image cuts its own windows out of them."""
    rng = np.random.default_rng(_NOISE_SEED)
    fine = draw_unit_normal(rng, (2 * size, 2 * size)).astype(np.float32)
    bank = [fine]
    for sigma in (size / 48, size / 14):  # foliage blobs, clouds and stains: fixed fractions of size
        smooth = gaussian_smooth(fine, sigma)
        bank.append(smooth / np.float32(exact_std(smooth)))
    bank.append(rng.random((2 * size, 2 * size), dtype=np.float32))
    for array in bank:
        array.flags.writeable = False
    return tuple(bank)


class Camera(NamedTuple):
    """The camera as a label map shows it: image units (0..1) for the horizon row and the vanishing
    column, camera heights for the road's edges (lateral offsets from the camera), and the scale
    1 / depth at which the street ends."""

    horizon: float
    vx: float
    edge_l: float
    edge_r: float
    s_far: float


def estimate_camera(label: np.ndarray) -> Camera:
    """Recover the camera from the road: fit a line to each of its edges; they meet on the horizon."""
    size = label.shape[0]
    road = label == ROAD
    left, right = road.argmax(1), size - road[:, ::-1].argmax(1)  # (H,): the road's edge columns
    rows = np.flatnonzero(road[np.arange(size), left])  # rows that hold road
    if rows.size == 0:  # no road in sight: a neutral camera is as good as any
        return Camera(0.45, 0.5, -1.0, 1.0, 0.03)
    top_row = int(rows[0])
    top = top_row / size
    rows = rows[(left[rows] > 0) & (right[rows] < size)]  # both edges in view
    if rows.size >= 3:
        points = np.stack([np.ones(rows.size), (rows + 0.5) / size,
                           left[rows] / size, right[rows] / size])  # (4, n): 1, y, x_left, x_right
        for _ in range(2):  # least squares x = a + b*y per edge, then once more without outliers
            # sums of products, exactly rounded (a BLAS product sums in an order of its CPU's)
            n, sy, sl, sr = (math.fsum(p.tolist()) for p in points)
            syy, syl, syr = (math.fsum((points[1] * p).tolist()) for p in points[1:])
            det = max(n * syy - sy * sy, 1e-12)
            b_l, b_r = (n * syl - sy * sl) / det, (n * syr - sy * sr) / det
            a_l, a_r = (sl - b_l * sy) / n, (sr - b_r * sy) / n
            fit = np.stack([a_l + b_l * points[1], a_r + b_r * points[1]])  # (2, n) edges on the fitted lines
            keep = (np.abs(points[2:] - fit) < 1.5 / size).all(0)  # a parked car hides an edge
            if keep.all() or keep.sum() < 3:
                break
            points = points[:, keep]
        if b_r - b_l > 0.2:
            horizon = (a_l - a_r) / (b_r - b_l)
            if 0.05 < horizon < top + 0.02:
                return Camera(horizon, a_l + b_l * horizon, b_l, b_r, max(top - horizon, 0.01))
    cols = np.flatnonzero(road[top_row])
    return Camera(top - 0.02, (cols.mean() + 0.5) / size, -1.0, 1.0, 0.02)


_LIGHT = {"day": (1.0, 1.0, 0.97), "dusk": (1.0, 0.78, 0.62), "night": (0.3, 0.32, 0.42)}
_SKIES = {"night": ((0.02, 0.03, 0.09), (0.13, 0.12, 0.22)),  # (zenith, horizon)
          "dusk": ((0.22, 0.25, 0.52), (0.98, 0.62, 0.36)),
          "overcast": ((0.60, 0.62, 0.66), (0.78, 0.79, 0.80)),
          "day": ((0.28, 0.50, 0.86), (0.70, 0.82, 0.95))}
_FOG = {"day": (0.80, 0.82, 0.84), "dusk": (0.74, 0.63, 0.56), "night": (0.16, 0.16, 0.20)}
_LAMP_RGB = np.array((255.0, 217.0, 140.0), np.float32)[:, None, None]


def _sky_colours(style: Style) -> tuple[np.ndarray, np.ndarray]:
    """(zenith, horizon) colours of the sky, 0..255."""
    key = "overcast" if style.overcast and style.time_of_day == "day" else style.time_of_day
    return tuple(np.array(rgb, np.float32) * np.float32(255) for rgb in _SKIES[key])


def _fog_colour(style: Style) -> np.ndarray:
    """0..255; a light haze takes the colour of the sky at the horizon."""
    if style.fog_density < FOGGY_DENSITY:
        return _sky_colours(style)[1]
    return np.array(_FOG[style.time_of_day], np.float32) * np.float32(255)


_ALBEDO = np.full((256, 3), 0.5)  # materials whose colour no style changes
for _m, _rgb in {POLE: (0.42, 0.43, 0.45), FENCE: (0.52, 0.44, 0.36), TRAFFIC_LIGHT: 0.1,
                 M_CAR_GLASS: 0.1, M_PLATE: 0.8, M_TYRE: 0.05, M_TAIL: (0.7, 0.06, 0.05),
                 M_HEAD: (0.85, 0.85, 0.8), M_TROUSERS: (0.12, 0.12, 0.2),
                 M_TROUSERS + 1: (0.5, 0.42, 0.3), M_SIGN_FACE: 0.92, M_SIGN: (0.10, 0.25, 0.75),
                 M_SIGN + 1: (0.85, 0.10, 0.10), M_SIGN + 2: (0.95, 0.82, 0.10), M_BULB: 0.15,
                 M_BULB + 1: 0.15, M_BULB + 2: 0.15}.items():
    _ALBEDO[_m] = _rgb
_ALBEDO[M_SKIN:M_SKIN + 3] = _SKINS
_EMISSION = {}  # (3, 256) light that materials give off after dark, 0..255
for _time, _window in (("dusk", 0.5), ("night", 0.9)):
    _e = np.zeros((256, 3))
    _e[M_LIT] = np.array((1.0, 0.78, 0.42)) * _window
    _e[M_TAIL], _e[M_HEAD] = (0.9, 0.05, 0.03), (1.0, 0.95, 0.8)
    _e[M_BULB:M_BULB + 3] = (1.0, 0.1, 0.05), (1.0, 0.7, 0.05), (0.1, 1.0, 0.4)
    _EMISSION[_time] = np.ascontiguousarray((_e * 255.0).T, dtype=np.float32)


def _albedo_table(style: Style) -> np.ndarray:
    """(3, 256) albedo per material under the style's light, in 0..255 units."""
    albedo = _ALBEDO.copy()
    albedo[ROAD] = np.array(style.road_rgb) * (0.6 if style.wet_road else 1.0)
    albedo[SIDEWALK], albedo[TERRAIN] = style.sidewalk_rgb, style.terrain_rgb
    albedo[VEGETATION] = style.vegetation_rgb
    night = style.time_of_day == "night"
    albedo[M_GLASS] = albedo[M_LIT] = (0.05, 0.05, 0.07) if night else (0.2, 0.25, 0.32)
    for first, colours in ((M_HOUSE, style.building_rgbs), (M_CAR, style.car_rgbs),
                           (M_SHIRT, style.shirt_rgbs)):
        albedo[first:first + len(colours)] = colours
    light = np.array(_LIGHT[style.time_of_day]) * style.exposure * (0.85 if style.overcast else 1.0)
    return np.ascontiguousarray((albedo * (light * 255.0)).T, dtype=np.float32)


def render_photo(label: np.ndarray, style: Style, rng: np.random.Generator) -> np.ndarray:
    """Render an (H, W) train-id label map (H == W) as an (H, W, 3) uint8 photo in `style`.

    Every pixel gets a material (a class, or a part: window, tail light, shirt) and a brightness
    `gain` (textures, shading); the photo is the materials' lit colours times the gain, plus lights
    after dark, then fog and sensor noise.
    """
    if label.ndim != 2 or label.shape[0] != label.shape[1] or label.dtype != np.uint8:
        raise ValueError(f"label must be a square (H, W) uint8 map, got {label.shape} {label.dtype}")
    size, f32 = label.shape[0], np.float32
    cuts = rng.integers(0, size, (5, 2)).tolist()
    fine, medium, coarse, uniform = _noise_bank(size)
    n_fine, n_medium, n_coarse, n_sensor, n_uniform = (t[y:y + size, x:x + size] for t, (y, x) in
                                                       zip((fine, medium, coarse, fine, uniform), cuts))
    cam = estimate_camera(label)
    ys = ((np.arange(size, dtype=f32) + 0.5) / size)[:, None]  # (H, 1)
    dx = ((np.arange(size, dtype=f32) + 0.5) / size)[None, :] - f32(cam.vx)  # (1, W)
    night, lamps_on = style.time_of_day == "night", style.time_of_day != "day"

    grain = np.take(_GRAIN, label, axis=1)  # (3, H, W)
    gain = 1.0 + grain[0] * n_fine + grain[1] * n_medium + grain[2] * n_coarse  # (H, W)
    first = min(size, max(0, math.ceil(cam.horizon * size - 0.5)))  # first row below the horizon
    _texture_ground(label[first:], gain[first:], style, cam, ys[first:], dx)
    # facades parallel to the street, in perspective, and a frontal row where the street ends
    abs_dx = np.maximum(np.abs(dx), f32(1e-3))
    frontal = abs_dx < cam.s_far * _X_TYPICAL  # (1, W)
    depth_cols = np.where(frontal, f32(1.0 / cam.s_far), f32(_X_TYPICAL) / abs_dx)  # (1, W)
    material, gain = _texture_facades(label, gain, style, cam, ys, dx, frontal, depth_cols, n_uniform)
    is_fence = label == FENCE
    if is_fence.any():  # slats
        slats = np.where((dx * size / 3.0) % 1.0 < 0.4, f32(0.7), f32(1.0))
        gain = np.where(is_fence, gain * slats, gain)
    # depth for the fog: the ground's own below the horizon, else a facade's in the same column
    on_ground = ((label <= SIDEWALK) | (label == TERRAIN)) & (ys > cam.horizon)
    depth = np.where(on_ground, 1.0 / np.maximum(ys - f32(cam.horizon), f32(1e-3)), depth_cols)
    things = _OBJECTS[label]
    lamps = _paint_objects(label, things, style, rng, material, gain, depth, cam, lamps_on) \
        if things.any() else []
    if night:  # our headlights and the street lamps light the near street more than the far one
        gain *= 0.55 + 0.9 * np.clip((ys - f32(cam.horizon)) * 2.5, 0.0, 1.0)

    photo = np.take(_albedo_table(style), material, axis=1)  # (3, H, W): planar, so (H, W) maps
    photo *= gain                                            # broadcast fast
    if lamps_on:
        photo += np.take(_EMISSION[style.time_of_day], material, axis=1)
        for row, col, height in lamps:
            _lamp_glow(photo, row, col, height)
    if style.wet_road and first < size:  # a wet road mirrors the bright sky near the horizon
        sheen = np.clip(1.0 - (ys[first:] - f32(cam.horizon)) * 5.0, 0.0, 1.0)
        sheen = 0.3 * sheen * (label[first:] == ROAD)
        photo[:, first:] += sheen * _sky_colours(style)[1][:, None, None]
    is_sky = label == SKY
    sky_rows = np.flatnonzero(is_sky.any(1))
    if sky_rows.size:
        last = int(sky_rows[-1]) + 1
        sky = _sky(style, ys[:last], cam.horizon, n_coarse[:last])
        photo[:, :last] = np.where(is_sky[:last], sky, photo[:, :last])
    fog = _fog_colour(style)[:, None, None]
    transmission = portable_exp(-style.fog_density * depth).astype(f32)
    transmission = np.where(is_sky, f32(portable_exp(-style.fog_density * 2.0 / cam.s_far)),
                            np.maximum(transmission, f32(0.2)))  # keep far things faintly there
    photo -= fog
    photo *= transmission
    photo += fog + (f32(4.5 if night else 3.0) * n_sensor + f32(0.5))  # sensor noise; + 0.5 rounds
    np.clip(photo, 0.0, 255.0, out=photo)
    return np.ascontiguousarray(photo.astype(np.uint8).transpose(1, 2, 0))


def _texture_ground(ground: np.ndarray, gain: np.ndarray, style: Style, cam: Camera, ys: np.ndarray,
                    dx: np.ndarray) -> None:
    """Painted marks on the road, paving slabs and a kerb on the sidewalks: `gain` of the rows
    below the horizon, in place."""
    f32, size = np.float32, ground.shape[1]
    s_rows = np.maximum(ys - f32(cam.horizon), f32(1e-3))  # (Hg, 1): 1 / depth of the ground
    depth, lateral = 1.0 / s_rows, dx / s_rows  # (Hg, 1), (Hg, W) in camera heights
    centre = 0.5 * (cam.edge_l + cam.edge_r)
    if (ground == ROAD).any():
        half_px = 0.05 * s_rows * size + 0.5

        def mark(offset: float) -> np.ndarray:  # anti-aliased: the pixel's coverage
            return np.clip(half_px - np.abs(lateral - f32(offset)) * (s_rows * size), 0.0, 1.0)

        dashes = ((depth / f32(2.4)) % 1.0 < 0.45).astype(f32)
        edges = np.maximum(mark(cam.edge_l + 0.15), mark(cam.edge_r - 0.15))
        paint = np.maximum(mark(centre) * dashes, edges)
        if style.crosswalk_depth:
            zebra = (np.abs(depth - f32(style.crosswalk_depth)) < 0.8) & (lateral % 1.0 < 0.5)
            paint = np.maximum(paint, zebra.astype(f32))
        white = f32(0.85 / style.road_rgb[0] / (0.6 if style.wet_road else 1.0) - 1.0)
        gain *= np.where(ground == ROAD, 1.0 + white * paint, f32(1.0))
    if (ground == SIDEWALK).any():
        slab = f32(0.35)
        seams = ((lateral / slab) % 1.0 < 0.1) | ((depth / slab) % 1.0 < 0.1)
        fade = np.clip(slab * s_rows * (size / 3.0) - 0.5, 0.0, 1.0)  # no slabs where they'd alias
        kerb = np.abs(lateral - f32(centre)) < f32(0.5 * (cam.edge_r - cam.edge_l) + 0.12)
        walk = (1.0 - 0.25 * seams * fade) * np.where(kerb, f32(1.2), f32(1.0))
        gain *= np.where(ground == SIDEWALK, walk, f32(1.0))


def _texture_facades(label: np.ndarray, gain: np.ndarray, style: Style, cam: Camera, ys: np.ndarray,
                     dx: np.ndarray, frontal: np.ndarray, depth_cols: np.ndarray,
                     n_uniform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(material, gain) with houses' colours, windows (some lit after dark) and sun and shade."""
    f32, size = np.float32, label.shape[0]
    is_building = label == BUILDING
    if not is_building.any():
        return label.copy(), gain
    # window columns along each facade, storeys up it; both in perspective from the camera
    along = np.where(frontal, dx / f32(cam.s_far), depth_cols) / f32(style.window_spacing)  # (1, W)
    across = np.where(frontal, f32(cam.s_far), np.abs(dx) ** 2 / _X_TYPICAL) * style.window_spacing
    pitch_px = size * np.minimum(across, style.floor_height / depth_cols)  # (1, W) window pitch
    storey = (f32(cam.horizon) - ys) * (depth_cols / f32(style.floor_height)) \
        + f32(1.0 / style.floor_height)  # (H, W)
    window = ((along % 1.0 > 0.3) & (pitch_px >= 3.0)) & (storey % 1.0 > 0.35) & (storey > 1.0)
    # uniform noise as a table of random numbers: each house's colour (a house is five window
    # columns wide), and which windows are lit; the two sides of the street differ
    cell = (np.floor(along).astype(np.intp) + np.where(dx > 0, 7, 0)) % size  # (1, W)
    house = M_HOUSE + (n_uniform[0, cell // 5] * len(style.building_rgbs)).astype(np.uint8)
    facade = np.where(window, np.uint8(M_GLASS), house)
    if style.time_of_day != "day":
        lit = n_uniform[np.floor(storey).astype(np.intp) % size, cell] < style.lit_windows
        facade = np.where(window & lit, np.uint8(M_LIT), facade)
    # far facades read darker where their windows blur into the wall; sunlit and shaded sides
    shade = np.where(pitch_px < 3.0, f32(0.85), f32(1.0))
    if style.time_of_day == "day" and not style.overcast:
        sunlit = np.where(np.sign(dx) == style.sun_side, f32(1.0), f32(0.7))
        shade = shade * np.where(frontal, f32(0.85), sunlit)
    return np.where(is_building, facade, label), np.where(is_building, gain * shade, gain)


def _sky(style: Style, ys: np.ndarray, horizon: float, n_coarse: np.ndarray) -> np.ndarray:
    """(3, rows, W) sky: a gradient from the horizon up, with clouds by day; 0..255."""
    zenith, at_horizon = (c[:, None, None] for c in _sky_colours(style))
    t = portable_power(np.clip((horizon - ys) / max(horizon, 0.05), 0.0, 1.0), 0.7).astype(np.float32)  # (rows, 1)
    sky = at_horizon + t * (zenith - at_horizon)  # (3, rows, 1)
    if style.time_of_day == "day":  # soft clouds: white when clear, darker when overcast
        cloud = np.clip(n_coarse - 0.4, 0.0, 1.0) * np.float32(0.6)
        return sky + cloud * (np.float32(242.0 if not style.overcast else 128.0) - sky)
    return np.broadcast_to(sky, (3, *n_coarse.shape))


def _paint_objects(label: np.ndarray, things: np.ndarray, style: Style, rng: np.random.Generator,
                   material: np.ndarray, gain: np.ndarray, depth: np.ndarray, cam: Camera,
                   lamps_on: bool) -> list[tuple[int, int, int]]:
    """Cars, people, poles, signs and traffic lights: their parts, depth and shadows (in place).

    Returns the street lamps (row, column, pole height in pixels) that light up after dark.
    """
    size, horizon = label.shape[0], cam.horizon
    parts, count = measure.label(things, background=0, connectivity=1, return_num=True)
    r0, r1, c0, c1 = np.array([(b[0].start, b[0].stop, b[1].start, b[1].stop)
                               for b in ndimage.find_objects(parts)]).T  # boxes, (count,) each
    picks = rng.random((count, 3))  # per thing: colour, clothes and bulb choices
    pix = np.flatnonzero(parts)  # every object pixel, processed together
    comp = parts.ravel()[pix] - 1
    cls = label.ravel()[pix]
    rows, cols = np.divmod(pix, size)
    v = (rows - r0[comp] + 0.5) / (r1 - r0)[comp]  # position inside the thing's box, 0..1
    u = (cols - c0[comp] + 0.5) / (c1 - c0)[comp]
    kind = np.zeros(count, np.uint8)  # the class of each thing
    kind[comp] = cls
    present = set(kind.tolist())

    def pick(column: int, n: int) -> np.ndarray:  # a random choice among n, per thing
        return (picks[comp, column] * n).astype(np.int64)

    mat = cls.copy()  # poles and traffic-light boxes keep their class's own material
    if CAR in present:  # from behind: right of the centre line they drive away, left they come on
        centre = 0.5 * (cam.edge_l + cam.edge_r)
        towards = ((c0 + c1) / (2 * size) - cam.vx < centre * (r1 / size - horizon))[comp]
        body = np.where(v > 0.82, M_TYRE, M_CAR + pick(0, len(style.car_rgbs)))
        body = np.where((v > 0.62) & (v < 0.72) & (u > 0.38) & (u < 0.62), M_PLATE, body)
        lamp = (v > 0.46) & (v < 0.6) & ((u < 0.16) | (u > 0.84))
        body = np.where(lamp, np.where(towards, M_HEAD, M_TAIL), body)
        body = np.where((v > 0.08) & (v < 0.4) & (u > 0.18) & (u < 0.82), M_CAR_GLASS, body)
        mat = np.where(cls == CAR, body, mat)
    if PERSON in present:
        clothes = np.where(v < 0.56, M_SHIRT + pick(1, len(style.shirt_rgbs)), M_TROUSERS + pick(2, 2))
        mat = np.where(cls == PERSON, np.where(v < 0.16, M_SKIN + pick(0, 3), clothes), mat)
    if TRAFFIC_SIGN in present:
        face = (np.abs(u - 0.5) < 0.25) & (np.abs(v - 0.5) < 0.25) & ((r1 - r0)[comp] > 3)
        mat = np.where(cls == TRAFFIC_SIGN, np.where(face, M_SIGN_FACE, M_SIGN + pick(0, 3)), mat)
    if TRAFFIC_LIGHT in present:
        bulb = pick(0, 3)  # red, amber or green: top, middle or bottom
        on = (cls == TRAFFIC_LIGHT) & (np.abs(v - 0.2 - 0.3 * bulb) < 0.12)
        mat = np.where(on, M_BULB + bulb, mat)
    material.ravel()[pix] = mat
    if CAR in present:
        gain.ravel()[pix] *= np.where(cls == CAR, 0.85 + 0.3 * (1.0 - v), 1.0)  # roofs catch the sky
    depth.ravel()[pix] = 1.0 / np.maximum(r1[comp] / size - horizon, 1e-3)

    dim = 0.45 if style.time_of_day == "day" and not style.overcast else 0.7
    lamps = []
    for k in np.flatnonzero((kind == CAR) | ((kind == POLE) & lamps_on)).tolist():
        top, bottom, left, right = int(r0[k]), int(r1[k]), int(c0[k]), int(c1[k])
        if kind[k] == CAR:  # the shadow under the car, on the road or sidewalk
            below = slice(bottom, min(size, bottom + max(1, (bottom - top) // 8)))
            gain[below, left:right] *= np.where(label[below, left:right] <= SIDEWALK, dim, 1.0)
        elif bottom - top >= 3:  # a street lamp hangs at the end of the arm, away from the mast
            mast = int((parts[top:bottom, left:right] == k + 1).sum(0).argmax())
            lamps.append((top, right - 1 if mast < (right - left) / 2 else left, bottom - top))
    return lamps


def _lamp_glow(photo: np.ndarray, row: int, col: int, height: int) -> None:
    """Add to a (3, H, W) photo the halo of a street lamp at (row, col) on a pole `height` px tall."""
    size = photo.shape[1]
    radius = max(1.5, 0.18 * height)
    r0, r1 = max(0, int(row - 3 * radius)), min(size, int(row + 3 * radius) + 1)
    c0, c1 = max(0, int(col - 3 * radius)), min(size, int(col + 3 * radius) + 1)
    glow_y = portable_exp(-((np.arange(r0, r1, dtype=np.float32) - row) / radius) ** 2).astype(np.float32)[:, None]
    glow_x = portable_exp(-((np.arange(c0, c1, dtype=np.float32) - col) / radius) ** 2).astype(np.float32)  # separable
    photo[:, r0:r1, c0:c1] += (glow_y * glow_x) * _LAMP_RGB
