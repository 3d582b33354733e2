#!/usr/bin/env python3
"""Temporal-stability benchmark of the stylize element (not a test: it prints figures).

Run it through scripts/bench-temporal.sh, which sets GST_PLUGIN_PATH.

Every input clip (640x360, 30/1, raw RGB) goes through
    filesrc ! rawvideoparse ! videoconvert ! stylize style=S PROPS ! videoconvert ! filesink
once per *variant* (a label, element properties and environment assignments).
The first variant is the baseline; by default `per-frame` (deflicker=0) and then
`default` (the element's own defaults).

Inputs
  traffic      the fixed-camera clip traffic_bridge.mp4, scaled to 640x360, first N frames
  still-noise  golden_gate.jpg cropped to 16:9 and resized to 640x360, plus independent
               Gaussian sensor noise (sigma 4 levels per pixel and channel, numpy seed 0)
               on every frame: the scene never changes, only the noise does
  pan          a 640x360 window sliding right by exactly 2 px per frame over tiger.jpg
               (scaled up so that it is wide enough), no noise: the content moves left by
               2 px per frame, which the metrics compensate exactly

Metrics, per input and variant. I = the input frames the element saw, O = the variant's
output, P = the baseline's output, Y = 0.299 R + 0.587 G + 0.114 B (0..255 floats), frame
pairs (t-1, t) for t >= 1. For `pan`, "O_t-1" means O_t-1 shifted by the known motion:
O_t[:, x] is compared with O_t-1[:, x + 2] and the 2 px edge is cropped (the same for I).
  static mask   |blur9(Y_t - Y_t-1)| < 3 levels, blur9 = 9x9 box blur (edges replicated);
                for `pan` from the shifted input, so the whole picture is static there
  moving mask   |blur9(Y_t - Y_t-1)| >= 6 levels, for `pan` from the shifted input too: where
                the scene itself changes, which is where a temporal filter can lag (the
                element follows the camera's motion, so a pan alone moves nothing; the JSON's
                offset_moving_fixed gives |O_t - P_t| where the picture at a fixed pixel
                changes, for the record)
  flicker       mean over t of the mean |O_t - O_t-1| (all 3 channels) over static pixels
  ratio         flicker / baseline flicker
  input change  mean over t of the mean |I_t - I_t-1| over static pixels (context)
  amplification flicker / input change: how much the element magnifies what it is given
                ('-' when the input does not change, as in `pan`)
  texture       mean over all frames of mean(|dY/dx| + |dY/dy|) of the output luma (forward
                differences); the table shows variant / baseline: a smoother picture scores < 1
  lag           mean |O_t - P_t| over all moving pixels of all frames t >= 1 (pooled), in
                levels: how far the variant strays from the per-frame picture where things
                move; 0 for the baseline; '-' when under 0.1 % of the pixels move. A variant
                that changes the look everywhere also scores here: read lag against the JSON's
                offset_static, the same |O_t - P_t| over the static pixels

Speed: frames per second at 640x480 (videotestsrc pattern=ball, RGB) for the baseline and
`default`, runs alternating A B A B ..., median per variant; see measure_fps for how the
start-up is left out.

Writes bench-out/temporal.json and, unless --picture '', a PNG of one traffic frame pair.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

W, H = 640, 360                  # clip size
FRAME_BYTES = W * H * 3
FPS_W, FPS_H = 640, 480          # speed measurement size
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
BLUR = 9                         # box blur side for the masks
STATIC_BELOW = 3.0               # blurred luma change under this: static
MOVING_FROM = 6.0                # blurred luma change from this: moving
PAN_STEP = 2                     # px per frame the pan window moves right
NOISE_SIGMA = 4.0
DEFAULT_FRAMES = 60              # traffic and pan
STILL_NOISE_FRAMES = 100
MIN_MOVING_SHARE = 1e-3          # lag is '-' when fewer pixels than this share move
NO_INPUT_CHANGE = 0.05           # levels: below this, amplification is '-'
PICTURE_GAIN = 8                 # |O_t - O_t-1| is multiplied by this to be visible
PICTURE_MAX_BYTES = 400_000
INPUTS = ("traffic", "still-noise", "pan")


# ---------------------------------------------------------------------------
# Variants


@dataclass
class Variant:
    label: str
    props: list[str] = field(default_factory=list)   # key=value tokens for gst-launch
    env: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [" ".join(self.props) or "(element defaults)"]
        if self.env:
            parts.append("env " + " ".join(f"{k}={v}" for k, v in self.env.items()))
        return ", ".join(parts)

    def environ(self) -> dict[str, str]:
        return {**os.environ, **self.env}


def parse_variant(spec: str) -> Variant:
    """'label|props|env': props as on a gst-launch line, env as space-separated KEY=VALUE."""
    parts = spec.split("|")
    if not 1 <= len(parts) <= 3 or not parts[0].strip():
        raise argparse.ArgumentTypeError(f"variant {spec!r}: expected 'label|props|env'")
    label = parts[0].strip()
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", label):
        raise argparse.ArgumentTypeError(f"variant label {label!r}: use letters, digits, . _ + -")
    props = shlex.split(parts[1]) if len(parts) > 1 else []
    for p in props:
        if "=" not in p:
            raise argparse.ArgumentTypeError(f"variant {label}: property {p!r} is not key=value")
    env = {}
    for a in shlex.split(parts[2]) if len(parts) > 2 else []:
        key, eq, value = a.partition("=")
        if not eq or not key:
            raise argparse.ArgumentTypeError(f"variant {label}: env {a!r} is not KEY=VALUE")
        env[key] = value
    return Variant(label, props, env)


# ---------------------------------------------------------------------------
# GStreamer


def die(msg: str) -> None:
    print(f"bench-temporal: {msg}", file=sys.stderr)
    sys.exit(1)


def gst_launch(args: list[str], log: Path, env=None, verbose=False) -> str:
    """Runs gst-launch-1.0 with a pipeline given as argv tokens; returns stdout.
    stderr (LiteRT's chatter included) goes to `log`."""
    argv = ["gst-launch-1.0", "-v" if verbose else "-q", *args]
    with open(log, "w") as err:
        err.write("$ " + shlex.join(argv) + "\n")
        err.flush()
        run = subprocess.run(argv, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    if run.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(True)[-15:])
        die(f"gst-launch-1.0 failed (exit {run.returncode}); log {log}:\n{run.stdout[-2000:]}{tail}")
    return run.stdout


def inspect_element() -> tuple[list[str], str]:
    """The stylize element's property names and version, from gst-inspect-1.0."""
    run = subprocess.run(["gst-inspect-1.0", "stylize"], capture_output=True, text=True)
    if run.returncode != 0:
        die("no stylize element (GST_PLUGIN_PATH=" + os.environ.get("GST_PLUGIN_PATH", "") +
            "); build it: cargo build --release -p gst-plugin-stylize")
    section = run.stdout.partition("Element Properties:")[2]
    props = re.findall(r"^  ([a-z][a-z0-9-]*)\s+: ", section, re.M)
    version = re.search(r"^\s*Version\s+(\S+)", run.stdout, re.M)
    return props, version.group(1) if version else "?"


def require_elements(*names: str) -> None:
    for name in names:
        if subprocess.run(["gst-inspect-1.0", "--exists", name]).returncode != 0:
            die(f"GStreamer element {name} is missing (gst-plugins-bad/-base/-good)")


# ---------------------------------------------------------------------------
# Inputs (raw RGB files, 640x360, exactly what the element sees)


def write_frames(path: Path, frames) -> int:
    n = 0
    with open(path, "wb") as f:
        for frame in frames:
            f.write(np.ascontiguousarray(frame, np.uint8).tobytes())
            n += 1
    return n


def make_traffic(path: Path, video: Path, n: int, work: Path) -> int:
    full = work / "traffic-decoded.rgb"
    # identity eos-after stops the decode early; it lets a couple of frames more through
    # (decoder threads), so the file is cut to exactly n frames below.
    gst_launch(["filesrc", f"location={video}", "!", "decodebin", "!", "videoconvert", "!",
                "videoscale", "!", f"video/x-raw,format=RGB,width={W},height={H},pixel-aspect-ratio=1/1",
                "!", "identity", f"eos-after={n}", "!", "filesink", f"location={full}"],
               work / "traffic-decode.log")
    have = full.stat().st_size // FRAME_BYTES
    n = min(n, have)
    with open(full, "rb") as src, open(path, "wb") as dst:
        dst.write(src.read(n * FRAME_BYTES))
    full.unlink()
    return n


def make_still_noise(path: Path, content: Path, n: int) -> int:
    # ImageOps.fit crops the 4:3 photo to 16:9 instead of stretching it.
    base = np.asarray(ImageOps.fit(Image.open(content / "golden_gate.jpg").convert("RGB"),
                                   (W, H), Image.LANCZOS), np.float32)
    rng = np.random.default_rng(0)
    return write_frames(path, (np.clip(np.rint(base + rng.normal(0.0, NOISE_SIGMA, base.shape)), 0, 255)
                               for _ in range(n)))


def make_pan(path: Path, content: Path, n: int) -> int:
    photo = Image.open(content / "tiger.jpg").convert("RGB")
    need_w = W + PAN_STEP * (n - 1)
    scale = max(H / photo.height, need_w / photo.width)
    big = photo.resize((max(need_w, round(photo.width * scale)), max(H, round(photo.height * scale))),
                       Image.LANCZOS)
    top = (big.height - H) // 2
    big = np.asarray(big)[top:top + H]
    # The window moves right by PAN_STEP, so the content moves left: I_t[:, x] == I_t-1[:, x+2].
    return write_frames(path, (big[:, PAN_STEP * t:PAN_STEP * t + W] for t in range(n)))


def read_clip(path: Path, expect: int | None = None) -> np.ndarray:
    size = path.stat().st_size
    if size % FRAME_BYTES:
        die(f"{path}: {size} bytes is not a whole number of {W}x{H} RGB frames")
    clip = np.memmap(path, np.uint8, "r").reshape(-1, H, W, 3)
    if expect is not None and len(clip) != expect:
        die(f"{path}: {len(clip)} frames out for {expect} in (dropped or added frames)")
    return clip


def stylize_clip(src: Path, dst: Path, style: str, v: Variant, log: Path) -> float:
    """Runs the element over a raw clip; returns the wall time (start-up included)."""
    start = time.monotonic()
    gst_launch(["filesrc", f"location={src}", "!",
                "rawvideoparse", "format=rgb", f"width={W}", f"height={H}", "framerate=30/1", "!",
                "videoconvert", "!", f"video/x-raw,format=RGB,width={W},height={H}", "!",
                "stylize", f"style={style}", *v.props, "!",
                "videoconvert", "!", "video/x-raw,format=RGB", "!",
                "filesink", "sync=false", f"location={dst}"], log, env=v.environ())
    return time.monotonic() - start


# ---------------------------------------------------------------------------
# Metrics


def luma(frame: np.ndarray) -> np.ndarray:
    return frame.astype(np.float32) @ LUMA


def box_blur(a: np.ndarray, k: int = BLUR) -> np.ndarray:
    """k x k mean filter with replicated edges, separable, by cumulative sums."""
    p = np.pad(a.astype(np.float64), k // 2, mode="edge")
    for axis in (0, 1):
        c = np.cumsum(p, axis=axis)
        c = np.concatenate([np.zeros_like(c.take([0], axis=axis)), c], axis=axis)
        n = c.shape[axis]
        p = (c.take(range(k, n), axis=axis) - c.take(range(0, n - k), axis=axis)) / k
    return p


def aligned(cur: np.ndarray, prev: np.ndarray, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """cur[:, x] and prev[:, x + dx]: the same content when it moves left by dx px a frame."""
    return cur[:, :cur.shape[1] - dx], prev[:, dx:]


def absdiff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean over the channels of |a - b|, per pixel."""
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=2, dtype=np.float32)


@dataclass
class Masks:
    static: list[np.ndarray]     # per t >= 1, on the aligned (cropped) frame
    moving: list[np.ndarray]     # per t >= 1, on the aligned (cropped) frame
    moving_fixed: list[np.ndarray]  # per t >= 1, full frame, unshifted
    input_change: float
    static_share: float
    moving_share: float


def input_masks(clip: np.ndarray, dx: int) -> Masks:
    static, moving, moving_fixed, changes = [], [], [], []
    y_prev = luma(clip[0])
    for t in range(1, len(clip)):
        y = luma(clip[t])
        a, b = aligned(y, y_prev, dx)
        blurred_change = np.abs(box_blur(a - b))
        s = blurred_change < STATIC_BELOW
        m = blurred_change >= MOVING_FROM
        static.append(s)
        moving.append(m)
        moving_fixed.append(np.abs(box_blur(y - y_prev)) >= MOVING_FROM)
        if s.any():
            changes.append(absdiff(*aligned(clip[t], clip[t - 1], dx))[s].mean())
        y_prev = y
    return Masks(static, moving, moving_fixed, float(np.mean(changes)) if changes else float("nan"),
                 float(np.mean([s.mean() for s in static])), float(np.mean([m.mean() for m in moving])))


def texture(frame: np.ndarray) -> float:
    y = luma(frame)
    return float(np.mean(np.abs(y[:-1, 1:] - y[:-1, :-1]) + np.abs(y[1:, :-1] - y[:-1, :-1])))


def clip_metrics(out: np.ndarray, base: np.ndarray, masks: Masks, dx: int) -> dict:
    flicker = []                                   # per t >= 1 (None: no static pixel)
    lag_sum, lag_n = 0.0, 0
    off_sum, off_n = 0.0, 0
    fixed_sum, fixed_n = 0.0, 0
    for t in range(1, len(out)):
        s = masks.static[t - 1]
        flicker.append(float(absdiff(*aligned(out[t], out[t - 1], dx))[s].mean()) if s.any() else None)
        # |O_t - P_t| where nothing moves: the variant's plain difference of look, to read lag against
        off_sum += float(absdiff(out[t][:, :W - dx], base[t][:, :W - dx])[s].sum())
        off_n += int(s.sum())
        m = masks.moving[t - 1]
        if m.any():
            lag_sum += float(absdiff(out[t][:, :W - dx], base[t][:, :W - dx])[m].sum())
            lag_n += int(m.sum())
        f = masks.moving_fixed[t - 1]
        if f.any():
            fixed_sum += float(absdiff(out[t], base[t])[f].sum())
            fixed_n += int(f.sum())
    valid = [f for f in flicker if f is not None]
    enough_moving = lag_n >= MIN_MOVING_SHARE * (len(out) - 1) * H * W
    return {
        "flicker": float(np.mean(valid)) if valid else None,
        "flicker_per_frame": [None if f is None else round(f, 4) for f in flicker],
        "texture": float(np.mean([texture(f) for f in out])),
        "lag": lag_sum / lag_n if enough_moving else None,
        "offset_static": off_sum / off_n if off_n else None,
        "offset_moving_fixed": fixed_sum / fixed_n if fixed_n else None,
    }


def add_ratios(results: dict, baseline: str, input_change: float) -> None:
    b = results[baseline]
    for r in results.values():
        r["flicker_ratio"] = ratio(r["flicker"], b["flicker"])
        r["texture_ratio"] = ratio(r["texture"], b["texture"])
        r["amplification"] = (r["flicker"] / input_change
                              if r["flicker"] is not None and input_change >= NO_INPUT_CHANGE else None)


def ratio(a, b):
    return a / b if a is not None and b else None


# ---------------------------------------------------------------------------
# Picture


def load_font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:                               # Pillow < 10.1: fixed bitmap font
        return ImageFont.load_default()


def make_picture(path: Path, rows: list[tuple[str, np.ndarray, float | None]], t: int) -> tuple[int, int, int]:
    """rows: (label, output clip, flicker). Per row: O_t, then |O_t - O_t-1| x gain in grey.
    Returns the picture's width, height and bytes."""
    tiles = []
    for label, clip, flicker in rows:
        diff = np.clip(absdiff(clip[t], clip[t - 1]) * PICTURE_GAIN, 0, 255).astype(np.uint8)
        note = f" (flicker {flicker:.2f} on static pixels)" if flicker is not None else ""
        tiles.append([(f"{label}: output frame {t}", np.asarray(clip[t])),
                      (f"{label}: |frame {t} - frame {t - 1}| x{PICTURE_GAIN}{note}",
                       np.repeat(diff[..., None], 3, 2))])
    path.parent.mkdir(parents=True, exist_ok=True)
    # The difference tiles are grain that PNG barely compresses: shrink, and fall back to a
    # 256-colour palette (undithered; invisible on the painterly output), until it fits.
    for scale, palette in ((1.0, False), (1.0, True), (0.75, True), (0.6, True), (0.5, True), (0.4, True)):
        tw, th = round(W * scale), round(H * scale)
        font = load_font(max(11, round(18 * scale)))
        bar = max(11, round(18 * scale)) + 8
        sheet = Image.new("RGB", (2 * tw, len(tiles) * (th + bar)), "white")
        draw = ImageDraw.Draw(sheet)
        for r, row in enumerate(tiles):
            y0 = r * (th + bar)
            for c, (text, img) in enumerate(row):
                sheet.paste(Image.fromarray(img).resize((tw, th), Image.LANCZOS), (c * tw, y0 + bar))
                draw.text((c * tw + 6, y0 + 3), text, fill="black", font=font)
        if palette:
            sheet = sheet.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        sheet.save(path, optimize=True)
        if path.stat().st_size <= PICTURE_MAX_BYTES:
            break
    return sheet.width, sheet.height, path.stat().st_size


# ---------------------------------------------------------------------------
# Speed


FPS_LINE = re.compile(r"rendered: (\d+), dropped: (\d+), current: [\d.]+, average: ([\d.]+)")


def measure_fps(style: str, v: Variant, frames: int, log: Path) -> dict:
    """Frames per second of the element at 640x480, start-up left out.

    fpsdisplaysink starts its clock when the first frame reaches the sink, so the model
    load, the first caps and the first frame's inference are not counted; each message it
    prints is computed when a frame arrives, as rendered / (now - first frame's arrival).
    The last message thus covers n frames over n - 1 frame intervals: fps = (n - 1) / elapsed.
    """
    start = time.monotonic()
    out = gst_launch(["videotestsrc", "pattern=ball", f"num-buffers={frames}", "!",
                      f"video/x-raw,format=RGB,width={FPS_W},height={FPS_H},framerate=30/1", "!",
                      "stylize", f"style={style}", *v.props, "!",
                      "fpsdisplaysink", "video-sink=fakesink", "text-overlay=false", "sync=false",
                      "fps-update-interval=100"], log, env=v.environ(), verbose=True)
    wall = time.monotonic() - start
    found = FPS_LINE.findall(out)
    if not found:
        die(f"no fpsdisplaysink measurement in the output of {v.label} (log {log})")
    n, dropped, average = int(found[-1][0]), int(found[-1][1]), float(found[-1][2])
    elapsed = n / average
    return {"fps": (n - 1) / elapsed, "frames_timed": n, "dropped": dropped,
            "seconds_timed": elapsed, "wall_s": wall}


# ---------------------------------------------------------------------------
# Output


def fmt(x, digits=2, dash="-") -> str:
    return dash if x is None or x != x else f"{x:.{digits}f}"


def print_input_table(name: str, info: dict, variants: list[Variant]) -> None:
    print(f"### {name}: {info['frames']} frames; static {100 * info['static_share']:.1f} % of pixels, "
          f"moving {100 * info['moving_share']:.1f} %; input change on static pixels "
          f"{fmt(info['input_change'])} levels")
    print()
    print("| variant | flicker | ratio | amplification | texture ratio | lag |")
    print("|---|---:|---:|---:|---:|---:|")
    for i, v in enumerate(variants):
        r = info["variants"][v.label]
        lag = "0" if i == 0 else fmt(r["lag"])
        print(f"| {v.label} | {fmt(r['flicker'])} | {fmt(r['flicker_ratio'])} | "
              f"{fmt(r['amplification'])} | {fmt(r['texture_ratio'], 3)} | {lag} |")
    print()


def print_fps_table(fps: dict, runs: int, frames: int) -> None:
    print(f"### fps at {FPS_W}x{FPS_H} (videotestsrc ball, RGB, {frames} frames, "
          f"{runs} runs alternating, start-up excluded)")
    print()
    print("| variant | median fps | runs | cost (time per frame / baseline) |")
    print("|---|---:|---|---:|")
    base = None
    for label, r in fps.items():
        base = base or r["median_fps"]
        runs_text = " ".join(f"{x['fps']:.1f}" for x in r["runs"])
        print(f"| {label} | {r['median_fps']:.1f} | {runs_text} | {base / r['median_fps']:.2f} |")
    print()


# ---------------------------------------------------------------------------


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the empty ones of flags and of repeatable options."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


def parse_args(repo: Path) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="scripts/bench-temporal.sh",
        description="Temporal-stability benchmark of the stylize element: flicker on static "
                    "pixels, texture, lag where things move, and fps, per variant. Prints "
                    "markdown tables and writes bench-out/temporal.json. Not a test.",
        epilog="Metric definitions: the docstring of scripts/bench_temporal.py. Example: "
               "scripts/bench-temporal.sh --frames 30 --variant 'half|deflicker=0.5' "
               "--variant 'x|deflicker=0.5|STYLIZE_X=1 OTHER=2'",
        formatter_class=_HelpFormatter)
    ap.add_argument("--frames", type=int,
                    help=f"frames of the traffic and pan clips (default {DEFAULT_FRAMES}); also caps "
                         f"still-noise (default {STILL_NOISE_FRAMES})")
    ap.add_argument("--inputs", default=",".join(INPUTS), help="comma-separated subset of " + ", ".join(INPUTS))
    ap.add_argument("--style", default="monet", help="style id for every run")
    ap.add_argument("--variant", action="append", default=[], type=parse_variant, metavar="'LABEL|PROPS|ENV'",
                    help="add a variant: element properties as on a gst-launch line, env as space-separated "
                         "KEY=VALUE (repeatable; after the defaults per-frame = deflicker=0, the baseline, "
                         "and default = no property)")
    ap.add_argument("--no-default-variants", action="store_true",
                    help="only the --variant ones; the first is then the baseline")
    ap.add_argument("--fps-runs", type=int, default=3, help="timed runs per variant (0: no speed figures)")
    ap.add_argument("--fps-frames", type=int, default=300, help=f"frames per timed {FPS_W}x{FPS_H} run")
    ap.add_argument("--fps-all", action="store_true", help="time every variant, not only the baseline and default")
    ap.add_argument("--picture", default="docs/img/deflicker.png",
                    help="PNG of one traffic frame pair, baseline over default ('' for none)")
    ap.add_argument("--video", type=Path, default=repo.parent / "shared/video/traffic_bridge.mp4",
                    help="the fixed-camera clip for the traffic input")
    ap.add_argument("--content", type=Path, default=repo.parent / "shared/content",
                    help="folder with golden_gate.jpg and tiger.jpg")
    ap.add_argument("--work", type=Path, default=Path("bench-out/temporal"), help="folder for clips and logs")
    ap.add_argument("--json", type=Path, default=Path("bench-out/temporal.json"), help="where the figures go")
    ap.add_argument("--keep", action="store_true", help="keep the raw clips (about 40-70 MB each) in --work")
    args = ap.parse_args()
    args.inputs = [s.strip() for s in args.inputs.split(",") if s.strip()]
    for name in args.inputs:
        if name not in INPUTS:
            ap.error(f"unknown input {name!r}")
    if args.frames is not None and args.frames < 2:
        ap.error("--frames must be at least 2")
    if args.no_default_variants and not args.variant:
        ap.error("--no-default-variants needs at least one --variant")
    return args


def main() -> None:
    repo = Path(__file__).resolve().parent.parent
    os.chdir(repo)
    args = parse_args(repo)
    began = time.monotonic()

    require_elements("rawvideoparse", "videoconvert", "fpsdisplaysink", "videotestsrc", "decodebin")
    props, version = inspect_element()
    notes = []
    variants = []
    if not args.no_default_variants:
        if "deflicker" in props:
            variants = [Variant("per-frame", ["deflicker=0"]), Variant("default")]
        else:
            variants = [Variant("per-frame")]
            notes.append("the element has no deflicker property: per-frame runs with no property, "
                         "the default variant is left out")
    variants += args.variant
    labels = [v.label for v in variants]
    if len(set(labels)) != len(labels):
        die(f"variant labels repeat: {labels}")
    for v in variants:
        unknown = [p.partition("=")[0] for p in v.props if p.partition("=")[0] not in props]
        if unknown:
            die(f"variant {v.label}: stylize has no property {', '.join(unknown)} "
                f"(it has: {', '.join(props)})")
    baseline = variants[0]

    print(f"stylize {version}, style {args.style}; variants (the first is the baseline):")
    for v in variants:
        print(f"  {v.label}: {v.describe()}")
    for n in notes:
        print(f"note: {n}")
    print()

    args.work.mkdir(parents=True, exist_ok=True)
    report = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "element_version": version,
              "style": args.style, "baseline": baseline.label,
              "variants": [{"label": v.label, "props": v.props, "env": v.env} for v in variants],
              "definitions": __doc__, "notes": notes, "inputs": {}}

    for name in args.inputs:
        src = args.work / f"{name}.rgb"
        frames = args.frames or DEFAULT_FRAMES
        n = {"traffic": lambda: make_traffic(src, args.video, frames, args.work),
             "still-noise": lambda: make_still_noise(src, args.content, min(args.frames or STILL_NOISE_FRAMES,
                                                                            STILL_NOISE_FRAMES)),
             "pan": lambda: make_pan(src, args.content, frames)}[name]()
        if name == "traffic" and n < frames:
            notes.append(f"traffic: the video has only {n} frames")
        clip = read_clip(src, n)
        dx = PAN_STEP if name == "pan" else 0
        masks = input_masks(clip, dx)
        info = {"frames": n, "motion_compensation_px": dx, "static_share": masks.static_share,
                "moving_share": masks.moving_share, "input_change": masks.input_change, "variants": {}}
        outs = {}
        for v in variants:
            dst = args.work / f"{name}.{v.label}.out.rgb"
            seconds = stylize_clip(src, dst, args.style, v, args.work / f"{name}.{v.label}.log")
            outs[v.label] = read_clip(dst, n)
            info["variants"][v.label] = {**clip_metrics(outs[v.label], outs[baseline.label], masks, dx),
                                         "run_wall_s": seconds}
        add_ratios(info["variants"], baseline.label, masks.input_change)
        report["inputs"][name] = info
        print_input_table(name, info, variants)

        if name == "traffic" and args.picture:
            # Baseline over `default` (else the second variant), for one frame pair mid-clip.
            other = next((v for v in variants[1:] if v.label == "default"), variants[1] if len(variants) > 1 else None)
            shown = [baseline] + ([other] if other else [])
            t = n // 2
            size = make_picture(Path(args.picture),
                                [(v.label, outs[v.label], info["variants"][v.label]["flicker_per_frame"][t - 1])
                                 for v in shown], t)
            report["picture"] = {"path": args.picture, "frame": t, "rows": [v.label for v in shown],
                                 "width": size[0], "height": size[1], "bytes": size[2]}
            print(f"wrote {args.picture} ({size[0]}x{size[1]}, {size[2] // 1000} kB; frame pair "
                  f"{t - 1},{t}; rows {', '.join(v.label for v in shown)})\n")
        del clip, outs
        if not args.keep:
            for f in args.work.glob(f"{name}.*rgb"):
                f.unlink()

    if args.fps_runs > 0:
        timed = variants if args.fps_all else [baseline] + [v for v in variants[1:] if v.label == "default"]
        fps = {v.label: {"runs": []} for v in timed}
        for run in range(args.fps_runs):              # A B A B ...: the load drifts, so interleave
            for v in timed:
                fps[v.label]["runs"].append(
                    measure_fps(args.style, v, args.fps_frames, args.work / f"fps.{v.label}.{run}.log"))
        for r in fps.values():
            r["median_fps"] = statistics.median(x["fps"] for x in r["runs"])
        base_fps = fps[baseline.label]["median_fps"]
        for r in fps.values():
            r["cost_ratio"] = base_fps / r["median_fps"]
        report["fps"] = {"size": [FPS_W, FPS_H], "frames": args.fps_frames, "source": "videotestsrc pattern=ball",
                         "variants": fps}
        print_fps_table(fps, args.fps_runs, args.fps_frames)

    report["total_s"] = time.monotonic() - began
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.json}; took {report['total_s']:.0f} s")


if __name__ == "__main__":
    main()
