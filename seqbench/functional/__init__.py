"""The functional core of seqbench's metrics: pure functions on arrays, like torchmetrics' functional API.

Every function accepts numpy arrays or torch tensors (detached and moved to the CPU), computes in
float64 and returns Python floats, numpy arrays or small frozen result records. Metric plugins
wrap these; the tests check them against hand-computed values.

- judge metrics (:mod:`.judge`): accuracy, inception score, H(y|x), H(y), class-balanced subset;
- swap protocol (:mod:`.swap`): static-only, dynamic-only and joint accuracy of swapped decodes;
- cross-leakage (:mod:`.leakage`): probe accuracies S->D, D->S, their average, chance level;
- AKD / AED (:mod:`.distances`): per-frame distances with consistent exclusion of failed detections;
- verification (:mod:`.verification`): EER, cosine pair scores, utterance embeddings;
- reconstruction (:mod:`.reconstruction`): per-item MSE, PSNR, SSIM;
- confidence intervals (:mod:`.bootstrap`): percentile bootstrap, mean or ratio statistics.
"""

from .bootstrap import bootstrap_ci, bootstrap_ci_indices
from .distances import FrameDistance, average_euclidean_distance, average_keypoint_distance
from .judge import (
    class_balanced_indices,
    conditional_entropy,
    inception_score,
    judge_accuracy,
    judge_scores,
    marginal_entropy,
    resampled_judge_scores,
)
from .leakage import LeakageScores, chance_accuracy, leakage, pool_dynamic, probe_accuracy, probe_predictions
from .reconstruction import mse, psnr, ssim
from .swap import SwapAccuracies, compound_label_parts, swap_accuracies
from .verification import cosine_pair_scores, equal_error_rate, speaker_verification_eer, utterance_embeddings

__all__ = [
    "judge_accuracy", "inception_score", "conditional_entropy", "marginal_entropy",
    "class_balanced_indices", "judge_scores", "resampled_judge_scores",
    "SwapAccuracies", "swap_accuracies", "compound_label_parts",
    "pool_dynamic", "chance_accuracy", "probe_accuracy", "probe_predictions", "LeakageScores", "leakage",
    "FrameDistance", "average_keypoint_distance", "average_euclidean_distance",
    "equal_error_rate", "cosine_pair_scores", "speaker_verification_eer", "utterance_embeddings",
    "mse", "psnr", "ssim",
    "bootstrap_ci", "bootstrap_ci_indices",
]
