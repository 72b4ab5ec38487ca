"""Loaded by the device scripts here (their PYTHONPATH): fp32 convolutions and matrix products on CUDA.

cuDNN computes fp32 convolutions in TF32 by default; the CPU protocol's numbers are fp32, so a GPU
experiment that stands in for it must be too.
"""

try:
    import torch

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
except Exception:  # noqa: BLE001  (a missing torch must not break an unrelated interpreter start)
    pass
