"""``sprites``: the real Sprites benchmark (Li & Mandt, ICML 2018), built from the LPC sprite sheets.

``seqbench data prepare sprites --source DIR`` accepts four layouts users have:

* ``sheets``: a folder of Liberated Pixel Cup layer sheets (``body/ bottomwear/ topwear/ hair/
  shoes/`` with ``0.png``...; public copies in the ``YingzhenLi/Sprites`` repository and the
  Universal-LPC-spritesheet project). The dataset is composed exactly as the community generator
  does it: character ``c`` in 0..1295 has base-6 digits (body, bottom, top, hair) = (c // 216,
  c // 36 % 6, c // 6 % 6, c % 6); layers ``body/{body}.png``, ``bottomwear/{bottom}.png``,
  ``topwear/{top}.png``, ``hair/{hair}.png`` and ``shoes/1.png`` are alpha-composited in that order
  over an opaque black canvas (Pillow's ``alpha_composite``, whose integer rounding the data
  carries), and 8 frames are taken from the 64x64 cells of each of 3 actions x 3 directions;
* ``npy``: the generator's own output ``npy/{action}_{direction}_{frames,attributes}_{split}.npy``;
* ``pkl``: C-DSVAE's ``data.pkl`` (``X_*``, ``A_*``, ``D_*``; the augmentation arrays are ignored);
* ``flat``: SPYL/DBSE's ``sprites_{X,A,D}_{train,test}.npy``.

Whatever the source, the prepared arrays are the same: clips ordered by motion label, then by the
character's rank in the seed-423 permutation (the identity split: ranks 0..999 train, the other
296 test), so every layout of the same data prepares to byte-identical files and fingerprints.
Frames are stored as uint8 ``k`` with ``value_range = (0, 255/256)``: the framework's
``k / 255 * (255/256)`` is exactly ``k / 256`` in float32 for every k, the community's
``RGB / 256.0``. Labels: ``body``, ``bottom``, ``top``, ``hair`` (static, 6 classes each, the
MSD-Benchmark names) and ``motion`` (dynamic, ``3 * action + direction`` with actions
[walk, spellcard, slash] and directions [front, left, right]); identity = character index.

Credits: the sheets are Liberated Pixel Cup art (lpc.opengameart.org; Universal-LPC-spritesheet
contributors), licensed CC-BY-SA 3.0 / GPL 3.0. Prepared data inherits these licences.
"""

from __future__ import annotations

import logging
import pickle
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

from seqbench.data import DatasetAdapter, SplitData
from seqbench.dataset_lifecycle import PreparedFolderDataset, as_int
from seqbench.errors import ConfigError, DataNotFoundError
from seqbench.hookspecs import hookimpl
from seqbench.media import ClipCacheWriter, CorruptMediaError, LayoutError, load_prepared
from seqbench.prepared_folder import file_sha256, verify_folder
from seqbench.types import DataSpec, LabelSpec
from seqbench.utils import content_hash, data_root

log = logging.getLogger(__name__)

NAME = "sprites"
CHARACTERS = 6 ** 4
TRAIN_CHARACTERS = 1000
SPLIT_SEED = 423
FRAMES = 8
CELL = 64
#: frame sizes a run can ask for: 64 (the benchmark) or 32 (2 x 2 box-averaged, the CPU protocol's size)
SIZES: tuple[int, ...] = (64, 32)
SHEET_COLUMNS = 13
ATTRIBUTES: tuple[str, ...] = ("body", "bottom", "top", "hair")
LAYERS: tuple[str, ...] = ("body", "bottomwear", "topwear", "hair")
SHOES = ("shoes", 1)
ACTIONS: tuple[str, ...] = ("walk", "spellcard", "slash")
DIRECTIONS: tuple[str, ...] = ("front", "left", "right")
MOTION_NAMES: tuple[str, ...] = tuple(f"{a}-{d}" for a in ACTIONS for d in DIRECTIONS)
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "body": ("light", "neutral", "dark-gray", "gray", "brown", "black"),
    "bottom": ("white", "yellow", "red", "gray", "shade-green", "green"),
    "top": ("red", "blue", "white", "gray", "brown", "white-tie"),
    "hair": ("green", "blue", "orange", "white", "red", "purple"),
}
#: first sheet cell of each (action, direction), and the cell offset shown at each of the 8 frames
FIRST_CELL: dict[str, dict[str, int]] = {
    "walk": {"left": 118, "front": 131, "right": 144},
    "spellcard": {"left": 13, "front": 26, "right": 39},
    "slash": {"left": 169, "front": 182, "right": 195},
}
FRAME_OFFSETS: dict[str, tuple[int, ...]] = {
    "walk": (7, 0, 1, 2, 3, 4, 5, 6),       # offset k -> frame k + 1, offset 7 -> frame 0
    "spellcard": (0, 1, 2, 3, 4, 5, 4, 6),  # offset k -> frame k (k < 6), 4 again at 6, 6 at 7
    "slash": (0, 1, 2, 3, 4, 5, 4, 0),      # offset k -> frame k, 4 again at 6, 0 again at 7
}
CELLS_USED: dict[str, int] = {"walk": 8, "spellcard": 7, "slash": 6}
FORMATS: tuple[str, ...] = ("auto", "sheets", "npy", "pkl", "flat")
LAYOUT_HELP = ("one of: LPC layer sheets (body/ bottomwear/ topwear/ hair/ shoes/ with 0.png..5.png, shoes/1.png); "
               "the generator's npy/{action}_{direction}_frames_{train,test}.npy; C-DSVAE's data.pkl; or "
               "sprites_{X,A,D}_{train,test}.npy")


def attributes_of(character: np.ndarray) -> np.ndarray:
    """``[N, 4]`` (body, bottom, top, hair) of character indices: their base-6 digits."""
    c = np.asarray(character, dtype=np.int64)
    return np.stack([c // 216, c // 36 % 6, c // 6 % 6, c % 6], axis=-1)


def character_of(attributes: np.ndarray) -> np.ndarray:
    a = np.asarray(attributes, dtype=np.int64)
    return a[..., 0] * 216 + a[..., 1] * 36 + a[..., 2] * 6 + a[..., 3]


def split_permutation() -> np.ndarray:
    """The community's identity split: ``np.random.seed(423); np.random.permutation(1296)``."""
    return np.random.RandomState(SPLIT_SEED).permutation(CHARACTERS)


def character_rank() -> np.ndarray:
    """``rank[c]``: position of character ``c`` in the split permutation (< 1000 means train)."""
    rank = np.empty(CHARACTERS, dtype=np.int64)
    rank[split_permutation()] = np.arange(CHARACTERS)
    return rank


def motion_cells() -> np.ndarray:
    """``[9, 8]`` sheet cell index of every frame of every motion (motion label order)."""
    out = np.zeros((len(MOTION_NAMES), FRAMES), dtype=np.int64)
    for a, action in enumerate(ACTIONS):
        for d, direction in enumerate(DIRECTIONS):
            out[3 * a + d] = FIRST_CELL[action][direction] + np.array(FRAME_OFFSETS[action])
    return out


# -- composing from sheets ----------------------------------------------------------------

def load_layer(path: Path) -> "Image.Image":  # noqa: F821
    """A layer sheet as RGBA, cut down to the 72 cells the clips show, stacked in clip order.

    The strip is 64 px wide and ``9 * 8 * 64`` px tall: motion ``m``'s frame ``f`` is cell
    ``8 * m + f``. Alpha compositing is per pixel, so compositing the strips equals
    compositing the full sheets and cropping afterwards.
    """
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise LayoutError(f"dataset {NAME!r}: layer sheet {path} not found; expected {LAYOUT_HELP}")
    try:
        with Image.open(path) as image:
            rgba = np.asarray(image.convert("RGBA"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise CorruptMediaError(path, f"cannot decode layer sheet ({type(exc).__name__}: {exc}); the dataset cannot "
                                      f"be composed without it: restore the file from the LPC/Sprites repository")
    height, width = rgba.shape[:2]
    cells = motion_cells().ravel()
    rows_needed = (int(cells.max()) // SHEET_COLUMNS + 1) * CELL
    if width != SHEET_COLUMNS * CELL or height < rows_needed:
        raise LayoutError(f"dataset {NAME!r}: layer sheet {path} is {width}x{height} px; expected a grid of 64x64 "
                          f"cells, 13 per row ({SHEET_COLUMNS * CELL} px wide, at least {rows_needed} px tall)")
    grid = rgba[:height // CELL * CELL].reshape(height // CELL, CELL, SHEET_COLUMNS, CELL, 4).transpose(0, 2, 1, 3, 4)
    strip = grid.reshape(-1, CELL, CELL, 4)[cells]  # [72, 64, 64, 4]
    return Image.fromarray(np.ascontiguousarray(strip.reshape(-1, CELL, 4)), "RGBA")


def compose(sheets: Path, characters: np.ndarray | None = None):
    """Yield ``(character, frames [9, 8, 3, 64, 64] uint8)`` composed from a folder of sheets.

    Characters come in increasing index order; the composite of the first k layers is shared
    by all characters with the same first k attributes (2850 composites instead of 6480).
    """
    from PIL import Image

    wanted = np.arange(CHARACTERS) if characters is None else np.unique(np.asarray(characters, dtype=np.int64))
    needed = attributes_of(wanted)
    layers = {(folder, i): load_layer(sheets / folder / f"{i}.png")
              for k, folder in enumerate(LAYERS) for i in np.unique(needed[:, k]).tolist()}
    shoes = load_layer(sheets / SHOES[0] / f"{SHOES[1]}.png")
    black = Image.new("RGBA", shoes.size, "black")
    wanted_set = set(wanted.tolist())
    shape = (len(MOTION_NAMES), FRAMES, CELL, CELL, 4)
    for body in sorted(set(needed[:, 0].tolist())):
        with_body = Image.alpha_composite(black, layers["body", body])
        for bottom in sorted(set(needed[needed[:, 0] == body, 1].tolist())):
            with_bottom = Image.alpha_composite(with_body, layers["bottomwear", bottom])
            for top in range(6):
                base = body * 216 + bottom * 36 + top * 6
                hairs = [h for h in range(6) if base + h in wanted_set]
                if not hairs:
                    continue
                with_top = Image.alpha_composite(with_bottom, layers["topwear", top])
                for hair in hairs:
                    final = Image.alpha_composite(Image.alpha_composite(with_top, layers["hair", hair]), shoes)
                    yield base + hair, np.asarray(final).reshape(shape)[..., :3].transpose(0, 1, 4, 2, 3)


# -- reading the existing array formats ---------------------------------------------------

def to_uint8(x: np.ndarray, where: str) -> tuple[np.ndarray, int]:
    """Frames in [0, 1) as uint8 ``k`` and the divisor they were stored with (256, or 255)."""
    x = np.asarray(x, dtype=np.float64)
    for scale in (256, 255):
        k = np.rint(x * scale)
        if np.abs(x * scale - k).max(initial=0.0) < 1e-3 and k.min(initial=0) >= 0 and k.max(initial=0) <= 255:
            return k.astype(np.uint8), scale
    raise LayoutError(f"dataset {NAME!r}: frames in {where} are not multiples of 1/256 (the generator's RGB / 256) "
                      f"nor 1/255; range [{x.min():.4f}, {x.max():.4f}]. Is this the Sprites data?")


def to_channels_first(x: np.ndarray, where: str) -> np.ndarray:
    if x.ndim == 5 and x.shape[1:] == (FRAMES, CELL, CELL, 3):
        return x.transpose(0, 1, 4, 2, 3)
    if x.ndim == 5 and x.shape[1:] == (FRAMES, 3, CELL, CELL):
        return x
    raise LayoutError(f"dataset {NAME!r}: frames in {where} have shape {x.shape}; expected (N, 8, 64, 64, 3)")


def decode_labels(a: np.ndarray, d: np.ndarray | None, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Attributes ``[N, 4]`` and motions ``[N]`` from ints or one-hot (per frame or per clip)."""
    a = np.asarray(a)
    if a.ndim == 4:  # (N, 8, 4, 6) one-hot per frame
        a = a[:, 0]
    if a.ndim == 3:  # (N, 4, 6) one-hot
        a = a.argmax(-1)
    if a.ndim != 2 or a.shape[1] != 4:
        raise LayoutError(f"dataset {NAME!r}: attributes in {where} have shape {a.shape}; expected (N, 4) ints or "
                          f"(N, 8, 4, 6) one-hot in the order [body, bottom, top, hair]")
    a = a.astype(np.int64)
    if a.min(initial=0) < 0 or a.max(initial=0) > 5:
        raise LayoutError(f"dataset {NAME!r}: attribute values in {where} outside 0..5")
    if d is None:
        return a, None
    d = np.asarray(d)
    if d.ndim == 3:  # (N, 8, 9) one-hot per frame
        d = d[:, 0]
    if d.ndim == 2:
        d = d.argmax(-1)
    d = d.astype(np.int64).reshape(-1)
    if len(d) != len(a) or d.min(initial=0) < 0 or d.max(initial=0) > 8:
        raise LayoutError(f"dataset {NAME!r}: motions in {where} must be {len(a)} values in 0..8 (or one-hot of 9)")
    return a, d


class _ArraysOnly(pickle.Unpickler):
    """Unpickle numpy arrays and plain containers only: a data file must not run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("collections", "OrderedDict"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays are expected)")


def detect_format(source: Path) -> str:
    if source.is_file():
        return "pkl" if source.suffix == ".pkl" else ""
    if all((source / d).is_dir() for d in LAYERS + (SHOES[0],)):
        return "sheets"
    if (source / "npy").is_dir() or any(source.glob("*_frames_train.npy")):
        return "npy"
    if (source / "data.pkl").is_file():
        return "pkl"
    if (source / "sprites_X_train.npy").is_file():
        return "flat"
    return ""


class Sprites(PreparedFolderDataset):
    """The real Sprites: 1296 LPC characters x 9 motions, 8 frames, 64x64, seed-423 identity split.

    Options: ``root`` (where the prepared arrays live, default ``$SEQBENCH_DATA/sprites``),
    ``source`` (prepare from it on first use), ``format`` (auto, sheets, npy, pkl, flat),
    ``subset`` (K > 0: only the first K train characters of the split permutation and
    proportionally many test ones - a quick-check slice, prepared in its own folder), ``size``
    (64, the benchmark; or 32, the CPU protocol's frame size - docs/protocol.md - each 2 x 2 block
    averaged from the same prepared 64 px arrays when a split loads, so one preparation serves both).
    """

    name = NAME
    version = "1"
    description = ("the Sprites benchmark (LPC characters): 4 static attributes x 6, 9 motions, 8 frames, 64x64, "
                   "9000/2664 clips; prepared from LPC sheets or the community's npy/pkl files")

    def __init__(self, root: Path | str | None = None, source: Path | str | None = None, format: str = "auto",
                 subset: int = 0, size: int = CELL, **options: Any):
        if options:
            raise ConfigError(f"dataset {NAME!r} has no option(s) {sorted(options)}; its options are root (prepared "
                              f"folder), source (raw folder), format ({', '.join(FORMATS)}), subset (0 = all) and "
                              f"size ({' or '.join(map(str, SIZES))})")
        if format not in FORMATS:
            raise ConfigError(f"dataset {NAME!r}: format={format!r}: choose one of {', '.join(FORMATS)}")
        if isinstance(subset, bool) or not isinstance(subset, (int, np.integer)) and not str(subset).isdigit():
            raise ConfigError(f"dataset {NAME!r}: subset={subset!r} must be an integer (0 = all 1000 train characters)")
        super().__init__(Path(root).expanduser() if root is not None else None)
        self.source = Path(source).expanduser() if source not in (None, "") else None
        self.format = format
        self.subset = min(int(subset), TRAIN_CHARACTERS)
        self.size = as_int(size, "size", NAME)
        if self.size not in SIZES:
            raise ConfigError(f"dataset {NAME!r}: size={size!r} is not available; use size=64 (the benchmark, the "
                              f"default) or size=32 (2 x 2 averaged)")
        self.options = {"format": format, "subset": self.subset, "size": self.size}

    @property
    def prepared_dir(self) -> Path:
        """``v1`` for the benchmark, ``v1-subsetK`` for a quick-check subset."""
        base = self.root if self.root is not None else data_root() / NAME
        return base / (f"v{self.version}" if not self.subset else f"v{self.version}-subset{self.subset}")

    def selected(self) -> dict[str, np.ndarray]:
        """Characters of each split in rank order: all, or with ``subset=K`` the first K train ranks
        and the first ``ceil(K * 296 / 1000)`` test ranks (a quick-check slice of the same data)."""
        perm = split_permutation()
        train, test = perm[:TRAIN_CHARACTERS], perm[TRAIN_CHARACTERS:]
        if self.subset:
            n_test = -(-self.subset * len(test) // TRAIN_CHARACTERS)
            train, test = train[:self.subset], test[:n_test]
        return {"train": train, "test": test}

    # -- prepare ---------------------------------------------------------------------------
    def prepare(self, source: Path | str | None = None, **kwargs: Any) -> Path:
        """Build the prepared arrays from ``source`` (any of the four layouts), atomically."""
        if kwargs:
            raise ConfigError(f"dataset {NAME!r}: prepare() takes only a source; got {sorted(kwargs)}")
        source = Path(source).expanduser() if source is not None else self.source
        if source is None:
            raise DataNotFoundError(f"dataset {NAME!r}: no source given. Run `seqbench data prepare {NAME} --source DIR` "
                                    f"with DIR holding {LAYOUT_HELP}")
        if not source.exists():
            raise DataNotFoundError(f"dataset {NAME!r}: source {source} does not exist. Run `seqbench data prepare "
                                    f"{NAME} --source DIR` with DIR holding {LAYOUT_HELP}")
        target = self.prepared_dir
        if target.resolve() == source.resolve() or target.resolve() in source.resolve().parents:
            raise ConfigError(f"dataset {NAME!r}: the source {source} is inside the prepared folder {target}; keep the "
                              f"raw files elsewhere (or pass --data-option root=DIR)")
        fmt = self.format if self.format != "auto" else detect_format(source)
        if not fmt:
            found = sorted(p.name for p in source.iterdir())[:8] if source.is_dir() else [source.name]
            raise LayoutError(f"dataset {NAME!r}: {source} holds none of the Sprites layouts; expected {LAYOUT_HELP}. "
                              f"Found: {', '.join(found) or 'nothing'}")
        start = time.perf_counter()
        if fmt == "sheets":
            self._from_sheets(source, target)
        else:
            self._from_arrays(source, target, fmt)
        log.info("prepared %s from %s (%s) in %.1f s", NAME, source, fmt, time.perf_counter() - start)
        self.reset()
        return target

    def _base_meta(self, source: Path, fmt: str, scale: int) -> dict[str, Any]:
        return {"name": NAME, "adapter_version": self.version, "source": str(source.resolve()), "format": fmt,
                "value_scale": scale, "label_names": list(ATTRIBUTES) + ["motion"],
                "order": "motion label, then the character's rank in the seed-423 permutation", "subset": self.subset,
                "split_rule": "characters by np.random.RandomState(423).permutation(1296): first 1000 train"}

    def _from_sheets(self, source: Path, target: Path) -> dict[str, Any]:
        selected = self.selected()
        rows = {split: len(chars) * len(MOTION_NAMES) for split, chars in selected.items()}
        where = {int(c): (split, i) for split, chars in selected.items() for i, c in enumerate(chars)}
        with ClipCacheWriter(target, rows, (FRAMES, 3, CELL, CELL)) as writer:
            for character, frames in compose(source, np.concatenate(list(selected.values()))):
                split, position = where[character]
                writer.put(split, np.arange(len(MOTION_NAMES)) * len(selected[split]) + position, frames)
            for split, chars in selected.items():
                identity = np.tile(chars, len(MOTION_NAMES))
                motion = np.repeat(np.arange(len(MOTION_NAMES)), len(chars))
                self._add_side(writer, split, identity, motion)
            meta = self._base_meta(source, "sheets", 256)
            meta["layers"] = {folder: [f"{folder}/{i}.png" for i in range(6)] for folder in LAYERS}
            meta["layers"]["shoes"] = [f"{SHOES[0]}/{SHOES[1]}.png"]
            meta["sheet_sha256"] = {f"{folder}/{i}.png": file_sha256(source / folder / f"{i}.png")
                                    for folder in LAYERS for i in range(6)}
            meta["sheet_sha256"]["shoes/1.png"] = file_sha256(source / "shoes" / "1.png")
            return writer.finish(meta)

    @staticmethod
    def _add_side(writer: ClipCacheWriter, split: str, identity: np.ndarray, motion: np.ndarray) -> None:
        labels = np.concatenate([attributes_of(identity), motion[:, None]], axis=1).astype(np.int64)
        writer.side[split] = {"labels": [labels], "identity": [identity.astype(np.int64)],
                              "ids": [(identity * len(MOTION_NAMES) + motion).astype(np.int64)]}
        writer.count[split] = len(identity)

    def _read_arrays(self, source: Path, fmt: str) -> dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray, str]]]:
        """Per split, a list of (frames, attributes [N, 4], motions [N], where) from a legacy layout."""
        out: dict[str, list] = {"train": [], "test": []}
        if fmt == "npy":
            folder = source / "npy" if (source / "npy").is_dir() else source
            for split in ("train", "test"):
                for m, motion in enumerate(MOTION_NAMES):
                    action, direction = motion.split("-")
                    frames_path = folder / f"{action}_{direction}_frames_{split}.npy"
                    attrs_path = folder / f"{action}_{direction}_attributes_{split}.npy"
                    for path in (frames_path, attrs_path):
                        if not path.is_file():
                            raise LayoutError(f"dataset {NAME!r}: {path} not found; the generator layout has "
                                              f"npy/{{action}}_{{direction}}_{{frames,attributes}}_{{train,test}}.npy "
                                              f"for actions {ACTIONS} and directions {DIRECTIONS}")
                    frames = _load_npy(frames_path)
                    attrs, _ = decode_labels(_load_npy(attrs_path), None, str(attrs_path))
                    # The generator's directions file is unreliable (the test array is saved under the
                    # _train name), so the motion comes from the file name.
                    out[split].append((frames, attrs, np.full(len(attrs), m, dtype=np.int64), str(frames_path)))
        elif fmt == "pkl":
            path = source if source.is_file() else source / "data.pkl"
            try:
                with open(path, "rb") as fh:
                    data = _ArraysOnly(fh).load()
            except (pickle.UnpicklingError, EOFError, OSError, ValueError) as exc:
                raise CorruptMediaError(path, f"cannot read C-DSVAE pickle ({type(exc).__name__}: {exc})") from None
            for split in ("train", "test"):
                missing = [k for k in (f"X_{split}", f"A_{split}", f"D_{split}") if k not in data]
                if missing:
                    raise LayoutError(f"dataset {NAME!r}: {path} lacks {', '.join(missing)}; C-DSVAE's data.pkl holds "
                                      f"X_train, X_test, A_train, A_test, D_train, D_test")
                attrs, motions = decode_labels(data[f"A_{split}"], data[f"D_{split}"], f"{path}[A_{split}]")
                out[split].append((data[f"X_{split}"], attrs, motions, f"{path}[X_{split}]"))
        elif fmt == "flat":
            for split in ("train", "test"):
                paths = [source / f"sprites_{k}_{split}.npy" for k in "XAD"]
                for path in paths:
                    if not path.is_file():
                        raise LayoutError(f"dataset {NAME!r}: {path} not found; the flat layout has "
                                          f"sprites_{{X,A,D}}_{{train,test}}.npy")
                attrs, motions = decode_labels(_load_npy(paths[1]), _load_npy(paths[2]), str(paths[1]))
                out[split].append((_load_npy(paths[0]), attrs, motions, str(paths[0])))
        return out

    def _from_arrays(self, source: Path, target: Path, fmt: str) -> dict[str, Any]:
        parts = self._read_arrays(source, fmt)
        rank = character_rank()
        rows, orders = {}, {}
        for split, chunks in parts.items():
            for frames, attrs, _, where in chunks:
                if len(frames) != len(attrs):
                    raise LayoutError(f"dataset {NAME!r}: {where} has {len(frames)} clips but {len(attrs)} labels")
            identity = np.concatenate([character_of(a) for _, a, _, _ in chunks])
            motion = np.concatenate([m for _, _, m, _ in chunks])
            order = np.lexsort((rank[identity], motion))  # by motion, then permutation rank
            if self.subset:
                order = order[np.isin(identity[order], np.concatenate(list(self.selected().values())))]
            rows[split], orders[split] = len(order), (order, identity[order], motion[order])
        scales = set()
        with ClipCacheWriter(target, rows, (FRAMES, 3, CELL, CELL)) as writer:
            for split, chunks in parts.items():
                order, identity, motion = orders[split]
                offsets = np.cumsum([0] + [len(c[0]) for c in chunks])
                out = writer.x[split]
                for lo in range(0, len(order), 512):
                    rows_out = np.arange(lo, min(len(order), lo + 512))
                    src = order[rows_out]
                    part = np.searchsorted(offsets, src, side="right") - 1
                    for p in np.unique(part):
                        frames, _, _, where = chunks[p]
                        pick = src[part == p] - offsets[p]
                        sort = np.argsort(pick)
                        block = np.asarray(frames[pick[sort]])
                        k, scale = to_uint8(to_channels_first(block, where), where)
                        scales.add(scale)
                        dest = rows_out[part == p][sort]
                        out[dest] = k
                self._add_side(writer, split, identity, motion)
            if len(scales) > 1:
                raise LayoutError(f"dataset {NAME!r}: {source} mixes frames divided by 256 and by 255")
            meta = self._base_meta(source, fmt, scales.pop() if scales else 256)
            meta["split_matches_seed_423"] = bool(
                all(np.all(rank[orders[s][1]] < TRAIN_CHARACTERS) == (s == "train") for s in ("train", "test")))
            return writer.finish(meta)

    # -- loading ---------------------------------------------------------------------------
    def when_missing(self) -> None:
        if self.source is not None:
            self.prepare()
            return
        raise DataNotFoundError(
            f"dataset {NAME!r} is not prepared: looked for {self.prepared_dir}/meta.json. Run `seqbench data prepare "
            f"{NAME} --source DIR`" + (f" --data-option root={self.root}" if self.root else "")
            + f" with DIR holding {LAYOUT_HELP} (the LPC sheets are in the public YingzhenLi/Sprites "
              f"repository), or pass --data-option {NAME}.source=DIR to prepare on first use")

    def build_spec(self) -> DataSpec:
        meta = self.meta()
        hi = 255.0 / meta.get("value_scale", 256)
        labels = tuple(LabelSpec(a, 6, "static", CLASS_NAMES[a]) for a in ATTRIBUTES)
        labels += (LabelSpec("motion", len(MOTION_NAMES), "dynamic", MOTION_NAMES),)
        identity = {"dataset": NAME, "adapter_version": self.version,
                    "x_train": meta["sha256"]["x_train.npy"], "x_test": meta["sha256"]["x_test.npy"],
                    "labels_train": meta["sha256"]["labels_train.npy"], "labels_test": meta["sha256"]["labels_test.npy"]}
        if self.size != CELL:  # the 64 px benchmark keeps the fingerprint it always had
            identity["size"] = self.size
        fingerprint = content_hash(identity)
        return DataSpec(name=NAME, modality="video", frames=FRAMES, channels=3, height=self.size, width=self.size,
                        value_range=(0.0, hi), labels=labels, identity_label="character", family="sprites",
                        fingerprint=fingerprint, adapter_version=self.version,
                        extra={"prepared_dir": str(self.prepared_dir), "source_format": meta.get("format"),
                               "actions": ACTIONS, "directions": DIRECTIONS,
                               "licence": "LPC art: CC-BY-SA 3.0 / GPL 3.0"})

    def load_split(self, split: Literal["train", "test"]) -> SplitData:
        if split not in ("train", "test"):
            raise ConfigError(f"dataset {NAME!r} has splits 'train' and 'test', not {split!r}; validation is carved "
                              f"from train by the framework")
        meta = self.meta()
        x, side = load_prepared(self.prepared_dir, split, ["labels", "identity", "ids"])
        if self.size != CELL:
            x = box_downsample(x, CELL // self.size)
        names = meta["label_names"]
        labels = {name: np.ascontiguousarray(side["labels"][:, i]) for i, name in enumerate(names)}
        return SplitData(x=x, labels=labels, identity=side["identity"], ids=side["ids"],
                         value_range=(0.0, 255.0 / meta.get("value_scale", 256)))

    def info(self) -> dict[str, Any]:
        out = super().info()
        meta = self.meta()
        out.update({"prepared_dir": str(self.prepared_dir), "source": meta.get("source"),
                    "source_format": meta.get("format"), "order": meta.get("order"),
                    "split_rule": meta.get("split_rule"), "prepare_seconds": meta.get("prepare_seconds"),
                    "sha256": meta.get("sha256")})
        return out

    def verify(self) -> list[str]:
        """Check every prepared file against its checksum and the labels against the characters."""
        directory = self.prepared_dir
        self.meta()
        problems = verify_folder(directory)
        if problems:
            return problems
        seen = []
        for split in ("train", "test"):
            data = self.split(split)
            identity = data.identity
            expected = attributes_of(identity)
            for i, name in enumerate(ATTRIBUTES):
                bad = np.flatnonzero(data.labels[name] != expected[:, i])
                if len(bad):
                    problems.append(f"{directory}/labels_{split}.npy: {name} disagrees with the character index in "
                                    f"{len(bad)} clips (first row {bad[0]})")
            if data.x.shape[1:] != (FRAMES, 3, self.size, self.size):
                problems.append(f"{directory}/x_{split}.npy: shape {data.x.shape}, expected "
                                f"(N, 8, 3, {self.size}, {self.size})")
            for lo in range(0, len(data), 1024):
                block = np.asarray(data.x[lo:lo + 1024])
                empty = np.flatnonzero(block.reshape(len(block), -1).max(axis=1) == 0)
                if len(empty):
                    problems.append(f"{directory}/x_{split}.npy: clip {lo + empty[0]} is all black "
                                    f"({len(empty)} such clips in rows {lo}..{lo + len(block) - 1})")
            seen.append(identity * len(MOTION_NAMES) + data.labels["motion"])
        ids = np.concatenate(seen)
        if len(np.unique(ids)) != len(ids):
            problems.append(f"{directory}: some (character, motion) pairs occur more than once")
        if self.meta().get("format") == "sheets" and not self.subset and len(ids) != CHARACTERS * len(MOTION_NAMES):
            problems.append(f"{directory}: {len(ids)} clips; the sheets give {CHARACTERS * len(MOTION_NAMES)}")
        return problems


def box_downsample(x: np.ndarray, factor: int, chunk: int = 512) -> np.ndarray:
    """uint8 clips ``[N, T, C, H, W]`` with each ``factor x factor`` block averaged (rounded half up).

    Box averaging, not subsampling: a 1-px detail of the pixel art (an eye, a belt) keeps a quarter of
    its colour instead of vanishing or surviving whole depending on its parity. Read in chunks, so a
    memory-mapped split is never held in float at once.
    """
    n, t, c, h, w = x.shape
    out = np.empty((n, t, c, h // factor, w // factor), dtype=np.uint8)
    area = factor * factor
    for lo in range(0, n, chunk):
        block = np.asarray(x[lo:lo + chunk], dtype=np.uint16)
        summed = block.reshape(len(block), t, c, h // factor, factor, w // factor, factor).sum(axis=(4, 6))
        out[lo:lo + chunk] = (summed + area // 2) // area
    return out


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CorruptMediaError(path, f"cannot read .npy ({type(exc).__name__}: {exc})") from None


@hookimpl
def seqbench_add_datasets() -> list[type[DatasetAdapter]]:
    return [Sprites]
