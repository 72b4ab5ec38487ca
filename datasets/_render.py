"""Procedural cartoon character for the ``synthetic-sprites`` dataset: poses, keypoints, part masks.

The character is a small 3-D skeleton (axes: the character's left ``L``, forward ``F``, down ``D``)
posed per (action, frame) and projected orthographically for each viewing direction, so a motion
looks different from the front and in profile while joints stay consistent with the drawing.
Each frame is rasterised once at ``ss`` x ``ss`` supersampling into a map of *paint channels*
(skin, top, bottom, hair, ...); the colour of every identity is then one integer matrix product
with the per-pixel channel counts, which is both fast and bit-exact on every machine.

Geometry is written in a 64 x 64 unit frame and scaled to the output size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ACTIONS: tuple[str, ...] = ("walk", "spellcast", "slash")
DIRECTIONS: tuple[str, ...] = ("front", "left", "right")
FRAMES = 8
MOTIONS = len(ACTIONS) * len(DIRECTIONS)
HAIR_STYLES: tuple[str, ...] = ("short", "mohawk", "long", "buns", "bowl", "ponytail")

KEYPOINT_NAMES: tuple[str, ...] = (
    "head", "neck", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_hand", "r_hand",
    "l_hip", "r_hip", "l_knee", "r_knee", "l_foot", "r_foot",
)

# Paint channels. The ``*_dim`` channels are the far-side limbs in profile (60 % brightness),
# which gives the depth cue that makes the far leg visible while walking.
CHANNELS: tuple[str, ...] = ("skin", "top", "bottom", "hair", "eye", "shoe", "blade",
                             "skin_dim", "top_dim", "bottom_dim", "shoe_dim", "blade_dim")
CH = {name: i for i, name in enumerate(CHANNELS)}
BACKGROUND = len(CHANNELS)  # label of uncovered sub-pixels (black)
DIM = 0.6

UNIT = 64.0  # geometry is authored in a 64 x 64 frame
GROUND = 57.0  # y of the lowest ankle
CENTRE_X = 32.0
WALK_DRIFT = 3.0  # walking in profile moves the character from -3 to +3 units along its heading
WALK_SWAY = 1.2  # walking from the front sways the body sideways

# Body measurements (units of the 64-px frame).
HIP_HALF, SHOULDER_HALF = 3.0, 6.0
SHOULDER_D, NECK_D, HEAD_D = -15.0, -17.0, -24.0
HEAD_R, HEAD_F = 6.5, 1.0
THIGH, SHIN, UPPER_ARM, FOREARM, BLADE = 9.0, 9.0, 8.0, 7.0, 8.0


@dataclass(frozen=True)
class Prim:
    """One shape to paint, in 64-unit image coordinates: a capsule (``p != q``) or a disc."""

    p: tuple[float, float]
    q: tuple[float, float]
    r: float
    channel: int
    clip: tuple | None = None  # ("cap", hx, hy, y_limit, facing): hair cap half-plane clip


def _limb(a_deg: float, b_deg: float, side: float) -> np.ndarray:
    """Unit vector of a limb swung forward by ``a`` and outward by ``b`` degrees from hanging down."""
    a, b = math.radians(a_deg), math.radians(b_deg)
    return np.array([side * math.sin(b), math.sin(a) * math.cos(b), math.cos(a) * math.cos(b)])


def skeleton(action: str, t: int) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """3-D joints (pelvis at the origin) of ``action`` at frame ``t``, plus the blade tip if any.

    walk: one gait cycle over the 8 frames (legs and counter-swinging arms); spellcast: both arms
    rise to head height, then push forward; slash: the right arm winds up and swings a blade down and
    across the body while the left arm guards.
    """
    phase = 2 * math.pi * t / FRAMES
    legs: dict[str, tuple[float, float, float]] = {}  # side -> (thigh a, knee bend, outward b)
    arms: dict[str, tuple[float, float, float]] = {}  # side -> (upper a, elbow bend, outward b)
    if action == "walk":
        for name, p in (("l", phase), ("r", phase + math.pi)):
            legs[name] = (26 * math.sin(p), 6 + 50 * max(0.0, math.cos(p)), 4)
            arms[name] = (-24 * math.sin(p), 22, 9)
    elif action == "spellcast":
        lift = [10, 45, 80, 105, 120, 128, 108, 90]
        bend = [10, 12, 15, 15, 15, 18, 12, 10]
        spread = [10, 20, 28, 34, 36, 38, 28, 20]
        dip = [0, 2, 4, 6, 8, 8, 10, 12]
        for name in ("l", "r"):
            arms[name] = (lift[t], bend[t], spread[t])
            legs[name] = (0.0, 3 + dip[t], 6)
    elif action == "slash":
        swing = [60, 115, 155, 135, 90, 40, 0, 25]
        bend = [60, 40, 25, 10, 5, 5, 5, 25]
        across = [20, 30, 40, 30, 10, -10, -25, -10]
        arms["r"] = (swing[t], bend[t], across[t])
        arms["l"] = (30.0, 75.0, 15.0)
        legs["l"] = (14.0, 12.0, 6.0)
        legs["r"] = (-14.0, 6.0, 6.0)
    else:
        raise ValueError(f"unknown action {action!r}; expected one of {ACTIONS}")

    joints: dict[str, np.ndarray] = {
        "neck": np.array([0.0, 0.0, NECK_D]),
        "head": np.array([0.0, HEAD_F, HEAD_D]),
    }
    for name, side in (("l", 1.0), ("r", -1.0)):
        a, knee, b = legs[name]
        hip = np.array([side * HIP_HALF, 0.0, 0.0])
        knee_pt = hip + THIGH * _limb(a, b, side)
        joints[f"{name}_hip"] = hip
        joints[f"{name}_knee"] = knee_pt
        joints[f"{name}_foot"] = knee_pt + SHIN * _limb(a - knee, b, side)
        a, elbow, b = arms[name]
        shoulder = np.array([side * SHOULDER_HALF, 0.0, SHOULDER_D])
        elbow_pt = shoulder + UPPER_ARM * _limb(a, b, side)
        joints[f"{name}_shoulder"] = shoulder
        joints[f"{name}_elbow"] = elbow_pt
        joints[f"{name}_hand"] = elbow_pt + FOREARM * _limb(a + elbow, b, side)
    blade = None
    if action == "slash":
        a, elbow, b = arms["r"]
        blade = joints["r_hand"] + BLADE * _limb(a + elbow + 15, b, -1.0)
    return joints, blade


@dataclass
class Frame:
    """A projected frame: keypoints and the ordered shapes that draw it (64-unit coordinates)."""

    keypoints: np.ndarray  # [K, 2] (x, y)
    below_hair: list[Prim]
    hair_anchor: tuple[float, float, int]  # head centre x, y and facing
    above_hair: list[Prim]


def project(action: str, direction: str, t: int) -> Frame:
    """Pose the skeleton, place it on the ground and project it for the viewing ``direction``."""
    facing = {"front": 0, "left": -1, "right": 1}[direction]
    joints, blade = skeleton(action, t)
    pelvis_y = GROUND - max(joints["l_foot"][2], joints["r_foot"][2])
    cx = CENTRE_X
    if facing and action == "walk":
        cx += facing * WALK_DRIFT * (2 * t / (FRAMES - 1) - 1)
    elif action == "walk":  # from the front, the weight shifts from foot to foot
        cx += WALK_SWAY * math.sin(2 * math.pi * t / FRAMES)
    elif facing and action == "slash":
        cx -= facing * 2.0  # leave room ahead of the character for the blade

    def xy(p: np.ndarray) -> tuple[float, float]:
        x = p[0] if facing == 0 else facing * p[1]
        return (float(cx + x), float(pelvis_y + p[2]))

    def depth(p: np.ndarray) -> float:
        return float(p[1] if facing == 0 else -facing * p[0])

    keypoints = np.array([xy(joints[name]) for name in KEYPOINT_NAMES], dtype=np.float64)

    def channel(name: str, far: bool) -> int:
        return CH[f"{name}_dim"] if far else CH[name]

    def leg(side: str, far: bool) -> list[Prim]:
        hip, knee, foot = (xy(joints[f"{side}_{j}"]) for j in ("hip", "knee", "foot"))
        toe = (foot[0] + 2.6 * facing, foot[1] + 0.6)
        return [Prim(hip, knee, 2.4, channel("bottom", far)), Prim(knee, foot, 2.1, channel("bottom", far)),
                Prim(foot, toe, 1.9, channel("shoe", far))]

    def arm(side: str, far: bool) -> list[Prim]:
        shoulder, elbow, hand = (xy(joints[f"{side}_{j}"]) for j in ("shoulder", "elbow", "hand"))
        out = [Prim(shoulder, elbow, 2.2, channel("top", far)), Prim(elbow, hand, 1.8, channel("skin", far))]
        if side == "r" and blade is not None:
            out.append(Prim(hand, xy(blade), 0.9, channel("blade", far)))
        out.append(Prim(hand, hand, 2.1, channel("skin", far)))
        return out

    far_side = {0: None, -1: "r", 1: "l"}[facing]
    below: list[Prim] = []
    if far_side is not None:
        below += arm(far_side, True) + leg(far_side, True)
    for side in ("l", "r"):
        if side != far_side:
            below += leg(side, False)
    below.append(Prim(xy(joints["l_hip"]), xy(joints["r_hip"]), 2.7, CH["bottom"]))
    for side in (1.0, -1.0):  # torso: two parallel capsules make a rounded block from the front
        top = xy(np.array([side * 2.6, 0.0, SHOULDER_D + 1.0]))
        bottom = xy(np.array([side * 2.6, 0.0, -2.0]))
        below.append(Prim(top, bottom, 3.5, CH["top"]))
    # Near arms in profile, and arms reaching forward from the front, pass in front of the head.
    arms_near = sorted((s for s in ("l", "r") if s != far_side), key=lambda s: depth(joints[f"{s}_hand"]))
    arms_front = [s for s in arms_near if facing or depth(joints[f"{s}_hand"]) > HEAD_F + 2.0]
    for side in arms_near:
        if side not in arms_front:
            below += arm(side, False)
    head = joints["head"]
    below.append(Prim(xy(joints["neck"]), xy(head + np.array([0.0, -0.5, 3.5])), 1.7, CH["skin"]))
    hx, hy = xy(head)
    below.append(Prim((hx, hy), (hx, hy), HEAD_R, CH["skin"]))
    if facing:
        nose = xy(head + np.array([0.0, HEAD_R - 0.3, 1.0]))
        below.append(Prim(nose, nose, 1.3, CH["skin"]))
    eyes = {xy(head + np.array([s * 2.4, 4.6, -0.4])) for s in (1.0, -1.0)}
    above = [Prim(e, e, 1.15, CH["eye"]) for e in sorted(eyes)]
    for side in arms_front:
        above += arm(side, False)
    return Frame(keypoints, below, (hx, hy, facing), above)


def hair_prims(style: int, hx: float, hy: float, facing: int) -> list[Prim]:
    """The hair of ``style`` on a head centred at (hx, hy); shape depends on the view."""
    r = HEAD_R
    back = -facing  # profile: the back of the head is opposite the heading

    def cap(limit: float, grow: float = 0.8) -> Prim:
        return Prim((hx, hy), (hx, hy), r + grow, CH["hair"], clip=("cap", hx, hy, hy + limit, facing))

    name = HAIR_STYLES[style]
    hair = CH["hair"]
    if name == "short":
        return [cap(-1.8)]
    if name == "mohawk":
        base = (hx + back * 1.0, hy - r + 0.5)
        return [cap(-3.0, 0.4), Prim(base, (base[0] + back * 0.8, base[1] - 3.0), 2.0, hair)]
    if name == "long":
        if facing == 0:
            sides = [Prim((hx + s * (r - 0.2), hy - 2.0), (hx + s * (r + 0.6), hy + 8.0), 2.0, hair) for s in (1, -1)]
        else:
            sides = [Prim((hx + back * (r - 1.5), hy - 2.0), (hx + back * (r + 0.3), hy + 8.0), 2.6, hair)]
        return [cap(-1.5)] + sides
    if name == "buns":
        if facing == 0:
            centres = [(hx + s * (r - 0.5), hy - r + 1.0) for s in (1, -1)]
        else:
            centres = [(hx + back * (r - 0.3), hy - 3.0)]
        return [cap(-1.8)] + [Prim(c, c, 2.6, hair) for c in centres]
    if name == "bowl":
        return [cap(-0.2, 1.4)]
    if name == "ponytail":
        if facing == 0:
            tail = [Prim((hx + 0.7 * r, hy - 0.6 * r), (hx + r + 2.5, hy + 6.0), 1.8, hair)]
        else:
            tail = [Prim((hx + back * 0.8 * r, hy - 2.5), (hx + back * (r + 3.5), hy + 5.0), 1.9, hair)]
        return [cap(-1.8)] + tail
    raise ValueError(f"unknown hair style {style}")


class Canvas:
    """A supersampled label map: every sub-pixel holds the paint channel drawn last on it."""

    def __init__(self, size: int, ss: int):
        self.size, self.ss, self.scale = size, ss, size / UNIT
        n = size * ss
        self.label = np.full((n, n), BACKGROUND, dtype=np.uint8)
        self.centres = (np.arange(n) + 0.5) / ss  # sub-pixel centres in output pixels

    def copy(self) -> "Canvas":
        out = Canvas.__new__(Canvas)
        out.size, out.ss, out.scale, out.centres = self.size, self.ss, self.scale, self.centres
        out.label = self.label.copy()
        return out

    def paint(self, prim: Prim) -> None:
        s, n = self.scale, len(self.centres)
        (px, py), (qx, qy), r = (prim.p[0] * s, prim.p[1] * s), (prim.q[0] * s, prim.q[1] * s), prim.r * s
        lo = lambda v: max(0, int(math.floor((v - r) * self.ss)))  # noqa: E731
        hi = lambda v: min(n, int(math.ceil((v + r) * self.ss)) + 1)  # noqa: E731
        j0, j1, i0, i1 = lo(min(px, qx)), hi(max(px, qx)), lo(min(py, qy)), hi(max(py, qy))
        if j0 >= j1 or i0 >= i1:
            return
        xs = self.centres[j0:j1][None, :] - px
        ys = self.centres[i0:i1][:, None] - py
        dx, dy = qx - px, qy - py
        length2 = dx * dx + dy * dy
        if length2 > 0:
            u = np.clip((xs * dx + ys * dy) / length2, 0.0, 1.0)
            xs, ys = xs - u * dx, ys - u * dy
        mask = xs * xs + ys * ys <= r * r
        if prim.clip is not None:
            _, hx, hy, limit, facing = prim.clip
            x = self.centres[j0:j1][None, :] / s
            y = self.centres[i0:i1][:, None] / s
            keep = y <= limit
            if facing:  # profile: hair also covers the back of the head down to the nape
                keep = keep | (((x - hx) * facing < -1.5) & (y <= hy + 3.0))
            mask &= keep
        self.label[i0:i1, j0:j1][mask] = prim.channel

    def counts(self) -> np.ndarray:
        """Sub-pixel count of every channel per output pixel: ``[len(CHANNELS), size * size]``."""
        size, ss = self.size, self.ss
        blocks = self.label.reshape(size, ss, size, ss).transpose(0, 2, 1, 3).reshape(size * size, ss * ss)
        nch = BACKGROUND + 1
        index = (np.arange(size * size)[:, None] * nch + blocks).ravel()
        out = np.bincount(index, minlength=size * size * nch).reshape(size * size, nch)
        return out[:, :BACKGROUND].T.astype(np.uint8)


def render_coverage(size: int, ss: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Channel counts for every hair style, motion and frame, and the keypoints of every motion.

    Returns ``coverage`` ``[styles, channels, motions * frames * size * size]`` (uint8 counts of
    ``ss * ss`` sub-pixels; motion index ``3 * action + direction``) and ``keypoints``
    ``[motions, frames, K, 2]`` in output pixel coordinates (pixel ``(i, j)`` spans ``[j, j+1)``
    in x and ``[i, i+1)`` in y).
    """
    pix = size * size
    coverage = np.zeros((len(HAIR_STYLES), len(CHANNELS), MOTIONS * FRAMES * pix), dtype=np.uint8)
    keypoints = np.zeros((MOTIONS, FRAMES, len(KEYPOINT_NAMES), 2), dtype=np.float32)
    for a, action in enumerate(ACTIONS):
        for d, direction in enumerate(DIRECTIONS):
            motion = len(DIRECTIONS) * a + d
            for t in range(FRAMES):
                frame = project(action, direction, t)
                keypoints[motion, t] = frame.keypoints * (size / UNIT)
                base = Canvas(size, ss)
                for prim in frame.below_hair:
                    base.paint(prim)
                col = (motion * FRAMES + t) * pix
                for style in range(len(HAIR_STYLES)):
                    canvas = base.copy()
                    for prim in hair_prims(style, *frame.hair_anchor) + frame.above_hair:
                        canvas.paint(prim)
                    coverage[style, :, col:col + pix] = canvas.counts()
    return coverage, keypoints
