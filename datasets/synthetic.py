"""Synthetic dynamic-scene videos: a deterministic, resolution-independent forward-driving benchmark.

A camera drives along an endless winding road. The scene has the properties of real long videos
that toy data sets usually lack:

* parallax: a sky with drifting clouds and a sun glow, far mountains and nearer hills that scroll
  only with the heading, and a ground plane (road, dashes, shoulders, field bands) whose texture
  streams past with the forward speed;
* new content: trees, bushes, rocks and poles placed in world coordinates along the road appear
  small near the horizon, grow as the camera approaches and leave the frame at the sides;
* camera dynamics: smoothly varying speed, turns, lateral sway, a gentle bob and a bank into turns;
* slow global change: time of day, season palette, haze and cloud cover drift over hundreds to
  thousands of frames, so long-range colour statistics differ from short-range ones.

Everything is a closed-form function of the frame index: the camera state is made of sums of
sinusoids with seed-random phases (position is their analytic integral), and objects come from a
counter-based hash of their slot index along the road. Any frame can therefore be rendered without
simulating earlier ones, and ``render_video(start_frame=s)`` returns exactly the frames that a
render from 0 would. Rendering is analytic in normalised screen coordinates with box-filtered
(area-averaged) edges and stripes, so one scene looks the same at every resolution.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

__all__ = ["SceneConfig", "camera_state", "render_video"]

_MASK64 = (1 << 64) - 1
_LUT_SIZE = 4096  # samples of the periodic mountain and hill profiles over 2*pi
_CLOUD_SHAPE = (64, 256)  # periodic cloud texture (elevation x azimuth)
_CHUNK_PIXELS = 1 << 15  # pixels rendered per batch of frames (keeps arrays in cache)


@dataclasses.dataclass(frozen=True)
class SceneConfig:
    """Tunable scene parameters. Lengths are in metres, times in frames, angles in radians."""

    speed: float = 0.5  # mean forward speed per frame
    speed_variation: float = 0.45  # peak relative speed change (must stay < 1)
    turn_amount: float = 1.0  # scale of all heading changes
    object_density: float = 0.55  # probability that an object slot holds an object
    slot_spacing: float = 3.0  # distance between object slots along the road
    pole_every: int = 12  # every n-th slot holds a roadside pole
    view_distance: float = 160.0  # objects farther than this are not drawn (they fade in)
    light_period: tuple[float, float] = (800.0, 2000.0)  # slow time-of-day period range
    short_period: tuple[float, float] = (200.0, 600.0)  # faster lighting/haze/cloud period range
    camera_height: float = 1.5
    road_width: float = 4.0
    focal: float = 1.0  # focal length in units of the shorter image side
    horizon: float = -0.1  # mean horizon height (screen units, +down, 0 = image centre)
    bob: float = 0.005  # vertical camera bob amplitude (screen units)
    max_roll: float = 0.03  # bound of the horizon tilt


@dataclasses.dataclass(frozen=True)
class _Scene:
    """Seed-dependent constants: sinusoid parameters, palette and lookup textures."""

    s0: float
    speed_terms: np.ndarray  # [k, 3] relative amplitude, period (frames), phase
    heading_terms: np.ndarray  # [k, 3] amplitude (rad), wavelength (m), phase
    sway_terms: np.ndarray  # [k, 3] lateral offset amplitude (m), wavelength (m), phase
    bob_terms: np.ndarray  # [k, 3] amplitude (screen), wavelength (m), phase
    roll_terms: np.ndarray  # [k, 3] amplitude (rad), wavelength (m), phase
    slow_terms: np.ndarray  # [5, 2, 3] light/season/haze/clouds/wind: amplitude, period, phase
    sun_azimuth: float
    mountains: np.ndarray  # [_LUT_SIZE + 1] height profile over azimuth (screen units)
    hills: np.ndarray  # [_LUT_SIZE + 1]
    clouds: np.ndarray  # [_CLOUD_SHAPE] values in [0, 1], periodic
    palette: dict[str, np.ndarray]
    hash_key: int


def _terms(rng: np.random.Generator, amps, periods) -> np.ndarray:
    """Rows of (amplitude, period, phase) with periods drawn uniformly from the given ranges."""
    rows = [(a, rng.uniform(*p), rng.uniform(0, 2 * np.pi)) for a, p in zip(amps, periods)]
    return np.array(rows, dtype=np.float64)


def _periodic_profile(rng: np.random.Generator, harmonics: int, decay: float) -> np.ndarray:
    """Random periodic 1-D profile over [0, 2pi] (closed LUT), normalised to [0, 1]."""
    k = np.arange(1, harmonics + 1)
    amp = k**-decay * rng.uniform(0.5, 1.0, harmonics)
    phase = rng.uniform(0, 2 * np.pi, harmonics)
    a = np.linspace(0, 2 * np.pi, _LUT_SIZE + 1)
    h = (amp[:, None] * np.sin(k[:, None] * a + phase[:, None])).sum(0)
    return ((h - h.min()) / (h.max() - h.min())).astype(np.float32)


def _cloud_texture(rng: np.random.Generator) -> np.ndarray:
    """Periodic fractal noise (spectrum ~1/f^2), normalised to [0, 1]."""
    fy = np.fft.fftfreq(_CLOUD_SHAPE[0])[:, None] * _CLOUD_SHAPE[0]
    fx = np.fft.fftfreq(_CLOUD_SHAPE[1])[None, :] * _CLOUD_SHAPE[1] / 4
    f = np.sqrt(fx**2 + fy**2)
    spectrum = np.where(f > 0, 1 / np.maximum(f, 1) ** 2, 0) * np.exp(-f / 12)
    noise = rng.standard_normal(_CLOUD_SHAPE) + 1j * rng.standard_normal(_CLOUD_SHAPE)
    tex = np.fft.ifft2(noise * spectrum).real
    return ((tex - tex.min()) / (tex.max() - tex.min())).astype(np.float32)


def _jitter(rng: np.random.Generator, rgb, amount: float = 0.06) -> np.ndarray:
    return np.clip(np.asarray(rgb) + rng.uniform(-amount, amount, 3), 0, 1)


@functools.lru_cache(maxsize=32)
def _scene(seed: int, cfg: SceneConfig) -> _Scene:
    rng = np.random.default_rng([seed & _MASK64, 0x5CE7E])
    v = cfg.speed_variation
    t = cfg.turn_amount
    p_long, p_short = cfg.light_period, cfg.short_period
    palette = {
        "day_top": _jitter(rng, (0.22, 0.42, 0.82)),
        "day_horizon": _jitter(rng, (0.70, 0.80, 0.92)),
        "dusk_top": _jitter(rng, (0.20, 0.17, 0.38)),
        "dusk_horizon": _jitter(rng, (0.92, 0.55, 0.32)),
        "day_light": np.array([1.0, 1.0, 1.0]),
        "dusk_light": _jitter(rng, (0.70, 0.45, 0.36), 0.04),
        "summer": _jitter(rng, (0.30, 0.52, 0.18)),
        "autumn": _jitter(rng, (0.62, 0.50, 0.20)),
        "road": _jitter(rng, (0.36, 0.35, 0.35), 0.03),
        "shoulder": _jitter(rng, (0.50, 0.46, 0.39), 0.04),
        "mountain": _jitter(rng, (0.38, 0.40, 0.52)),
        "hill": _jitter(rng, (0.20, 0.36, 0.18)),
        "cloud": np.array([0.97, 0.97, 0.98]),
    }
    return _Scene(
        s0=rng.uniform(0, 1e4),
        speed_terms=_terms(rng, (0.5 * v, 0.3 * v, 0.2 * v), ((300, 900), (90, 250), (40, 80))),
        heading_terms=_terms(
            rng, (2.5 * t, 0.35 * t, 0.12 * t), ((2500, 5000), (200, 400), (60, 120))
        ),
        sway_terms=_terms(rng, (0.5, 0.25), ((80, 200), (25, 50))),
        bob_terms=_terms(rng, (0.6 * cfg.bob, 0.4 * cfg.bob), ((6, 12), (2.5, 4))),
        roll_terms=_terms(rng, (0.3 * cfg.max_roll, 0.2 * cfg.max_roll), ((20, 60), (5, 10))),
        slow_terms=np.stack(
            [
                _terms(rng, (0.30, 0.12), (p_long, p_short)),  # light
                _terms(rng, (0.40, 0.10), (p_long, p_short)),  # season
                _terms(rng, (0.35, 0.15), (p_long, p_short)),  # haze
                _terms(rng, (0.30, 0.20), (p_long, p_short)),  # cloud cover
                _terms(rng, (1.0, 0.5), (p_long, p_short)),  # wind (azimuth drift rate)
            ]
        ),
        sun_azimuth=rng.uniform(0, 2 * np.pi),
        mountains=_periodic_profile(rng, 48, 1.3),
        hills=_periodic_profile(rng, 32, 1.6),
        clouds=_cloud_texture(rng),
        palette=palette,
        hash_key=int(rng.integers(1 << 62)),
    )


def _sines(terms: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Sum of amplitude * sin(2 pi x / period + phase) over the rows of ``terms``."""
    return sum(a * np.sin(2 * np.pi / p * x + phi) for a, p, phi in terms)


def _cos_sines(terms: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Derivative of ``_sines`` with respect to x."""
    return sum(a * 2 * np.pi / p * np.cos(2 * np.pi / p * x + phi) for a, p, phi in terms)


def _integral_sines(terms: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """Integral of ``_sines`` from x0 to x1 (broadcast over trailing axes)."""
    total = 0.0
    for a, p, phi in terms:
        w = 2 * np.pi / p
        total = total + a / w * (np.cos(w * x0 + phi) - np.cos(w * x1 + phi))
    return total


def camera_state(seed: int, frames: np.ndarray, config: SceneConfig | None = None) -> dict:
    """Ground-truth scene state (float64 arrays [T]) at the given frame indices.

    Keys: ``position`` (distance driven, m), ``speed`` (m/frame), ``heading`` (rad, + = right),
    ``turn_rate`` (rad/frame), ``lateral`` (offset from the road centre, m), ``horizon`` (screen
    height, + = down), ``roll`` (rad), ``light`` (0 = dusk, 1 = noon), ``season`` (0 = summer,
    1 = autumn), ``haze`` (0 = clear, 1 = hazy), ``cloud_cover`` and ``cloud_drift`` (rad).
    """
    cfg = config or SceneConfig()
    sc = _scene(seed, cfg)
    t = np.asarray(frames, dtype=np.float64)
    speed = cfg.speed * (1 + _sines(sc.speed_terms, t))
    position = sc.s0 + cfg.speed * (t + _integral_sines(sc.speed_terms, 0.0, t))
    heading = _sines(sc.heading_terms, position)
    turn_rate = _cos_sines(sc.heading_terms, position) * speed
    roll = _sines(sc.roll_terms, position) - 2.0 * turn_rate
    roll = cfg.max_roll * np.tanh(roll / cfg.max_roll)
    light, season, haze, cover, wind = sc.slow_terms
    return {
        "position": position,
        "speed": speed,
        "heading": heading,
        "turn_rate": turn_rate,
        "lateral": _sines(sc.sway_terms, position),
        "horizon": cfg.horizon + _sines(sc.bob_terms, position),
        "roll": roll,
        "light": np.clip(0.62 + _sines(light, t), 0, 1),
        "season": np.clip(0.5 + _sines(season, t), 0, 1),
        "haze": np.clip(0.5 + _sines(haze, t), 0, 1),
        "cloud_cover": np.clip(0.5 + _sines(cover, t), 0, 1),
        "cloud_drift": 2e-4 * (t + _integral_sines(wind, 0.0, t)),
    }


def _road_offset(sc: _Scene, position: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Lateral offset (m, camera frame) of the road centre at distance d ahead (small angles)."""
    heading = _sines(sc.heading_terms, position)
    return _integral_sines(sc.heading_terms, position, position + d) - d * heading


def _lerp(a, b, w):
    return a + (b - a) * w


def _pulse(x: np.ndarray, lo: float, hi: float, half: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """Fraction of the box [x - half, x + half] inside [lo, hi]; ``inv`` is 1 / (2 half)."""
    return np.clip(np.minimum(hi, x + half) - np.maximum(lo, x - half), 0, None) * inv


def _square(x: np.ndarray, period: float, half: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """Box-filtered square wave: 0 on the first and 1 on the second half of each period."""

    def integral(u):
        n = np.floor(u * np.float32(1 / period))
        return n * np.float32(period / 2) + np.maximum(u - (n + 0.5) * np.float32(period), 0)

    return (integral(x + half) - integral(x - half)) * inv


def _lut(table: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Linear interpolation of a periodic profile sampled over [0, 2pi]."""
    q = np.mod(angle * (_LUT_SIZE / (2 * np.pi)), _LUT_SIZE)
    i = np.minimum(q.astype(np.int64), _LUT_SIZE - 1)
    w = q - i
    return (table[i] * (1 - w) + table[i + 1] * w).astype(np.float32)


def _colours(sc: _Scene, st: dict) -> dict[str, np.ndarray]:
    """Per-frame palette after lighting, season and haze, channels first: [3, T, 1, 1] float32."""
    p = sc.palette
    light, season, haze = (st[k][:, None] for k in ("light", "season", "haze"))
    lit = _lerp(p["dusk_light"], p["day_light"], light)
    grey = np.array([0.78, 0.78, 0.80])
    horizon = _lerp(_lerp(p["dusk_horizon"], p["day_horizon"], light), grey * lit, 0.5 * haze)
    top = _lerp(_lerp(p["dusk_top"], p["day_top"], light), horizon, 0.35 * haze)
    out = {
        "lit": lit,
        "horizon": horizon,
        "top": top,
        "grass": _lerp(p["summer"], p["autumn"], season) * lit,
        "road": p["road"] * lit,
        "shoulder": p["shoulder"] * lit,
        "line": np.array([0.92, 0.90, 0.80]) * lit,
        "mountain": _lerp(p["mountain"] * lit, horizon, 0.45),
        "hill": _lerp(_lerp(p["hill"], p["autumn"] * 0.6, season) * lit, horizon, 0.3),
        "cloud": _lerp(p["cloud"] * lit, horizon, 0.3 * haze),
        "sun": _lerp(np.array([1.0, 0.55, 0.25]), np.array([1.0, 0.95, 0.8]), light),
    }
    return {k: v.T[:, :, None, None].astype(np.float32) for k, v in out.items()}


def _fog(d: np.ndarray, haze: np.ndarray) -> np.ndarray:
    """Aerial-perspective blend weight towards the horizon colour at distance d."""
    return 1 - np.exp(-d / (250 - 190 * haze))


_HILL_TOP = 0.17  # highest mountain top above the horizon (screen units)


class _Screen:
    """Screen geometry of a batch of frames: pixel centres in screen units (shorter side = 1,
    origin at the image centre, y down), the roll, and the row bands each layer can touch."""

    def __init__(self, cfg: SceneConfig, st: dict, height: int, width: int):
        f32 = np.float32
        self.height, self.width = height, width
        self.s = float(min(height, width))  # pixels per screen unit
        self.px = 1 / self.s
        self.x = ((np.arange(width) + 0.5 - width / 2) / self.s).astype(f32)
        self.y = ((np.arange(height) + 0.5 - height / 2) / self.s).astype(f32)
        cos, sin = np.cos(st["roll"]), np.sin(st["roll"])
        c, s = cos.astype(f32)[:, None, None], sin.astype(f32)[:, None, None]
        self.xcos, self.xsin = self.x * c, self.x * s  # [T, 1, W]
        self.ycos, self.ysin = self.y[:, None] * c, self.y[:, None] * s  # [T, H, 1]
        self.horizon = st["horizon"].astype(f32)[:, None, None]
        # A row holds sky or ground only near the tilted horizon line (with a pixel of margin).
        spread = abs(float(self.x[0])) * np.abs(sin)
        lo = ((st["horizon"] - spread - self.px) / cos).min()
        hi = ((st["horizon"] + spread + self.px) / cos).max()
        hill_lo = ((st["horizon"] - spread - self.px - _HILL_TOP) / cos).min()
        self.sky_rows = int(np.searchsorted(self.y, hi, side="right"))
        self.ground_start = int(np.searchsorted(self.y, lo))
        self.hill_start = int(np.searchsorted(self.y, hill_lo))


def _render_sky(sc: _Scene, cfg: SceneConfig, st: dict, col: dict, scr: _Screen, out) -> None:
    """Sky gradient, sun glow, clouds, mountains and hills on the top rows of ``out``."""
    f32 = np.float32
    rows = slice(0, scr.sky_rows)
    elev = scr.horizon - scr.y[rows, None]  # [T, R, 1]; smooth content ignores the roll
    azimuth = scr.x / f32(cfg.focal)  # [W], relative to the heading
    heading = st["heading"][:, None, None]
    g = np.sqrt(np.clip(elev * f32(1.8), 0, 1))
    sky = _lerp(col["horizon"], col["top"], g)

    light = st["light"][:, None, None]
    sun_az = (np.mod(heading - sc.sun_azimuth + np.pi, 2 * np.pi) - np.pi).astype(f32)
    glow_az = np.exp(-12 * (sun_az + azimuth) ** 2)  # [T, 1, W]
    glow_el = np.exp(-12 * (elev - (0.45 * light - 0.05).astype(f32)) ** 2)
    glow_el *= (0.8 * (1.1 - light)).astype(f32)
    sky = sky + col["sun"] * (glow_el * glow_az)  # [3, T, R, W]

    # Clouds: a periodic texture on a cylinder around the camera, compressed towards the horizon.
    ch, cw = _CLOUD_SHAPE  # powers of two
    drift = np.mod(heading + st["cloud_drift"][:, None, None], 2 * np.pi).astype(f32)
    u = (drift + azimuth) * f32(cw / (2 * np.pi))
    v = f32(ch * 0.08) / (np.maximum(elev, 0) + f32(0.04))
    u0, v0 = np.floor(u), np.floor(v)
    wu, wv = u - u0, v - v0
    iu, iv = u0.astype(np.int32), v0.astype(np.int32)
    c0, c1 = iu & (cw - 1), (iu + 1) & (cw - 1)
    r0, r1 = (iv & (ch - 1)) * cw, ((iv + 1) & (ch - 1)) * cw
    tex = sc.clouds.ravel()
    dens = _lerp(_lerp(tex[r0 + c0], tex[r0 + c1], wu), _lerp(tex[r1 + c0], tex[r1 + c1], wu), wv)
    cover = st["cloud_cover"].astype(f32)[:, None, None]
    cloud = np.clip((dens - (0.85 - 0.4 * cover)) * 4, 0, 0.9) * np.clip(elev * 10, 0, 1)
    sky = _lerp(sky, col["cloud"], cloud)

    # Mountains and hills: profiles over the absolute azimuth, so they move only when turning.
    band = slice(scr.hill_start, scr.sky_rows)  # rows of ``out`` (and of ``sky``) they can reach
    elev = scr.horizon - (scr.ycos[:, band] - scr.xsin)  # [T, B, W], exact under roll
    for lut, scale, key in ((sc.mountains, _HILL_TOP - 0.01, "mountain"), (sc.hills, 0.07, "hill")):
        top = _lut(lut, heading + scr.x / cfg.focal) * f32(scale) + f32(0.005)  # [T, 1, W]
        h = top - elev
        cov = np.clip(h * f32(scr.s) + 0.5, 0, 1)
        shade = 1 - 0.25 * np.clip(h / top, 0, 1)
        sky[:, :, band] = _lerp(sky[:, :, band], col[key] * shade, cov)
    out[:, :, rows] = sky


def _render_ground(sc: _Scene, cfg: SceneConfig, st: dict, col: dict, scr: _Screen, out) -> None:
    """Road, markings, shoulders and field bands on the bottom rows of ``out``."""
    f32 = np.float32
    rows = slice(scr.ground_start, None)
    fh = cfg.focal * cfg.camera_height
    near_horizon = fh / 3000  # clamp the depth at 3 km
    dy_row = scr.ycos[:, rows] - scr.horizon  # [T, R, 1]
    dy = dy_row - scr.xsin  # [T, R, W], height below the tilted horizon
    # Depth at the centroid of the pixel's ground part (matters only on the horizon line).
    d = f32(fh) / np.maximum(np.maximum(dy, (dy + f32(scr.px / 2)) * 0.5), f32(near_horizon))
    # Road centre (screen units) per row, from the depth at the row's centre.
    d_row = fh / np.maximum(dy_row[..., 0].astype(np.float64), near_horizon)
    centre = _road_offset(sc, st["position"][:, None], d_row) * (cfg.focal / d_row)
    centre = centre.astype(f32)[..., None]
    sway = st["lateral"].astype(f32)[:, None, None]
    ray = (scr.xcos + scr.ysin[:, rows] - centre) * f32(1 / cfg.focal)  # lateral / depth
    lateral = ray * d + sway
    a_lat = np.abs(lateral)
    # Half the pixel footprint along the road (from the pixel height) and across it (pixel width
    # and the slant of the rays over the pixel height, combined in quadrature).
    half_s = d * d * f32(scr.px / fh / 2)
    half_l = np.hypot(d * f32(scr.px / cfg.focal / 2), ray * half_s)
    inv_l = 0.5 / half_l
    inv_s = 0.5 / half_s

    w = cfg.road_width / 2
    road = _pulse(a_lat, -w, w, half_l, inv_l)
    shoulder = _pulse(a_lat, w, w + 0.5, half_l, inv_l)
    lines = _pulse(a_lat, w - 0.28, w - 0.15, half_l, inv_l)

    def along(period: float) -> np.ndarray:
        phase = np.mod(st["position"], period).astype(f32)[:, None, None]
        return _square(phase + d, period, half_s, inv_s)

    bands = along(6.0)
    lines += along(9.0) * _pulse(a_lat, -0.07, 0.07, half_l, inv_l)

    ground = _lerp(col["grass"] * (0.88 + 0.16 * bands), col["shoulder"], shoulder)
    ground = _lerp(ground, col["road"] * (0.95 + 0.07 * bands), road)
    ground = _lerp(ground, col["line"], lines)
    ground = _lerp(ground, col["horizon"], _fog(d, st["haze"].astype(f32)[:, None, None]))
    # Blend over the sky only where they overlap; written as a*(1-w) + b*w so that fully covered
    # pixels do not depend on the sky behind (which other batches may not have drawn there).
    k = max(scr.sky_rows - scr.ground_start, 0)
    cov = np.clip(dy[:, :k] * f32(scr.s) + 0.5, 0, 1)
    mixed = slice(scr.ground_start, scr.ground_start + k)
    out[:, :, mixed] = out[:, :, mixed] * (1 - cov) + ground[:, :, :k] * cov
    out[:, :, scr.ground_start + k :] = ground[:, :, k:]


def _hash_uniform(key: int, k: np.ndarray, field: int) -> np.ndarray:
    """Counter-based uniform [0, 1) numbers for integer slots k (splitmix64 finaliser)."""
    z = k.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    z += np.uint64((key * 0x632BE59BD9B4E019 + field * 0xD1B54A32D192ED03) & _MASK64)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


# Primitive shapes, drawn upright (sheared with the roll) and box-filtered horizontally.
_BOX, _ELLIPSE, _TRIANGLE = 0, 1, 2
# Object kinds and their two primitives, back one first: (shape, centre height, half width, half
# height, shading) in units of the object size; a zero half width disables a primitive.
_TREE, _CONIFER, _BUSH, _POLE = 0, 1, 2, 3
_PARTS = np.array(
    [
        [[_BOX, 0.25, 0.035, 0.25, 0.1], [_ELLIPSE, 0.62, 0.3, 0.38, 0.4]],
        [[_BOX, 0.08, 0.03, 0.08, 0.1], [_TRIANGLE, 0.56, 0.21, 0.44, 0.35]],
        [[_ELLIPSE, 0.3, 1.0, 0.62, 0.35], [_BOX, 0, 0, 0, 0]],
        [[_BOX, 0.5, 0.014, 0.5, 0.0], [_BOX, 0.94, 0.11, 0.01, 0.0]],
    ],
    dtype=np.float64,
)


def _objects(sc: _Scene, cfg: SceneConfig, st: dict, col: dict, height: int, width: int):
    """Objects visible in each frame as flat primitive arrays, ordered by frame, then far to near.

    Objects live in slots every ``slot_spacing`` metres along the road; a slot's content is a hash
    of its index, so it is the same in every frame. Returns (primitives, objects on screen [T]).
    """
    n = len(st["position"])
    spacing, near, far = cfg.slot_spacing, 1.0, cfg.view_distance
    slots = int(math.ceil((far - near) / spacing)) + 2
    first = np.floor((st["position"] + near) / spacing).astype(np.int64) - 1
    k = first[:, None] + np.arange(slots)[::-1]  # [T, K], far to near
    d = (k + _hash_uniform(sc.hash_key, k, 1)) * spacing - st["position"][:, None]
    pole = k % cfg.pole_every == 0
    present = pole | (_hash_uniform(sc.hash_key, k, 0) < cfg.object_density)
    fi, si = np.nonzero(present & (d > near) & (d < far))
    k, d, pole = k[fi, si], d[fi, si], pole[fi, si]
    h = functools.partial(_hash_uniform, sc.hash_key, k)
    kind = np.where(pole, _POLE, np.digitize(h(4), [0.55, 0.8]))  # tree, conifer or bush
    side = np.where(pole | (h(2) < 0.5), 1.0, -1.0)
    lateral = side * (cfg.road_width / 2 + np.where(pole, 1.2, 0.8 + 25 * h(3) ** 2))
    size = np.choose(kind, [4 + 5 * h(5), 5 + 6 * h(5), 0.5 + 1.4 * h(5), 7.5])

    rgb = _object_colours(kind, h, fi, d, st, col)

    # Perspective projection (screen units, roll-rotated frame).
    scale = cfg.focal / d
    cx = (_road_offset(sc, st["position"][fi], d) + lateral - st["lateral"][fi]) * scale
    ground_y = st["horizon"][fi] + cfg.camera_height * scale
    parts = _PARTS[kind]  # [M, 2, 5]
    sz = (size * scale)[:, None]
    prim = {
        "frame": np.repeat(fi, 2),
        "shape": parts[..., 0].astype(np.int8).ravel(),
        "cx": np.repeat(cx, 2),
        "cy": (ground_y[:, None] - parts[..., 1] * sz).ravel(),
        "hx": (parts[..., 2] * sz).ravel(),
        "hy": (parts[..., 3] * sz).ravel(),
        "shade": parts[..., 4].ravel(),
        "alpha": np.repeat(np.clip((far - d) / (0.25 * far), 0, 1), 2),  # fade in at the far end
        "rgb": rgb.reshape(-1, 3).T,  # [3, P]
    }

    # Objects whose unclipped bounding box overlaps the image (independent of the resolution).
    s = min(height, width)
    reach = sz[:, 0] * parts[..., 2].max(axis=1)
    top = ground_y - sz[:, 0] * (parts[..., 1] + parts[..., 3]).max(axis=1)
    on_screen = (np.abs(cx) - reach < width / 2 / s) & (top < height / 2 / s)
    on_screen &= ground_y > -height / 2 / s
    counts = np.bincount(fi[on_screen], minlength=n)

    keep = prim["hx"] > 0
    return {key: v[..., keep] for key, v in prim.items()}, counts


def _object_colours(kind, h, fi, d, st: dict, col: dict) -> np.ndarray:
    """Trunk and crown colours `[M, 2, 3]`, lit and fogged. Canopies vary in hue and turn
    autumnal with the season (conifers do not)."""
    hue, tint, evergreen = h(6)[:, None], h(7)[:, None], h(8) > 0.8
    green = _lerp(np.array([0.16, 0.36, 0.10]), np.array([0.32, 0.48, 0.16]), hue)
    autumn = _lerp(np.array([0.75, 0.32, 0.08]), np.array([0.82, 0.65, 0.15]), tint)
    canopy = _lerp(green, autumn, (st["season"][fi] * ~evergreen)[:, None])
    rock = np.where(tint > 0.5, [0.22, 0.40, 0.15], [0.45, 0.43, 0.40])
    colours = np.empty((len(fi), 2, 3))
    colours[:, 0] = np.where((kind == _BUSH)[:, None], rock, [0.30, 0.22, 0.15])
    colours[:, 1] = np.where((kind == _CONIFER)[:, None], green * 0.6, canopy)
    colours[kind == _POLE] = (0.25, 0.22, 0.2)
    lit, horizon = col["lit"][:, fi, 0, 0].T, col["horizon"][:, fi, 0, 0].T
    fog = _fog(d, st["haze"][fi])[:, None, None]
    return _lerp(colours * lit[:, None], horizon[:, None], fog)


def _render_objects(prim: dict, st: dict, scr: _Screen, out: np.ndarray) -> None:
    """Rasterise primitives row by row with area-averaged coverage; composite back to front."""
    f32 = np.float32
    height, width, s = scr.height, scr.width, scr.s
    frame = prim["frame"]
    cos, sin = np.cos(st["roll"])[frame], np.sin(st["roll"])[frame]
    # Image-space centre and size in pixels; upright shapes are sheared along the rolled vertical.
    ux = (prim["cx"] * cos - prim["cy"] * sin) * s + width / 2
    uy = (prim["cx"] * sin + prim["cy"] * cos) * s + height / 2
    hx, hy = prim["hx"] * s, prim["hy"] * s
    top, bottom = uy - hy, uy + hy
    i0 = np.clip(np.floor(top), 0, height).astype(np.int64)
    rows = np.maximum(np.clip(np.ceil(bottom), 0, height).astype(np.int64) - i0, 0)

    # One entry per (primitive, pixel row): vertical coverage, horizontal span and colour.
    p = np.repeat(np.arange(len(frame)), rows)
    i = np.arange(len(p)) + np.repeat(i0 - (np.cumsum(rows) - rows), rows)
    lo, hi = np.maximum(i, top[p]), np.minimum(i + 1, bottom[p])
    mid = (lo + hi) / 2
    v = (mid - uy[p]) / hy[p]  # -1 at the top, 1 at the bottom
    shape = prim["shape"][p]
    half = hx[p] * np.where(
        shape == _BOX,
        1.0,
        np.where(shape == _ELLIPSE, np.sqrt(np.clip(1 - v * v, 0, 1)), (v + 1) / 2),
    )
    centre = ux[p] - (sin / cos)[p] * (mid - uy[p])
    left, right = (centre - half).astype(f32), (centre + half).astype(f32)
    j0 = np.clip(np.floor(left), 0, width).astype(np.int64)
    cols = np.maximum(np.clip(np.ceil(right), 0, width).astype(np.int64) - j0, 0)
    alpha = ((hi - lo) * prim["alpha"][p]).astype(f32)
    rgb = prim["rgb"][:, p] * (1 - prim["shade"][p] * (v + 1) / 2)
    base = (frame[p] * height + i) * width

    # One fragment per covered pixel; horizontal coverage is the exact pixel/span overlap.
    r = np.repeat(np.arange(len(p)), cols)
    j = np.arange(len(r)) + np.repeat(j0 - (np.cumsum(cols) - cols), cols)
    jf = j.astype(f32)
    a = np.clip(np.minimum(jf + 1, right[r]) - np.maximum(jf, left[r]), 0, 1) * alpha[r]
    pix = base[r] + j
    if len(pix):
        _composite(pix, a, rgb[:, r], out)


def _composite(pix: np.ndarray, a: np.ndarray, rgb: np.ndarray, out: np.ndarray) -> None:
    """Fragments (flat pixel index, coverage, colour `[3, F]`, far to near) composited "over"
    into `out` `[3, ...]`.

    Sorting by pixel (stable) keeps each pixel's fragments far to near; the transmittance of the
    nearer fragments is a segmented suffix sum of log(1 - a), done in fixed point so that it is
    exact and does not depend on the rest of the batch."""
    key = pix.astype(np.uint16) if out[0].size <= 1 << 16 else pix  # uint16 sorts by radix
    order = np.argsort(key, kind="stable")
    pix, a, rgb = pix[order], a[order], rgb[:, order]
    first = np.ones(len(pix), dtype=bool)
    first[1:] = pix[1:] != pix[:-1]
    start = np.flatnonzero(first)
    end = np.append(start[1:], len(pix)) - 1
    seg = np.cumsum(first) - 1
    log_t = np.round(np.log1p(-np.minimum(a, 1 - 1e-6)) * 2.0**32).astype(np.int64)
    cum = np.cumsum(log_t)
    weight = a * np.exp((cum[end][seg] - cum) * 2.0**-32)
    behind = np.exp((cum[end] - cum[start] + log_t[start]) * 2.0**-32)
    front = np.stack([np.bincount(seg, weights=weight * c) for c in rgb])
    q = pix[start]
    for plane, add in zip(out.reshape(3, -1), front):
        plane[q] = plane[q] * behind + add


def render_video(
    seed: int,
    num_frames: int,
    height: int,
    width: int,
    start_frame: int = 0,
    config: SceneConfig | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Render frames [start_frame, start_frame + num_frames) of the scene with the given seed.

    Returns uint8 frames [T, H, W, 3] and the per-frame ground truth of ``camera_state`` plus
    ``frame`` (index) and ``num_objects`` (objects overlapping the image; depends on the aspect
    ratio but not on the resolution).
    """
    if num_frames < 0 or start_frame < 0 or height < 1 or width < 1:
        raise ValueError("need num_frames >= 0, start_frame >= 0, height >= 1 and width >= 1")
    cfg = config or SceneConfig()
    sc = _scene(seed, cfg)
    frames = np.arange(start_frame, start_frame + num_frames, dtype=np.int64)
    state = camera_state(seed, frames, cfg)
    colours = _colours(sc, state)
    prims, counts = _objects(sc, cfg, state, colours, height, width)
    video = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    chunk = max(1, _CHUNK_PIXELS // (height * width))
    for lo in range(0, num_frames, chunk):
        hi = min(lo + chunk, num_frames)
        st = {key: v[lo:hi] for key, v in state.items()}
        col = {key: v[:, lo:hi] for key, v in colours.items()}
        a, b = np.searchsorted(prims["frame"], [lo, hi])
        prim = {key: v[..., a:b] for key, v in prims.items()}
        prim["frame"] = prim["frame"] - lo
        scr = _Screen(cfg, st, height, width)
        img = np.zeros((3, hi - lo, height, width), dtype=np.float32)
        _render_sky(sc, cfg, st, col, scr, img)
        _render_ground(sc, cfg, st, col, scr, img)
        _render_objects(prim, st, scr, img)
        img = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
        for c in range(3):
            video[lo:hi, ..., c] = img[c]
    return video, {**state, "frame": frames, "num_objects": counts}
