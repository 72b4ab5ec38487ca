"""Faces, paper-faithful identity: DeepFace VGG-Face embeddings, as in DiffSDA's AED.

DeepFace downloads ``vgg_face_weights`` on first use, which fails offline; the backend stays
unavailable (with the fix) until the file for the chosen engine is in
``$DEEPFACE_HOME/.deepface/weights/`` (``vgg_face_weights.pth`` for the PyTorch engine, ``.onnx``
for ONNX Runtime, ``.h5`` for TensorFlow; the engine is forced with ``engine``, exported as
``DEEPFACE_BACKEND_ENGINE``). Frames are pre-cropped faces: ``detector_backend="skip"`` by default,
so every frame is embedded; with a detector, frames where none is found are invalid. Embeddings
are DeepFace's ``represent`` output and distances are plain Euclidean, as the reference code
computed them, so the numbers are on the papers' scale. Needs ``werkzeug`` importable (an
undeclared import of deepface). VGG-Face weights are reportedly CC BY-NC.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..hookspecs import hookimpl
from . import Backend, Embeddings, frames_to_uint8, missing_module_reason

INSTALL = "pip install 'seqbench[faces-paper]'  (deepface 0.0.103 + werkzeug), then copy vgg_face_weights.<ext> " \
          "into $DEEPFACE_HOME/.deepface/weights/"
WEIGHT_FILES = {"pytorch": "vgg_face_weights.pth", "onnx": "vgg_face_weights.onnx", "tensorflow": "vgg_face_weights.h5"}


def deepface_weights_dir() -> Path:
    home = os.environ.get("DEEPFACE_HOME") or str(Path.home())
    return Path(home) / ".deepface" / "weights"


class DeepFaceIdentity(Backend):
    name: ClassVar[str] = "deepface-vggface"
    kind: ClassVar[str] = "identity"
    families: ClassVar[tuple[str, ...]] = ("faces",)
    extra: ClassVar[str | None] = "faces-paper"
    install: ClassVar[str] = INSTALL
    comparable_to_papers: ClassVar[bool] = True
    description: ClassVar[str] = "DeepFace VGG-Face identity embedding (DiffSDA's AED model; user-supplied weights)"

    def __init__(self, engine: str = "pytorch", detector_backend: str = "skip", model_name: str = "VGG-Face",
                 **options: Any):
        super().__init__(engine=engine, detector_backend=detector_backend, model_name=model_name, **options)
        if engine not in WEIGHT_FILES:
            raise ValueError(f"deepface: engine={engine!r}; choose one of {', '.join(WEIGHT_FILES)}")
        self.engine, self.detector_backend, self.model_name = engine, detector_backend, model_name

    def unavailable_reason(self) -> str | None:
        modules = ("deepface", "werkzeug") + {"pytorch": ("torch",), "onnx": ("onnxruntime",),
                                              "tensorflow": ("tensorflow",)}[self.engine]
        reason = missing_module_reason(modules, INSTALL)
        if reason:
            return reason
        weights = deepface_weights_dir() / WEIGHT_FILES[self.engine]
        if self.model_name == "VGG-Face" and not weights.is_file():
            return (f"VGG-Face weights {weights} are missing (DeepFace would download them, which needs the network): "
                    f"copy the file there or set DEEPFACE_HOME")
        return None

    def __call__(self, frames: Any) -> Embeddings:
        os.environ.setdefault("DEEPFACE_BACKEND_ENGINE", self.engine)
        from deepface import DeepFace

        images = frames_to_uint8(frames)[..., ::-1]  # DeepFace takes BGR arrays, like OpenCV
        results = DeepFace.represent([np.ascontiguousarray(im) for im in images], model_name=self.model_name,
                                     detector_backend=self.detector_backend, enforce_detection=False, align=False)
        vectors, valid = [], []
        for faces in results:  # one list of faces per image (batched call)
            face = faces[0] if isinstance(faces, list) else faces
            vectors.append(np.asarray(face["embedding"], dtype=np.float64))
            found = self.detector_backend == "skip" or float(face.get("face_confidence") or 0.0) > 0.0
            valid.append(found)
        return Embeddings(np.stack(vectors), np.asarray(valid))


@hookimpl
def seqbench_add_backends() -> list[type[Backend]]:
    return [DeepFaceIdentity]
