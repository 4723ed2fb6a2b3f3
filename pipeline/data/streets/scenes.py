"""The embedded data set: procedural Cityscapes-like street scenes (label map, photo, attributes).

A pinhole camera one camera-height above a flat street, so every size follows from depth. The
same (seed, index, size, styles) gives the same bytes on every x86-64 machine: transcendental
functions come from render.py's portable ones, never from numpy's SIMD kernels or libm.
"""
from __future__ import annotations

import logging
import math
import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.io import atomic_dir
from pipeline.data.palette import CLASS_NAMES, NUM_CLASSES, ids_to_colour
from pipeline.data.streets.render import (BUILDING, CAR, FENCE, FOGGY_DENSITY, PERSON, POLE, ROAD,
                                          SIDEWALK, SKY, TERRAIN, TRAFFIC_LIGHT, TRAFFIC_SIGN,
                                          VEGETATION, RGB, Style, draw_poisson, portable_exp, portable_log,
                                          render_photo)

__all__ = ["ATTRIBUTES", "STYLE_SETS", "Scene", "Style", "render_scene", "render_photo", "sample_style",
           "write_dataset", "benchmark", "contact_sheet", "class_coverage"]

log = logging.getLogger(__name__)

ATTRIBUTES: tuple[str, ...] = ("Night", "Dusk", "Foggy", "Overcast", "Wet_Road", "Has_Car",
                               "Many_Cars", "Has_Person", "Has_Tree", "Has_Traffic_Sign")
MANY_CARS = 4  # visible cars from which an image has Many_Cars


@dataclass(frozen=True)
class Scene:
    label: np.ndarray  # (H, W) uint8 train ids
    photo: np.ndarray  # (H, W, 3) uint8
    attrs: dict[str, int]  # name -> 1 / -1, keys == ATTRIBUTES


# Which looks a data set draws. "day" mirrors the papers' Cityscapes runs: daylight streets, sun or
# overcast, dry or wet, whose global look the label map largely predicts. "all" adds dusk, night
# and fog: one label map then has many plausible photos (BicycleGAN's task). "day_night" draws each
# scene by day (exactly as "day" draws it) or by night, half and half, without dusk or fog: the two
# photo domains of the unpaired day -> night task (CycleGAN), with no third look to filter away.
STYLE_SETS: tuple[str, ...] = ("day", "all", "day_night")

# Base colours that styles jitter. As in Cityscapes, classes share colours: grey road, sidewalks
# and most facades; green trees and grass; dark cars and dark shadows. What tells them apart is
# texture and context (lane marks, kerbs and paving, windows, foliage), not the mean colour.
_BUILDING_BASES = ((0.50, 0.50, 0.50), (0.56, 0.55, 0.52), (0.42, 0.42, 0.44), (0.60, 0.59, 0.57),
                   (0.54, 0.50, 0.45), (0.52, 0.44, 0.40), (0.38, 0.39, 0.41), (0.58, 0.55, 0.48))
_CAR_BASES = ((0.07, 0.07, 0.08), (0.16, 0.17, 0.19), (0.10, 0.12, 0.24), (0.58, 0.60, 0.62),
              (0.84, 0.84, 0.84), (0.56, 0.08, 0.08), (0.12, 0.20, 0.14))
_SIDEWALK_BASES = ((0.46, 0.46, 0.45), (0.52, 0.50, 0.47), (0.40, 0.40, 0.41))


def _jitter(rgb: RGB, noise: np.ndarray) -> RGB:
    return tuple(min(max(c + d, 0.0), 1.0) for c, d in zip(rgb, noise.tolist()))


def sample_style(rng: np.random.Generator, styles: str = "day") -> Style:
    """Draw a style from the set `styles` (see STYLE_SETS): time of day, overcast, fog, wet road,
    and the palettes. Both sets make the same number of draws, so a layout never depends on the set."""
    if styles not in STYLE_SETS:
        raise ValueError(f"styles must be one of {STYLE_SETS}, got {styles!r}")
    u = rng.random(16).tolist()  # one draw for the scalar choices: faster than many calls
    if styles == "day":
        time_of_day, overcast, foggy = "day", u[1] < 0.4, False
    elif styles == "day_night":  # a day scene is the "day" set's scene of the same index
        time_of_day = "day" if u[0] < 0.5 else "night"
        overcast, foggy = time_of_day == "day" and u[1] < 0.4, False
    else:
        time_of_day = "day" if u[0] < 0.55 else "dusk" if u[0] < 0.75 else "night"
        overcast, foggy = time_of_day != "night" and u[1] < 0.3, u[2] < 0.2
    # a little haze always, so that depth reads even without fog
    fog_density = 0.05 + 0.07 * u[3] if foggy else 0.002 + 0.008 * u[3]
    wet_road = u[4] < (0.5 if overcast or foggy else 0.2)
    low, high = {"day": (0.9, 1.1), "dusk": (0.62, 0.75), "night": (0.85, 1.1)}[time_of_day]
    grey = 0.34 + 0.18 * u[6]
    houses = rng.permutation(len(_BUILDING_BASES))[:4].tolist()
    cars = rng.permutation(len(_CAR_BASES))[:3 + int(u[7] * 3)].tolist()
    jitter = rng.uniform(-1.0, 1.0, (12, 3))
    return Style(
        time_of_day=time_of_day, overcast=overcast, fog_density=fog_density, wet_road=wet_road,
        exposure=low + (high - low) * u[5], sun_side=1 if u[8] < 0.5 else -1,
        road_rgb=(grey, grey, grey * (0.96 + 0.1 * u[9])),
        sidewalk_rgb=_jitter(_SIDEWALK_BASES[int(u[10] * 3)], 0.06 * jitter[0]),
        vegetation_rgb=_jitter((0.24, 0.33, 0.13), jitter[1] * (0.06, 0.06, 0.04)),
        terrain_rgb=_jitter((0.25, 0.34, 0.14), jitter[2] * (0.06, 0.06, 0.04)),
        building_rgbs=tuple(_jitter(_BUILDING_BASES[i], 0.05 * j)
                            for i, j in zip(houses, jitter[3:7])),
        car_rgbs=tuple(_jitter(_CAR_BASES[i], 0.03 * j) for i, j in zip(cars, jitter[7:12])),
        shirt_rgbs=tuple(tuple(row) for row in rng.uniform(0.1, 0.9, (8, 3)).tolist()),
        window_spacing=0.9 + 0.6 * u[11], floor_height=1.1 + 0.3 * u[12],
        lit_windows=0.25 + 0.35 * u[13], crosswalk_depth=3.0 + 6.0 * u[15] if u[14] < 0.3 else 0.0,
    )


class _Canvas:
    """The label map being drawn, and which car owns each car pixel (to count the visible ones).

    World units are camera heights: lateral x, height y above the ground, depth z > 0.
    """

    def __init__(self, size: int, horizon: float, vx: float):
        self.size, self.horizon, self.vx = size, horizon, vx
        self.label = np.full((size, size), SKY, np.uint8)
        self.car_id = np.zeros((size, size), np.uint16)
        self.n_cars = 0

    def box(self, cls: int, x0: float, x1: float, y0: float, y1: float, z: float,
            thin: bool = False) -> None:
        """Fill the upright world box [x0, x1] x [y0, y1] at depth z (pixels whose centres are in it).

        A thin box (a pole) keeps at least one pixel across, so that it never vanishes.
        """
        n, s = self.size, self.size / z
        left, ground = self.vx * n - 0.5, (self.horizon + 1.0 / z) * n - 0.5
        c0, c1 = math.ceil(left + x0 * s), math.ceil(left + x1 * s)
        r0, r1 = math.ceil(ground - y1 * s), math.ceil(ground - y0 * s)
        if thin and c1 <= c0:
            c0 = math.floor(left + 0.5 + 0.5 * (x0 + x1) * s)
            c1 = c0 + 1
        if thin and r1 <= r0:
            r0 = math.floor(ground + 0.5 - 0.5 * (y0 + y1) * s)
            r1 = r0 + 1
        c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, n), min(r1, n)
        if c1 > c0 and r1 > r0:
            self.label[r0:r1, c0:c1] = cls
            if cls == CAR:
                self.car_id[r0:r1, c0:c1] = self.n_cars

    def stamp(self, cls: int, mask: np.ndarray, x0: float, x1: float, y0: float, y1: float,
              z: float) -> None:
        """Fill where a boolean template, stretched over the world box [x0, x1] x [y0, y1], is set."""
        n, s = self.size, self.size / z
        left, ground = self.vx * n, (self.horizon + 1.0 / z) * n
        px0, px1, py0, py1 = left + x0 * s, left + x1 * s, ground - y1 * s, ground - y0 * s
        c0, c1 = max(math.ceil(px0 - 0.5), 0), min(math.ceil(px1 - 0.5), n)
        r0, r1 = max(math.ceil(py0 - 0.5), 0), min(math.ceil(py1 - 0.5), n)
        if c1 <= c0 or r1 <= r0:
            return
        rows = ((np.arange(r0, r1) + (0.5 - py0)) * (mask.shape[0] / (py1 - py0))).astype(np.intp)
        cols = ((np.arange(c0, c1) + (0.5 - px0)) * (mask.shape[1] / (px1 - px0))).astype(np.intp)
        self.label[r0:r1, c0:c1][mask[rows[:, None], cols]] = cls


def _crown_mask(n: int = 256) -> np.ndarray:
    """A tree crown, three overlapping ellipses, on an n x n grid over its box x, y in [-1.1, 1.1]."""
    xy = (np.arange(n) + 0.5) / n * 2.2 - 1.1
    x, y = xy[None, :], xy[::-1, None]  # rows run downwards, heights upwards
    blobs = ((0.0, 0.0, 1.0, 1.1), (-0.5, -0.3, 0.6, 0.6), (0.5, -0.25, 0.6, 0.6))
    inside = [((x - bx) / rx) ** 2 + ((y - by) / ry) ** 2 <= 1.0 for bx, by, rx, ry in blobs]
    return np.any(inside, axis=0)


_CROWN = _crown_mask()


def _draw_label(rng: np.random.Generator, size: int) -> tuple[np.ndarray, int]:
    """Lay out one street and rasterise it; returns the label map and the number of visible cars.

    The random draws never depend on `size`, so one (seed, index) is the same street at any size.
    """
    horizon, vx = rng.uniform(0.36, 0.52), rng.uniform(0.35, 0.65)
    s_far = rng.uniform(0.015, 0.05)  # 1 / the depth where the street ends at a frontal row
    centre, half = rng.uniform(-0.6, 0.6), rng.uniform(1.0, 1.8)  # road centre and half width
    walks = rng.uniform(0.6, 1.3, 2).tolist()  # sidewalk widths, left and right
    built = (rng.random(2) < 0.75).tolist()  # each side: a row of buildings, or else a park
    canvas = _Canvas(size, horizon, vx)
    ys = ((np.arange(size) + 0.5) / size)[:, None]  # (H, 1)
    dx = ((np.arange(size) + 0.5) / size)[None, :] - vx  # (1, W)
    s = ys - horizon  # (H, 1): 1 / depth of the ground seen in each row

    # ground: road, sidewalks, and beyond them facade (hidden ground) or park lawn
    lateral = dx / np.where(s > 0, s, 1.0) - centre  # (H, W)
    beyond = np.where(lateral < 0, BUILDING if built[0] else TERRAIN, BUILDING if built[1] else TERRAIN)
    walk = (lateral > -half - walks[0]) & (lateral < half + walks[1])
    ground = np.where(np.abs(lateral) < half, ROAD, np.where(walk, SIDEWALK, beyond))
    label = canvas.label
    label[:] = np.where(s > s_far, ground, SKY)

    # the street ends at a frontal row of houses and tree groups, across the whole view
    widths, heights, trees = rng.uniform(2.5, 8.0, 32), rng.uniform(2.0, 8.0, 32), rng.random(32) < 0.2
    edges = np.cumsum(widths) - rng.uniform(0.0, 8.0) + (0.0 - vx) / s_far
    seg = np.minimum(np.searchsorted(edges, dx / s_far), 31)  # (1, W)
    top = horizon - s_far * (np.where(trees[seg], 0.6, 1.0) * heights[seg] - 1.0)
    label[:] = np.where((ys >= top) & (s <= s_far), np.where(trees[seg], VEGETATION, BUILDING), label)

    objects: list[tuple[float, str, tuple]] = []  # (depth, kind, parameters), drawn far to near
    park_trees: list[tuple[float, str, tuple]] = []
    fences = []
    for side, sign in ((0, -1.0), (1, 1.0)):
        kerb, outer = centre + sign * half, centre + sign * (half + walks[side])
        s_col = dx / outer  # (1, W): 1 / depth of the facade (or fence) seen in each column
        near = s_col > s_far
        lengths, storeys = rng.uniform(3.0, 10.0, 24), rng.uniform(2.5, 9.0, 24)
        seg = np.minimum(np.searchsorted(np.cumsum(lengths) - rng.uniform(0, 10), 1.0 / s_col), 23)
        if built[side]:
            top = horizon - s_col * (storeys[seg] - 1.0)
            label[:] = np.where(near & (ys >= top) & (ys < horizon + s_col), BUILDING, label)
        elif rng.random() < 0.6:  # a low fence along the park
            fences.append(near & (ys >= horizon + 0.65 * s_col) & (ys < horizon + s_col))
        # street lamps at the kerb, some carrying a sign or a traffic light; python floats from
        # here on: the drawing code does scalar arithmetic, which numpy scalars slow down
        has_poles, spacing, phase = rng.random() < 0.7, rng.uniform(6.0, 12.0), rng.random()
        for k, draws in enumerate(rng.random((8, 3)).tolist()):
            z = 2.0 + spacing * (k + phase)
            if has_poles and z < min(1.0 / s_far, 45.0):
                objects.append((z, "pole", (kerb + sign * 0.2, -sign, *draws)))
        # street trees on the outer part of the sidewalk, more likely along a park
        has_trees = rng.random() < (0.35 if built[side] else 0.8)
        spacing, phase = rng.uniform(5.0, 10.0), rng.random()
        for k, draws in enumerate(rng.random((8, 2)).tolist()):
            z = 2.5 + spacing * (k + phase)
            if has_trees and z < 1.0 / s_far:
                objects.append((z, "tree", (centre + sign * (half + 0.75 * walks[side]), *draws)))
        for d in rng.random((6, 4)).tolist():  # trees in the park, log-uniform in depth
            if not built[side]:
                z = 3.0 * _log_uniform(1.0, 0.9 / s_far / 3.0, d[0])
                park_trees.append((z, "tree", (outer + sign * (0.8 + 7.0 * d[1]), d[2], d[3])))

    # cars in lanes or parked at the kerb; people on the sidewalks, now and then crossing
    lanes = 2 if half < 1.4 else 4
    z_near, z_far = 1.1 / (1.0 - horizon), 0.85 / s_far
    placed: list[tuple[float, float]] = []
    for d in rng.random((min(draw_poisson(rng, 2.5), 8), 5)).tolist():
        if d[1] < 0.3:
            x = centre + (half - 0.45) * (1.0 if d[0] < 0.5 else -1.0)
        else:
            x = centre - half + (int(d[0] * lanes) + 0.5) * 2.0 * half / lanes
        z = _log_uniform(z_near, z_far, d[2])
        if all(abs(x - px) > 0.7 or abs(z - pz) > 2.2 for px, pz in placed):
            placed.append((x, z))
            objects.append((z, "car", (x, 0.68 + 0.12 * d[3], 0.52 + 0.14 * d[4])))
    for d in rng.random((min(draw_poisson(rng, 1.8), 8), 5)).tolist():
        sign = -1.0 if d[0] < 0.5 else 1.0
        if d[1] < 0.1:
            x = centre + (2.0 * d[2] - 1.0) * half
        else:
            x = centre + sign * (half + 0.15 + d[2] * (walks[int(sign > 0)] - 0.3))
        z = _log_uniform(z_near, z_far, d[3])
        objects.append((z, "person", (x, 0.62 + 0.14 * d[4])))

    for z, kind, params in sorted(park_trees, key=lambda o: -o[0]):
        _draw_object(canvas, kind, z, params)
    for fence in fences:
        label[fence] = FENCE
    for z, kind, params in sorted(objects, key=lambda o: -o[0]):
        reach = 2.2 / z  # the widest thing (a crown) reaches this far from its x, in image units
        if -reach < vx + params[0] / z < 1.0 + reach:
            _draw_object(canvas, kind, z, params)
    # a car pixel belongs to the last car drawn on it: count the cars that kept any pixel
    n_cars = len(set(canvas.car_id[label == CAR].tolist())) if canvas.n_cars else 0
    return label, n_cars


def _log_uniform(low: float, high: float, u: float) -> float:
    """The depth at quantile u of a log-uniform distribution on [low, high] (portable arithmetic)."""
    return low * float(portable_exp(u * portable_log(high / low)))


def _draw_object(canvas: _Canvas, kind: str, z: float, params: tuple) -> None:
    if kind == "car":  # seen from behind: body down to the wheels, and a narrower cabin
        x, width, height = params
        canvas.n_cars += 1
        canvas.box(CAR, x - width / 2, x + width / 2, 0.0, 0.6 * height, z)
        canvas.box(CAR, x - 0.4 * width, x + 0.4 * width, 0.58 * height, height, z)
    elif kind == "person":  # legs, torso, head
        x, height = params
        w = 0.34 * height
        canvas.box(PERSON, x - 0.42 * w, x + 0.42 * w, 0.0, 0.47 * height, z)
        canvas.box(PERSON, x - 0.5 * w, x + 0.5 * w, 0.45 * height, 0.87 * height, z)
        canvas.box(PERSON, x - 0.2 * w, x + 0.2 * w, 0.85 * height, height, z, thin=True)
    elif kind == "pole":  # a lamp post whose arm reaches over the road
        x, towards, r_height, r_sign, r_light = params
        top = 2.6 + 0.6 * r_height
        canvas.box(POLE, x - 0.035, x + 0.035, 0.0, top, z, thin=True)
        canvas.box(POLE, *((x, x + 0.6) if towards > 0 else (x - 0.6, x)), top - 0.05, top, z, thin=True)
        if r_light < 0.12:
            canvas.box(TRAFFIC_LIGHT, x - 0.08, x + 0.08, 1.95, 2.35, z, thin=True)
        elif r_sign < 0.3:
            canvas.box(TRAFFIC_SIGN, x - 0.17, x + 0.17, 1.6, 1.94, z, thin=True)
    elif kind == "tree":  # trunk and crown
        x, r_size, r_height = params[:3]
        r, crown = 0.7 + 0.7 * r_size, 2.4 + 1.2 * r_height
        canvas.box(VEGETATION, x - 0.06, x + 0.06, 0.0, crown, z, thin=True)
        canvas.stamp(VEGETATION, _CROWN, x - 1.1 * r, x + 1.1 * r, crown - 1.1 * r, crown + 1.1 * r, z)
    else:
        raise ValueError(f"unknown object kind {kind!r}")


def _attributes(label: np.ndarray, style: Style, n_cars: int) -> dict[str, int]:
    truth = {
        "Night": style.time_of_day == "night", "Dusk": style.time_of_day == "dusk",
        "Foggy": style.fog_density >= FOGGY_DENSITY, "Overcast": style.overcast,
        "Wet_Road": style.wet_road, "Has_Car": (label == CAR).any(), "Many_Cars": n_cars >= MANY_CARS,
        "Has_Person": (label == PERSON).any(), "Has_Tree": (label == VEGETATION).any(),
        "Has_Traffic_Sign": (label == TRAFFIC_SIGN).any(),
    }
    return {name: 1 if truth[name] else -1 for name in ATTRIBUTES}


def render_scene(seed: int, index: int, size: int, styles: str = "day") -> Scene:
    """Scene `index` of data set `seed`, `size` x `size` pixels, in a style from the set `styles`:
    the same arguments, the same bytes; the layout does not depend on `styles`."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed} index={index}")
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    # one stream, drawn from in a fixed order (layout, style, photo): spawning three costs more
    # than a 64 px photo takes to render, and the layout still never depends on how photos look
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    label, n_cars = _draw_label(rng, size)
    style = sample_style(rng, styles)
    photo = render_photo(label, style, rng)
    return Scene(label=label, photo=photo, attrs=_attributes(label, style, n_cars))


def _image_id(index: int) -> str:
    return f"{index:06d}.png"


def _write_png(array: np.ndarray, path: Path) -> None:
    # compress_level fixed and no metadata chunks: the same array always gives the same bytes
    Image.fromarray(array).save(path, format="PNG", compress_level=1)


def _write_chunk(job: tuple[Path, int, int, int, int, str]) -> list[str]:
    """Render and write images [start, stop); return their CSV rows."""
    root, start, stop, size, seed, styles = job
    rows = []
    for index in range(start, stop):
        scene = render_scene(seed, index, size, styles)
        _write_png(scene.photo, root / "photos" / _image_id(index))
        _write_png(ids_to_colour(scene.label), root / "labels" / _image_id(index))
        rows.append(",".join([_image_id(index), *(str(scene.attrs[a]) for a in ATTRIBUTES)]))
    return rows


def write_dataset(out_dir: Path, n_images: int, size: int, seed: int, workers: int = 1,
                  styles: str = "day") -> None:
    """Write photos/, labels/ (Cityscapes colours) and list_attr.csv to out_dir, atomically."""
    if n_images < 1 or workers < 1:
        raise ValueError(f"n_images and workers must be >= 1, got {n_images} and {workers}")
    if styles not in STYLE_SETS:
        raise ValueError(f"styles must be one of {STYLE_SETS}, got {styles!r}")
    out_dir = Path(out_dir)
    started = time.perf_counter()
    with atomic_dir(out_dir) as tmp:
        (tmp / "photos").mkdir()
        (tmp / "labels").mkdir()
        chunk = max(1, math.ceil(n_images / (4 * workers)))
        jobs = [(tmp, a, min(a + chunk, n_images), size, seed, styles) for a in range(0, n_images, chunk)]
        if workers == 1:
            parts = [_write_chunk(job) for job in jobs]
        else:  # spawn: workers start clean, whatever threads the parent runs
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                parts = pool.map(_write_chunk, jobs)
        lines = [",".join(["image_id", *ATTRIBUTES])] + [row for part in parts for row in part]
        (tmp / "list_attr.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    log.info("wrote %d street scenes (%d px) to %s in %.1f s", n_images, size, out_dir,
             time.perf_counter() - started)


def benchmark(size: int, n_images: int, seed: int = 0) -> float:
    """Rendering speed (label + photo + attributes) on one core, in images per CPU second."""
    render_scene(seed, 0, size)  # builds the noise bank for this size once
    # CPU time of this process: the rate one core gives, even on a machine busy with other work
    started = time.process_time()
    for index in range(n_images):
        render_scene(seed, index, size)
    rate = n_images / max(time.process_time() - started, 1e-9)
    log.info("streets at %d px: %.0f images/s", size, rate)
    return rate


def class_coverage(labels: np.ndarray) -> dict[str, float]:
    """Fraction of the pixels of an (N, H, W) stack of label maps in each class, by class name."""
    counts = np.bincount(np.asarray(labels, np.uint8).ravel(), minlength=256)[:NUM_CLASSES]
    return {name: float(c) / max(labels.size, 1) for name, c in zip(CLASS_NAMES, counts)}


def contact_sheet(scenes: list[Scene], path: Path, columns: int = 4) -> None:
    """Write a PNG grid of label | photo pairs for people to look at."""
    if not scenes:
        raise ValueError("contact_sheet needs at least one scene")
    size = scenes[0].label.shape[0]
    gap = max(2, size // 32)
    cell_w, cell_h = 2 * size + 3 * gap, size + 2 * gap
    rows = math.ceil(len(scenes) / columns)
    sheet = np.full((rows * cell_h, columns * cell_w, 3), 255, np.uint8)
    for i, scene in enumerate(scenes):
        if scene.label.shape != (size, size):
            raise ValueError(f"scenes must share one size, got {scene.label.shape} and {size}")
        top, left = (i // columns) * cell_h + gap, (i % columns) * cell_w + gap
        sheet[top:top + size, left:left + size] = ids_to_colour(scene.label)
        sheet[top:top + size, left + size + gap:left + 2 * size + gap] = scene.photo
    _write_png(sheet, Path(path))
