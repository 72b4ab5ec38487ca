"""Decoding waveforms (wav / NIST SPHERE / flac through soundfile) and the speech features adapters cache."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .errors import CorruptMediaError, require


def sphere_sample_count(path: Path) -> int | None:
    """``sample_count`` declared by a NIST SPHERE header (None for other formats).

    libsndfile sizes SPHERE data from the file length, so a truncated TIMIT file would read as
    a shorter, valid one; comparing with the header's own count catches it.
    """
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if not head.startswith(b"NIST_1A"):
        return None
    match = re.search(rb"sample_count\s+-i\s+(\d+)", head)
    return int(match.group(1)) if match else None


def audio_length(path: Path) -> tuple[int, int]:
    """(samples, sample rate) from the header of a wav / NIST SPHERE / flac file."""
    sf = require("soundfile")
    try:
        info = sf.info(str(path))
        declared = sphere_sample_count(path)
    except (RuntimeError, OSError, ValueError) as exc:  # soundfile raises LibsndfileError (a RuntimeError)
        raise CorruptMediaError(path, f"cannot read audio header ({type(exc).__name__}: {exc})") from None
    if declared is not None and info.frames < declared:
        raise CorruptMediaError(path, f"truncated: the SPHERE header declares {declared} samples, the file holds "
                                      f"{info.frames}")
    return int(info.frames), int(info.samplerate)


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] and the sample rate; short reads count as truncation."""
    sf = require("soundfile")
    expected, _ = audio_length(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise CorruptMediaError(path, f"cannot decode audio ({type(exc).__name__}: {exc})") from None
    if expected > 0 and len(data) < expected:
        raise CorruptMediaError(path, f"truncated: read {len(data)} of the {expected} samples its header declares")
    if len(data) == 0:
        raise CorruptMediaError(path, "no samples")
    return np.ascontiguousarray(data.mean(axis=1), dtype=np.float32), int(rate)


def magnitude_spectrogram(waves: np.ndarray, *, n_fft: int = 400, win_length: int = 320,
                          hop_length: int = 165, center: bool = True) -> np.ndarray:
    """Linear STFT magnitudes ``[B, frames, n_fft // 2 + 1]`` float32 of waveforms ``[B, samples]``.

    Hann window of ``win_length`` zero-padded to ``n_fft``; ``center`` reflects-pads by
    ``n_fft // 2`` so frame ``t`` is centred on sample ``t * hop_length`` (a 3200-sample chunk
    gives 20 frames with the DBSE settings).
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32))
    spec = torch.stft(x, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                      window=torch.hann_window(win_length), center=center, pad_mode="reflect",
                      return_complex=True)
    return spec.abs().transpose(1, 2).contiguous().numpy()


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Triangular HTK-mel filters ``[n_mels, n_fft // 2 + 1]`` with unit peak."""
    fmax = sample_rate / 2 if fmax is None else fmax
    mel = lambda f: 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (freqs[None] - lower) / np.maximum(centre - lower, 1e-9)
    fall = (upper - freqs[None]) / np.maximum(upper - centre, 1e-9)
    return np.clip(np.minimum(rise, fall), 0.0, None).astype(np.float32)


SPEECH_FEATURES: tuple[str, ...] = ("linear", "log", "mel")
_LOG_FLOOR = 1e-3


def speech_features(chunks: np.ndarray, feature: str, *, sample_rate: int = 16000, n_fft: int = 400,
                    win_length: int = 320, hop_length: int = 165, mels: int = 80) -> np.ndarray:
    """Un-normalised features ``[B, frames, bins]`` of waveform chunks ``[B, samples]``.

    ``linear`` and ``log``: STFT magnitudes (``n_fft // 2 + 1`` bins; ``log`` is applied by
    :func:`normalise_features`); ``mel``: magnitudes through ``mels`` triangular mel filters.
    """
    if feature not in SPEECH_FEATURES:
        raise ConfigError(f"feature={feature!r}: choose one of {', '.join(SPEECH_FEATURES)}")
    mag = magnitude_spectrogram(chunks, n_fft=n_fft, win_length=win_length, hop_length=hop_length)
    if feature == "mel":
        mag = mag @ mel_filterbank(mels, n_fft, sample_rate).T
    return mag.astype(np.float32)


def normalise_features(rows: np.ndarray, feature: str, peak: float, chunk: int = 2048) -> int:
    """Map raw features to [0, 1] in place, with ``peak`` the largest training value.

    ``linear``: ``value / peak``. ``log`` and ``mel``: ``log(value + f) - log(f)`` over
    ``log(peak + f) - log(f)`` with floor ``f = 1e-3 * peak`` (a 60 dB range). Values above the
    training peak (test data only) are clipped to 1; the number clipped is returned.
    """
    peak = float(peak) if peak > 0 else 1.0
    floor = _LOG_FLOOR * peak
    clipped = 0
    for lo in range(0, len(rows), chunk):
        block = np.asarray(rows[lo:lo + chunk], dtype=np.float64)
        if feature == "linear":
            out = block / peak
        else:
            out = (np.log(block + floor) - np.log(floor)) / (np.log(peak + floor) - np.log(floor))
        clipped += int((out > 1.0).sum())
        rows[lo:lo + chunk] = np.clip(out, 0.0, 1.0).astype(np.float32)
    return clipped
