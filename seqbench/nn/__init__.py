"""Neural building blocks shared by the built-in methods and judges (and open to plugins).

Frame encoders/decoders (:mod:`.frames`), Gaussian helpers (:mod:`.distributions`) and learned
priors (:mod:`.priors`). Imported only when a method or judge is built, so torch here is fine.
"""

from __future__ import annotations

from .distributions import GaussianHead, gaussian_log_density, kl_normal, randn, reparameterize
from .frames import (DCGAN_SIZES, DCGANDown, DCGANFrameDecoder, DCGANFrameEncoder, DCGANUp, MLPFrameDecoder,
                     MLPFrameEncoder, OutputActivation, fold_time, frame_decoder, frame_encoder, output_activation,
                     unfold_time)
from .priors import LSTMDynamicsPrior

__all__ = [
    "DCGAN_SIZES", "DCGANDown", "DCGANFrameDecoder", "DCGANFrameEncoder", "DCGANUp", "GaussianHead",
    "LSTMDynamicsPrior", "MLPFrameDecoder", "MLPFrameEncoder", "OutputActivation", "fold_time", "frame_decoder",
    "frame_encoder", "gaussian_log_density", "kl_normal", "output_activation", "randn", "reparameterize",
    "unfold_time",
]
