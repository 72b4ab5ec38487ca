"""Reading the media real datasets arrive in, and the decoded-clip cache every adapter writes.

Real datasets arrive as videos (mp4/avi/mov/gif through PyAV), folders of frames (jpg/png through
Pillow) or waveforms (wav / NIST SPHERE through soundfile). Decoding them is far slower than
training on them, so adapters decode each item once, at the clip length, stride and size of the
settings in use, into uint8 (video) or float32 (audio) ``.npy`` arrays that training memory-maps.
One module per concern:

* :mod:`~seqbench.media.errors`: unreadable files, wrong layouts, missing decoder packages;
* :mod:`~seqbench.media.sampling`: which frames to read, seeded per-item randomness;
* :mod:`~seqbench.media.video`: video files and frame folders; :mod:`~seqbench.media.geometry`:
  crops and resizing; :mod:`~seqbench.media.faces`: face detection;
* :mod:`~seqbench.media.audio`: waveforms and speech features;
* :mod:`~seqbench.media.clip_cache`: :class:`ClipCacheWriter` and loading what it wrote;
* :mod:`~seqbench.media.parallel`: the bounded, ordered decoding pool;
* :mod:`~seqbench.media.writers`: writers of those layouts, for test fixtures and benchmarks.

Every public name is importable from ``seqbench.media`` itself. Heavy packages (``av``,
``soundfile``, ``cv2``, ``torch``) are imported inside the functions that need them, and a
missing one is reported with the pip command that installs it (``seqbench[data]``).
"""

from __future__ import annotations

from .audio import (SPEECH_FEATURES, audio_length, magnitude_spectrogram, mel_filterbank, normalise_features,
                    read_audio, speech_features, sphere_sample_count)
from .clip_cache import ClipCacheWriter, SkipLog, load_prepared
from .errors import CorruptMediaError, LayoutError, require
from .faces import detect_face
from .geometry import Box, center_square, crop_resize, square_around
from .parallel import default_workers, ordered_map
from .sampling import clip_indices, item_rng, stable_bucket
from .video import (IMAGE_SUFFIXES, VIDEO_SUFFIXES, count_frames, frame_files, media_length, read_frame_folder,
                    read_image, read_media, read_video)
from .writers import write_frames, write_sphere, write_video

# The prepared-folder life cycle moved to seqbench.prepared_folder; importable here as before.
from ..prepared_folder import (file_sha256, files_fingerprint, folder_complete, install_folder,
                               new_temporary_folder, verify_checksums)

__all__ = [
    "SPEECH_FEATURES", "audio_length", "magnitude_spectrogram", "mel_filterbank", "normalise_features", "read_audio",
    "speech_features", "sphere_sample_count",
    "ClipCacheWriter", "SkipLog", "load_prepared",
    "CorruptMediaError", "LayoutError", "require",
    "detect_face",
    "Box", "center_square", "crop_resize", "square_around",
    "default_workers", "ordered_map",
    "clip_indices", "item_rng", "stable_bucket",
    "IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "count_frames", "frame_files", "media_length", "read_frame_folder",
    "read_image", "read_media", "read_video",
    "write_frames", "write_sphere", "write_video",
    "file_sha256", "files_fingerprint", "folder_complete", "install_folder", "new_temporary_folder",
    "verify_checksums",
]
