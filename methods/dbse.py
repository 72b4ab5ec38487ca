"""DBSE: sequential disentanglement by extracting static information from a single sample.

Berman et al., ICML 2024 (reference code ``azencot-group/DBSE``; re-implemented here from the
facts in the project notes). The idea: the static factor of a sequence is fully visible in any
single frame, so DBSE reads it from frame 0 only, and feeds the dynamics encoder only the
*residuals* of every frame's embedding with respect to frame 0 - the shared appearance is
subtracted out before the temporal model ever sees it, which starves the dynamic code of static
information.

Model (``g`` is the per-frame DCGAN encoder, or an MLP for audio feature vectors):

* static posterior: ``h = Tanh(Linear(g(x_0)))`` then linear heads ``f_mean``, ``f_logvar``;
  static prior ``N(0, I)``.
* dynamic posterior: ``r_t = g(x_t) - g(x_0)`` for ``t >= 1``; ``r_0`` (identically zero) is
  replaced by ``N(0, 1)`` noise in training; a 2-layer bidirectional LSTM with hidden size
  ``z_dim`` gives ``z_mean``, ``z_logvar`` per frame. Dynamic prior: the autoregressive LSTM prior
  (hidden ``rnn_size``), teacher-forced on the posterior samples.
* decoder: DCGAN transposed convs on ``[z_t, f]`` for every frame, Sigmoid output.

Loss (sums over pixels, divided by the batch size, like the reference)::

    w_seq * MSE_sum(x_hat, x) / B + w_frame * MSE_sum(x_hat_0, x_0) / B + beta * (w_f * KL_f + w_z * KL_z)

Interpretation choices (documented because the notes leave them open):

* **Frame-0 reconstruction** is the decoder applied to ``[z_0, f]`` compared with ``x_0`` - the
  first frame of the same sequence reconstruction, reused rather than decoded twice. ``z_0`` is
  computed from noise in place of a residual, so the only clean path for frame 0's appearance is
  ``f``; weighting this term separately (30 vs 87 on MUG) is what pushes the static code to carry
  the first frame.
* **Deterministic encoding** (``encode``) feeds zeros, the mean of the training noise, as frame
  0's residual: the LSTM's gates are affine in their input, so this is the average input the
  network was trained on, and the codes are the posterior means.
* **Static hidden width**: ``Linear(g_dim, f_dim)`` before the Tanh.
* **KL annealing** (MUG): the reference multiplies the KL weight in place every epoch, so it
  compounds. Here ``beta`` is a pure function of ``global_step / total_steps`` (cyclical annealing:
  ``kl_cycles`` cycles, each ramping linearly from 0 to 1 over the first ``kl_ramp`` of the cycle
  and then held at 1), so resuming from a checkpoint reproduces it exactly. It scales both KL terms.
* **Value range**: the network works in [0, 1] (what its Sigmoid produces and what the judges
  read). Inputs in another finite ``spec.value_range`` are mapped linearly into [0, 1] and decoded
  frames mapped back. Audio features whose range is not [0, 1] are unbounded in practice (log
  spectra, standardised bins), so there the decoder output is linear and values are used as
  they are (``decoder_output = "auto"``; set ``sigmoid``/``tanh``/``linear`` to override).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.config import MethodConfig
from seqbench.errors import ConfigError
from seqbench.hookspecs import hookimpl
from seqbench.method import Method, ObjectiveMethod
from seqbench.nn import (GaussianHead, LSTMDynamicsPrior, frame_decoder, frame_encoder, kl_normal, randn,
                         reparameterize)
from seqbench.nn.dataspace import (DECODER_OUTPUTS, dcgan_unsupported, from_model_space, resolve_output,
                                   to_model_space)
from seqbench.types import DataSpec, Factors

_ANNEALS = ("none", "cyclic")


@dataclass
class DBSEConfig(MethodConfig):
    """DBSE settings. Defaults are the paper's Sprites architecture; profiles set the training run."""

    f_dim: int = 256  # static code size
    z_dim: int = 256  # dynamic code size (also the BiLSTM hidden size, as in the paper)
    g_dim: int = 256  # per-frame embedding size
    rnn_size: int = 64  # hidden size of the LSTM dynamics prior
    base_channels: int = 64  # DCGAN width: channels base, 2*base, ... (64-128-256-512 at 64 px)
    audio_hidden: tuple[int, ...] = (256, 256)  # MLP frame encoder/decoder widths for audio
    w_seq: float = 5.0
    w_frame: float = 1.0
    w_f: float = 1.0
    w_z: float = 1.0
    kl_anneal: str = "none"  # none | cyclic (multiplies both KL terms; a function of step / total steps)
    kl_cycles: int = 4
    kl_ramp: float = 0.5  # fraction of each annealing cycle spent ramping 0 -> 1
    decoder_output: str = "auto"  # auto | sigmoid | tanh | linear

    profiles: ClassVar[dict[str, dict[str, Any]]] = {
        # Wiring check: tiny widths, a handful of steps.
        "smoke": dict(f_dim=8, z_dim=8, g_dim=16, rnn_size=16, base_channels=8, audio_hidden=(32,),
                      lr=2e-3, batch_size=16, steps=30, checkpoint_every=10, val_every=10, log_every=5),
        # The CPU protocol (quick = 32 px synthetic-sprites, on the plateau within 30 min of 2 cores,
        # docs/protocol.md): 6000 steps of 32 (0.11 s/step on one thread at 32 px). At 3000 the curves
        # looked flat (+1.2-1.6 %, one seed flagged by a single low probe) but 6000 went on to swap
        # 0.966 / 0.382 / 0.368 -> 0.993 / 0.432 / 0.430 (3 seeds), every seed on its plateau. A DCGAN of
        # quarter width (16-32-64-128) and codes wide enough for Sprites-like factors. Tuned on a
        # Sprites-like toy set: after 1000 steps a judge reads the action from decodes with resampled f
        # (87-99%) while attributes fall to chance; width 32 was no better per step and 2-5x slower.
        "quick": dict(f_dim=64, z_dim=32, g_dim=128, rnn_size=64, base_channels=16, audio_hidden=(256, 256),
                      lr=2e-3, batch_size=32, steps=6000, grad_clip=5.0, checkpoint_every=500, val_every=200,
                      log_every=25),
        # The paper's Sprites run.
        "paper": dict(f_dim=256, z_dim=256, g_dim=256, rnn_size=64, base_channels=64,
                      w_seq=5.0, w_frame=1.0, w_f=1.0, w_z=1.0,
                      optimizer="adam", lr=2e-3, betas=(0.9, 0.999), batch_size=128, epochs=2000,
                      checkpoint_every=2000, val_every=1000),
    }
    family_profiles: ClassVar[dict[tuple[str, str], dict[str, Any]]] = {
        ("paper", "sprites"): {},
        # MUG; the reference's compounding KL schedule is replaced by non-compounding cyclic annealing.
        ("paper", "faces"): dict(f_dim=64, z_dim=64, g_dim=128, rnn_size=256,
                                 w_seq=87.0, w_frame=30.0, w_f=15.0, w_z=1.0,
                                 lr=1.5e-3, batch_size=64, kl_anneal="cyclic"),
        # TIMIT; values the notes do not give (weights, optimiser) stay at the Sprites values.
        ("paper", "speech"): dict(f_dim=128, z_dim=128, g_dim=128, rnn_size=256),
    }
    dataset_profiles: ClassVar[dict[tuple[str, str], dict[str, Any]]] = {
        # The real Sprites (32 px) needs the same 6000: at 3000 the static swap probe still rose 0.68 -> 0.78
        # over the last quarter (+10 %); at 6000 it is on its plateau (+4.2 %, static swap 0.92; docs/protocol.md).
        # synthetic-speech: the MSE probe is on its plateau by step 200 of 3000 (-4.0 / -0.7 / +0.1 % over the
        # last quarter, 3 seeds); 6000 would buy nothing.
        ("quick", "synthetic-speech"): dict(steps=3000),
    }

    def __post_init__(self) -> None:
        if self.decoder_output not in DECODER_OUTPUTS:
            raise ConfigError(f"dbse.decoder_output={self.decoder_output!r}: choose one of {', '.join(DECODER_OUTPUTS)}")
        if self.kl_anneal not in _ANNEALS:
            raise ConfigError(f"dbse.kl_anneal={self.kl_anneal!r}: choose one of {', '.join(_ANNEALS)}")
        if not 0.0 < self.kl_ramp <= 1.0:
            raise ConfigError(f"dbse.kl_ramp={self.kl_ramp}: must be in (0, 1]")
        if self.kl_cycles < 1:
            raise ConfigError(f"dbse.kl_cycles={self.kl_cycles}: must be at least 1")
        for name in ("f_dim", "z_dim", "g_dim", "rnn_size", "base_channels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"dbse.{name}={getattr(self, name)}: must be a positive integer")


def cyclic_kl_weight(step: int, total_steps: int, cycles: int, ramp: float) -> float:
    """Cyclical KL annealing (Fu et al., 2019) as a pure function of training progress.

    Each of ``cycles`` equal cycles ramps linearly 0 -> 1 over its first ``ramp`` fraction, then
    holds 1. Computed from the step, never accumulated, so it cannot compound or drift on resume.
    """
    progress = min(max(step / max(1, total_steps), 0.0), 1.0)
    phase = (progress * cycles) % 1.0 if progress < 1.0 else 1.0
    return min(1.0, phase / ramp)


class DBSE(ObjectiveMethod):
    """DBSE: static code from the first frame, dynamics from residuals to it (see the module docstring)."""

    name: ClassVar[str] = "dbse"
    version: ClassVar[str] = "1"
    Config: ClassVar[type[MethodConfig]] = DBSEConfig
    modalities: ClassVar[tuple[str, ...]] = ("video", "audio")
    description: ClassVar[str] = ("Static code from the first frame only; dynamics from frame-embedding residuals "
                                  "to it (BiLSTM), LSTM dynamics prior, DCGAN decoder.")
    paper: ClassVar[str] = "Berman et al., ICML 2024"

    config: DBSEConfig

    def __init__(self, config: DBSEConfig, spec: DataSpec):
        super().__init__(config, spec)  # refuses a spec that supports() rejects
        c = config
        self.output = self.resolve_output(c.decoder_output, spec)
        self.encoder = frame_encoder(spec, c.g_dim, base=c.base_channels, hidden=c.audio_hidden)
        self.static_net = nn.Sequential(nn.Linear(c.g_dim, c.f_dim), nn.Tanh())
        self.static_head = GaussianHead(c.f_dim, c.f_dim)
        self.dynamic_rnn = nn.LSTM(c.g_dim, c.z_dim, num_layers=2, bidirectional=True, batch_first=True)
        self.dynamic_head = GaussianHead(2 * c.z_dim, c.z_dim)
        self.prior = LSTMDynamicsPrior(c.z_dim, c.rnn_size)
        self.decoder = frame_decoder(spec, c.z_dim + c.f_dim, output=self.output, base=c.base_channels,
                                     hidden=c.audio_hidden)

    # -- applicability and value range ------------------------------------------------------
    @classmethod
    def supports(cls, spec: DataSpec) -> str | None:
        return super().supports(spec) or dcgan_unsupported(spec, cls.name)

    @staticmethod
    def resolve_output(choice: str, spec: DataSpec) -> Literal["sigmoid", "tanh", "linear"]:
        """The decoder's output activation: Sigmoid unless the data is audio outside [0, 1]."""
        return resolve_output(choice, spec, owner="dbse")

    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Map data from ``spec.value_range`` to the range the decoder's activation produces."""
        return to_model_space(x, self.spec.value_range, self.output)

    def from_model_space(self, y: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_model_space`: decoder output back to ``spec.value_range``."""
        return from_model_space(y, self.spec.value_range, self.output)

    # -- the model --------------------------------------------------------------------------
    def posterior(self, x: torch.Tensor, *, frame0_noise: bool,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(f_mean, f_logvar, z_mean, z_logvar)`` for ``x`` ``[B, T, ...]`` already in model space.

        Frame 0's residual is N(0, 1) noise when ``frame0_noise`` (training), zeros otherwise.
        """
        g = self.encoder(x)  # [B, T, g_dim]
        g0 = g[:, 0]
        f_mean, f_logvar = self.static_head(self.static_net(g0))
        if frame0_noise:
            first = randn(g0.shape, device=g.device, dtype=g.dtype, generator=generator)
        else:
            first = torch.zeros_like(g0)
        residual = torch.cat([first[:, None], g[:, 1:] - g0[:, None]], dim=1)
        h, _ = self.dynamic_rnn(residual)
        z_mean, z_logvar = self.dynamic_head(h)
        return f_mean, f_logvar, z_mean, z_logvar

    def decode_model_space(self, f: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Decoder output in model space for static ``f`` ``[B, S]`` and dynamics ``z`` ``[B, T, D]``."""
        if f.shape[0] != z.shape[0]:
            raise ValueError(f"static codes for {f.shape[0]} sequences but dynamics for {z.shape[0]}")
        h = torch.cat([z, f[:, None].expand(-1, z.shape[1], -1)], dim=-1)
        return self.decoder(h)

    def kl_weight(self) -> float:
        """The KL multiplier ``beta`` at the current step (1 without annealing)."""
        c = self.config
        if c.kl_anneal == "cyclic":
            return cyclic_kl_weight(self.global_step, self.total_steps, c.kl_cycles, c.kl_ramp)
        return 1.0

    def losses(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The DBSE objective and its parts for a data-space batch ``x`` ``[B, T, C, H, W]``."""
        c = self.config
        x = self.to_model_space(x.float())
        batch = x.shape[0]
        f_mean, f_logvar, z_mean, z_logvar = self.posterior(x, frame0_noise=True, generator=generator)
        f = reparameterize(f_mean, f_logvar, generator)
        z = reparameterize(z_mean, z_logvar, generator)
        x_hat = self.decode_model_space(f, z).float()
        recon = F.mse_loss(x_hat, x, reduction="sum") / batch
        recon_frame0 = F.mse_loss(x_hat[:, 0], x[:, 0], reduction="sum") / batch
        prior_mean, prior_logvar = self.prior(z)
        kl_f = kl_normal(f_mean.float(), f_logvar.float()).mean()
        kl_z = kl_normal(z_mean.float(), z_logvar.float(), prior_mean.float(), prior_logvar.float()).sum(dim=1).mean()
        beta = self.kl_weight()
        loss = c.w_seq * recon + c.w_frame * recon_frame0 + beta * (c.w_f * kl_f + c.w_z * kl_z)
        return {"loss": loss, "recon": recon.detach(), "recon_frame0": recon_frame0.detach(),
                "kl_f": kl_f.detach(), "kl_z": kl_z.detach()}

    # -- the method contract ----------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> Factors:
        f_mean, _, z_mean, _ = self.posterior(self.to_model_space(x.float()), frame0_noise=False)
        return Factors(static=f_mean, dynamic=z_mean)

    def decode(self, factors: Factors, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.from_model_space(self.decode_model_space(factors.static, factors.dynamic))

    @torch.no_grad()
    def sample(self, n: int, frames: int, which: Literal["static", "dynamic"], *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        if which == "static":
            return randn((n, self.config.f_dim), device=self.device, generator=generator)
        if which == "dynamic":
            return self.prior.sample(n, frames, generator=generator)
        raise ValueError(f"which must be 'static' or 'dynamic', got {which!r}")

    def train_statistics(self) -> dict[str, float]:
        return {"kl_beta": self.kl_weight()}


@hookimpl
def seqbench_add_methods() -> list[type[Method]]:
    return [DBSE]
