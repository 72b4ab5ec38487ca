"""The method glue shared by C-DSVAE and SPYL (a helper module, not a plugin: its name starts with ``_``).

Both methods are the :class:`~seqbench.nn.seqvae.SequentialVAE` plus extra loss terms, so the
config fields they share, the value-range handling, the ELBO + mutual-information part of the
objective and the method contract (``encode``/``decode``/``sample``/``validation_step``) live
here once; ``spyl.py`` and ``cdsvae.py`` only add what their papers add.

Shared choices:

* **Objective core**: ``w_recon * MSE_sum/B + w_kl_s * KL_s + w_kl_d * KL_d + w_mi * MI(s; d)``,
  with ``MI`` the minibatch-weighted-sampling estimate (:func:`~seqbench.nn.contrastive.mws_mutual_information`)
  on the posterior samples, its training-set size ``N`` given by ``mi_dataset_size`` (the method is
  not told the size of the training split; ``N`` only shifts the estimate, see that function).
* **Codes for contrastive terms** are posterior means (both papers' anchors are means; the
  sampled codes would add noise to cosine similarities without adding information).
* **Deterministic encoding** returns the posterior means; ``decode`` is deterministic.
* **Value range** as in DBSE (:mod:`seqbench.nn.dataspace`): Sigmoid decoder in [0, 1] with data
  mapped linearly, linear decoder for audio features outside [0, 1].
* **Validation** computes the full objective with every term switched on (contrastive warm-ups
  ignored) and noise seeded by the batch, so checkpoints before and after a warm-up compare on the
  same objective and the same draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from seqbench.config import MethodConfig
from seqbench.errors import ConfigError
from seqbench.method import ObjectiveMethod
from seqbench.nn.contrastive import mws_mutual_information
from seqbench.nn.dataspace import (DECODER_OUTPUTS, dcgan_unsupported, from_model_space, resolve_output,
                                   to_model_space)
from seqbench.nn.seqvae import SequentialVAE, VAEPass
from seqbench.types import DataSpec, Factors


@dataclass
class SeqVAEConfig(MethodConfig):
    """Backbone sizes and ELBO weights shared by C-DSVAE and SPYL (subclasses set the defaults)."""

    s_dim: int = 256  # static code size ("f" in C-DSVAE)
    d_dim: int = 32  # per-frame dynamic code size ("z" in C-DSVAE)
    g_dim: int = 128  # per-frame embedding size
    rnn_size: int = 256  # BiLSTM / dynamics RNN / LSTM prior hidden size
    base_channels: int = 64  # DCGAN width: channels base, 2*base, ... (64-128-256-512 at 64 px)
    audio_hidden: tuple[int, ...] = (256, 256)  # MLP frame encoder/decoder widths for audio
    w_recon: float = 1.0
    w_kl_s: float = 1.0
    w_kl_d: float = 1.0
    w_mi: float = 1.0
    mi_dataset_size: int = 9000  # N of the MWS estimator (Sprites' training set); only shifts the estimate
    nce_tau: float = 0.5  # InfoNCE temperature (cosine similarity)
    decoder_output: str = "auto"  # auto | sigmoid | tanh | linear

    method_name: ClassVar[str] = "seqvae"  # for error messages

    def __post_init__(self) -> None:
        owner = self.method_name
        if self.decoder_output not in DECODER_OUTPUTS:
            raise ConfigError(f"{owner}.decoder_output={self.decoder_output!r}: choose one of "
                              f"{', '.join(DECODER_OUTPUTS)}")
        for name in ("s_dim", "d_dim", "g_dim", "rnn_size", "base_channels", "mi_dataset_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{owner}.{name}={getattr(self, name)}: must be a positive integer")
        if self.nce_tau <= 0:
            raise ConfigError(f"{owner}.nce_tau={self.nce_tau}: the temperature must be positive (paper: 0.5)")


class SeqVAEMethod(ObjectiveMethod):
    """A :class:`SequentialVAE` behind the method contract; subclasses add :meth:`extra_losses`."""

    modalities: ClassVar[tuple[str, ...]] = ("video", "audio")
    Config: ClassVar[type[MethodConfig]] = SeqVAEConfig

    config: SeqVAEConfig

    def __init__(self, config: SeqVAEConfig, spec: DataSpec):
        super().__init__(config, spec)  # refuses a spec that supports() rejects
        c = config
        self.output = resolve_output(c.decoder_output, spec, owner=self.name)
        self.vae = SequentialVAE(spec, s_dim=c.s_dim, d_dim=c.d_dim, g_dim=c.g_dim, rnn_size=c.rnn_size,
                                 base_channels=c.base_channels, audio_hidden=c.audio_hidden, output=self.output)

    @classmethod
    def supports(cls, spec: DataSpec) -> str | None:
        return super().supports(spec) or dcgan_unsupported(spec, cls.name)

    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Map data from ``spec.value_range`` to the range the decoder's activation produces."""
        return to_model_space(x, self.spec.value_range, self.output)

    def from_model_space(self, y: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_model_space`: decoder output back to ``spec.value_range``."""
        return from_model_space(y, self.spec.value_range, self.output)

    # -- the objective ----------------------------------------------------------------------
    def extra_losses(self, x: torch.Tensor, vae: VAEPass, *, full: bool,
                     generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """The method's own terms for model-space ``x``: weighted ``loss`` plus parts to log.

        ``full`` asks for every term regardless of warm-ups (validation).
        """
        return {}

    def losses(self, x: torch.Tensor, *, full: bool = False,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The whole objective and its parts for a data-space batch ``x``."""
        c = self.config
        x = self.to_model_space(x.float())
        vae = self.vae(x, generator=generator)
        post = vae.post
        mi = mws_mutual_information(vae.s, post.s_mean, post.s_logvar, vae.d, post.d_mean, post.d_logvar,
                                    dataset_size=c.mi_dataset_size)
        loss = c.w_recon * vae.recon + c.w_kl_s * vae.kl_s + c.w_kl_d * vae.kl_d + c.w_mi * mi
        extra = self.extra_losses(x, vae, full=full, generator=generator)
        if "loss" in extra:
            loss = loss + extra.pop("loss")
        parts = {"recon": vae.recon, "kl_s": vae.kl_s, "kl_d": vae.kl_d, "mi": mi, **extra}
        return {"loss": loss, **{k: v.detach() for k, v in parts.items()}}

    # -- the method contract ----------------------------------------------------------------
    def validation_losses(self, x: torch.Tensor, *, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The full objective (see the module docstring)."""
        return self.losses(x, full=True, generator=generator)

    def encode(self, x: torch.Tensor) -> Factors:
        post = self.vae.posterior(self.to_model_space(x.float()))
        return Factors(static=post.s_mean, dynamic=post.d_mean)

    def decode(self, factors: Factors, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.from_model_space(self.vae.decode(factors.static, factors.dynamic))

    @torch.no_grad()
    def sample(self, n: int, frames: int, which: Literal["static", "dynamic"], *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        if which == "static":
            return self.vae.sample_static(n, generator=generator)
        if which == "dynamic":
            return self.vae.sample_dynamic(n, frames, generator=generator)
        raise ValueError(f"which must be 'static' or 'dynamic', got {which!r}")
