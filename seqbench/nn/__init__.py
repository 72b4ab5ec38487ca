"""Neural building blocks shared by the built-in methods and judges (and open to plugins).

Frame encoders/decoders (:mod:`.frames`), Gaussian helpers (:mod:`.distributions`), learned
priors (:mod:`.priors`), value-range mapping (:mod:`.dataspace`), the sequential-VAE backbone of
C-DSVAE / SPYL (:mod:`.seqvae`), contrastive estimators - InfoNCE, MI (:mod:`.contrastive`) - and
clip augmentations (:mod:`.augment`), transformer blocks - patches, T5 relative bias, space-time
attention, Q-Former, a causal prior over discrete codes (:mod:`.transformer`) -, and the diffusion toolkit: noise-level embeddings (:mod:`.embeddings`),
attention blocks (:mod:`.attention`), the ADM U-Net (:mod:`.unet`), MLP denoisers (:mod:`.mlp`),
schedules, samplers and inversion (:mod:`.diffusion`), vector quantizers (:mod:`.quantize`), the
cached VQ autoencoder (:mod:`.vqae`), the latent diffusion prior (:mod:`.latent_prior`) and shared
regularisers (:mod:`.losses`), code standardisation and the factor-usage probe (:mod:`.factors`). Imported only when a method or judge is built, so torch here is fine.
"""

from __future__ import annotations

from .distributions import GaussianHead, gaussian_log_density, kl_normal, randn, reparameterize
from .frames import (DCGAN_SIZES, DCGANDown, DCGANFrameDecoder, DCGANFrameEncoder, DCGANUp, MLPFrameDecoder,
                     MLPFrameEncoder, OutputActivation, PooledFrameEncoder, fold_time, frame_decoder, frame_encoder,
                     output_activation, unfold_time)
from .priors import LSTMDynamicsPrior
from .dataspace import (DECODER_OUTPUTS, dcgan_unsupported, from_model_space, model_range, resolve_output,
                        to_model_space)
from .contrastive import info_nce, kl_farthest, mws_mutual_information, pairwise_log_density, similarity
from .augment import colour_distort, random_resized_crop, shuffle_frames, spectral_offset
from .seqvae import Posterior, SequentialVAE, VAEPass
from .transformer import (CausalCodePrior, DividedSpaceTimeBlock, PatchEmbed, PatchHead, PreNormBlock, QFormer,
                          RelativePositionBias, SpaceTimeTransformer, Transformer, causal_mask, patchify,
                          relative_position_bucket, unpatchify)
from .attention import (CrossAttention, SelfAttention2d, SpatialTransformer, TokenSelfAttention, group_norm,
                        zero_module)
from .diffusion import (DDPMSchedule, EDMConfig, EDMPrecond, ddim_invert, ddim_sample, ddpm_sample,
                        edm_heun_invert, edm_heun_sample, edm_sigma_steps, edm_training_sigmas, heun_nfe)
from .embeddings import TimestepEmbedding, sinusoidal_embedding
from .factors import FactorNorm, code_spread, ddpm_usage_report, ddpm_x0_error, factor_usage, usage_report
from .latent_prior import LatentDiffusionPrior, RunningStandardizer
from .losses import orthogonality_loss
from .mlp import MLPDenoiser
from .quantize import GumbelQuantizer, QuantizerOutput, VectorQuantizer, codebook_perplexity
from .unet import ResBlock, UNet, UNetEncoder
from .vqae import VQAEConfig, VQAutoencoder, load_or_train_vqae, train_vqae

__all__ = [
    "FactorNorm", "code_spread", "ddpm_usage_report", "ddpm_x0_error", "factor_usage", "usage_report",
    "CrossAttention", "DDPMSchedule", "EDMConfig", "EDMPrecond", "GumbelQuantizer", "LatentDiffusionPrior",
    "MLPDenoiser", "QuantizerOutput", "ResBlock", "RunningStandardizer", "SelfAttention2d", "SpatialTransformer",
    "TimestepEmbedding", "TokenSelfAttention", "UNet", "UNetEncoder", "VQAEConfig", "VQAutoencoder",
    "VectorQuantizer", "codebook_perplexity", "ddim_invert", "ddim_sample", "ddpm_sample", "edm_heun_invert",
    "edm_heun_sample", "edm_sigma_steps", "edm_training_sigmas", "group_norm", "heun_nfe", "load_or_train_vqae",
    "orthogonality_loss", "sinusoidal_embedding", "train_vqae", "zero_module",
    "DCGAN_SIZES", "DCGANDown", "DCGANFrameDecoder", "DCGANFrameEncoder", "DCGANUp", "GaussianHead",
    "LSTMDynamicsPrior", "MLPFrameDecoder", "MLPFrameEncoder", "OutputActivation", "PooledFrameEncoder", "fold_time",
    "frame_decoder",
    "frame_encoder", "gaussian_log_density", "kl_normal", "output_activation", "randn", "reparameterize",
    "unfold_time",
    "DECODER_OUTPUTS", "dcgan_unsupported", "from_model_space", "model_range", "resolve_output", "to_model_space",
    "info_nce", "kl_farthest", "mws_mutual_information", "pairwise_log_density", "similarity",
    "colour_distort", "random_resized_crop", "shuffle_frames", "spectral_offset",
    "Posterior", "SequentialVAE", "VAEPass",
    "CausalCodePrior", "DividedSpaceTimeBlock", "PatchEmbed", "PatchHead", "PreNormBlock", "QFormer",
    "RelativePositionBias", "SpaceTimeTransformer", "Transformer", "causal_mask", "patchify",
    "relative_position_bucket", "unpatchify",
]
