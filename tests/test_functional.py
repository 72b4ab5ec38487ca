"""Tests of seqbench.functional: hand-computed values for every formula, plus properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import seqbench.functional as F
from seqbench.functional import bootstrap as bootstrap_module

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)


# ----------------------------------------------------------------------------- strategies

@st.composite
def prob_matrices(draw, max_n: int = 12, max_c: int = 6) -> np.ndarray:
    """Row-stochastic [N, C] matrices, including exact zeros and one-hot rows."""
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(2, max_c))
    raw = draw(hnp.arrays(np.float64, (n, c), elements=st.floats(0, 1, allow_subnormal=False)))
    raw[raw.sum(axis=1) == 0, 0] = 1.0
    return raw / raw.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------- judge metrics

class TestJudge:
    def test_accuracy_from_logits_and_indices(self):
        # argmax rows: [2,1]->0, [0,3]->1, [5,4]->0; labels [0,1,1] -> hits 1,1,0 -> 2/3
        logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 4.0]])
        assert F.judge_accuracy(logits, [0, 1, 1]) == pytest.approx(2 / 3)
        assert F.judge_accuracy(torch.tensor(logits), torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
        assert F.judge_accuracy(np.array([0, 1, 0]), np.array([0, 1, 1])) == pytest.approx(2 / 3)
        bf16 = torch.tensor(logits, dtype=torch.bfloat16)  # numpy has no bfloat16
        assert F.judge_accuracy(bf16, [0, 1, 1]) == pytest.approx(2 / 3)

    def test_one_hot_balanced(self):
        # p = one-hot, classes used equally: H(y|x) = 0, pbar = (.5,.5), H(y) = ln 2, IS = exp(ln 2) = 2
        p = np.array([[1.0, 0.0], [0.0, 1.0]])
        assert F.conditional_entropy(p) == pytest.approx(0.0, abs=1e-12)
        assert F.marginal_entropy(p) == pytest.approx(math.log(2))
        assert F.inception_score(p) == pytest.approx(2.0)

    def test_uniform_predictions(self):
        # every row (.5,.5): H(y|x) = H(y) = ln 2, KL(p_i || pbar) = 0 -> IS = 1
        p = np.full((3, 2), 0.5)
        assert F.conditional_entropy(p) == pytest.approx(math.log(2))
        assert F.marginal_entropy(p) == pytest.approx(math.log(2))
        assert F.inception_score(p) == pytest.approx(1.0)

    def test_soft_predictions(self):
        # rows (.75,.25), (.25,.75): H(y|x) = -(.75 ln .75 + .25 ln .25) = 0.562335
        # pbar = (.5,.5): H(y) = ln 2 = 0.693147; IS = exp(0.693147 - 0.562335) = exp(0.130812) = 1.139754
        p = np.array([[0.75, 0.25], [0.25, 0.75]])
        h_yx = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
        assert F.conditional_entropy(p) == pytest.approx(h_yx)
        assert F.conditional_entropy(p) == pytest.approx(0.562335, abs=1e-6)
        assert F.inception_score(p) == pytest.approx(1.139754, abs=1e-6)

    def test_skewed_marginal(self):
        # one-hot rows, classes 0,0,1: pbar = (2/3, 1/3); H(y) = -(2/3 ln 2/3 + 1/3 ln 1/3) = 0.636514
        # KL per row: ln(1/(2/3)) = 0.405465 twice, ln 3 = 1.098612 -> mean 0.636514 -> IS = 1.889882
        p = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        assert F.marginal_entropy(p) == pytest.approx(0.636514, abs=1e-6)
        assert F.inception_score(p) == pytest.approx(1.889882, abs=1e-6)

    def test_probs_must_be_probabilities(self):
        with pytest.raises(ValueError, match="softmax"):
            F.inception_score(np.array([[2.0, -1.0], [0.5, 0.5]]))

    def test_class_balanced_indices(self):
        # class 0 at 1,2,5; class 1 at 3,6; class 2 at 0,4,7 -> m = 2
        # first two of each: {1,2}, {3,6}, {0,4} -> sorted [0,1,2,3,4,6]
        labels = np.array([2, 0, 0, 1, 2, 0, 1, 2])
        np.testing.assert_array_equal(F.class_balanced_indices(labels, 3), [0, 1, 2, 3, 4, 6])
        np.testing.assert_array_equal(F.class_balanced_indices(torch.tensor(labels)), [0, 1, 2, 3, 4, 6])
        # without num_classes only the classes present are balanced: 5 at 0,1; 7 at 2 -> m = 1
        np.testing.assert_array_equal(F.class_balanced_indices([5, 5, 7]), [0, 2])

    def test_class_balanced_indices_absent_class(self):
        with pytest.raises(ValueError, match=r"classes \[1\]"):
            F.class_balanced_indices([0, 0, 2], 3)

    def test_judge_scores_balances_on_ground_truth(self):
        # labels 0,0,0,1 with correct one-hot predictions; balanced subset = items 0 and 3
        # -> accuracy 1, H(y|x) 0, H(y) = ln 2, IS = 2 (unbalanced H(y) would be H(.75,.25) = 0.562)
        p = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        out = F.judge_scores(p, [0, 0, 0, 1])
        assert out["n"] == 2
        assert out["accuracy"] == 1.0
        assert out["marginal_entropy"] == pytest.approx(math.log(2))
        assert out["inception_score"] == pytest.approx(2.0)
        assert out["conditional_entropy"] == pytest.approx(0.0, abs=1e-12)

    def test_judge_scores_balance_on_driving_factor(self):
        # predictions 0,0,1,0 against labels 0,1,1,0
        p = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
        # balanced on the labels themselves (2 per class): all four items, accuracy 3/4
        assert F.judge_scores(p, [0, 1, 1, 0])["accuracy"] == 0.75
        # balanced on the driving factor 1,1,1,0 -> m = 1 -> items 0 and 3, both predicted 0:
        # accuracy 1, pbar = (1, 0) -> H(y) = 0 and IS = 1
        out = F.judge_scores(p, [0, 1, 1, 0], balance_on=[1, 1, 1, 0])
        assert out["n"] == 2 and out["accuracy"] == 1.0
        assert out["inception_score"] == pytest.approx(1.0)
        assert out["marginal_entropy"] == pytest.approx(0.0, abs=1e-12)

    @SETTINGS
    @given(prob_matrices())
    def test_bounds(self, p):
        c = p.shape[1]
        is_ = F.inception_score(p)
        h_y, h_yx = F.marginal_entropy(p), F.conditional_entropy(p)
        assert 1.0 - 1e-9 <= is_ <= c + 1e-9
        assert h_y <= math.log(c) + 1e-9
        assert h_yx >= -1e-12
        assert h_yx <= h_y + 1e-9  # concavity of entropy
        assert is_ == pytest.approx(math.exp(h_y - h_yx), rel=1e-6)

    @SETTINGS
    @given(hnp.arrays(np.int64, st.integers(1, 30), elements=st.integers(0, 4)))
    def test_perfect_judge(self, labels):
        logits = np.eye(5)[labels] * 7.0
        assert F.judge_accuracy(logits, labels) == 1.0
        assert F.judge_accuracy(torch.tensor(logits), torch.tensor(labels)) == 1.0

    @SETTINGS
    @given(hnp.arrays(np.int64, st.integers(1, 40), elements=st.integers(0, 3)))
    def test_balanced_subset_is_balanced(self, labels):
        idx = F.class_balanced_indices(labels)
        classes, counts = np.unique(labels, return_counts=True)
        sub_classes, sub_counts = np.unique(labels[idx], return_counts=True)
        np.testing.assert_array_equal(sub_classes, classes)
        assert np.all(sub_counts == counts.min())
        assert np.all(np.diff(idx) > 0)
        for c in classes:  # the *first* members of each class
            np.testing.assert_array_equal(idx[labels[idx] == c], np.flatnonzero(labels == c)[: counts.min()])


# ----------------------------------------------------------------------------- swap protocol

class TestSwap:
    def test_hand_computed(self):
        # skin : [0,1,2,3] vs [0,1,0,3] -> T T F T ; hair: [1,1,1,1] vs [1,1,1,0] -> T T T F
        # static = skin & hair = T T F F -> 0.5
        # action argmax -> [2,0,1,1] vs [2,0,0,1] -> T T F T -> 0.75
        # joint = T T F F -> 0.5
        action_logits = np.eye(3)[[2, 0, 1, 1]]
        out = F.swap_accuracies(
            {"skin": [0, 1, 2, 3], "hair": torch.tensor([1, 1, 1, 1])},
            {"action": action_logits},
            {"skin": [0, 1, 0, 3], "hair": [1, 1, 1, 0]},
            {"action": [2, 0, 0, 1]},
        )
        assert (out.static, out.dynamic, out.joint) == (0.5, 0.75, 0.5)
        assert out.per_head == {"skin": 0.75, "hair": 0.75, "action": 0.75}
        np.testing.assert_array_equal(out.per_item["static"], [True, True, False, False])
        np.testing.assert_array_equal(out.per_item["dynamic"], [True, True, False, True])
        np.testing.assert_array_equal(out.per_item["joint"], [True, True, False, False])
        np.testing.assert_array_equal(out.per_item["head/skin"], [True, True, False, True])
        assert out.per_item["joint"].dtype == bool
        assert out.as_dict()["head/action"] == 0.75 and out.n == 4

    def test_missing_group_is_nan(self):
        out = F.swap_accuracies({"id": [0, 1]}, {}, {"id": [0, 0]}, {})
        assert out.static == 0.5 and out.joint == 0.5 and math.isnan(out.dynamic)

    def test_errors(self):
        with pytest.raises(ValueError, match="different heads"):
            F.swap_accuracies({"a": [0]}, {}, {"b": [0]}, {})
        with pytest.raises(ValueError, match="both static and dynamic"):
            F.swap_accuracies({"a": [0]}, {"a": [0]}, {"a": [0]}, {"a": [0]})
        with pytest.raises(ValueError, match="length"):
            F.swap_accuracies({"a": [0, 1]}, {"b": [0]}, {"a": [0, 1]}, {"b": [0]})

    @SETTINGS
    @given(st.integers(1, 20), st.integers(0, 2**31 - 1))
    def test_joint_is_and_of_groups(self, n, seed):
        rng = np.random.default_rng(seed)
        ps, ts = {"a": rng.integers(0, 2, n), "b": rng.integers(0, 2, n)}, {"a": rng.integers(0, 2, n), "b": rng.integers(0, 2, n)}
        pd, td = {"m": rng.integers(0, 2, n)}, {"m": rng.integers(0, 2, n)}
        out = F.swap_accuracies(ps, pd, ts, td)
        np.testing.assert_array_equal(out.per_item["joint"], out.per_item["static"] & out.per_item["dynamic"])
        assert out.joint <= min(out.static, out.dynamic)
        assert out.static <= min(out.per_head["a"], out.per_head["b"])


# ----------------------------------------------------------------------------- cross-leakage

def _split_codes(seed: int, n: int = 240, leak: bool = False):
    """Static codes carry identity (4 classes), dynamic codes carry action (3 classes)."""
    rng = np.random.default_rng(seed)
    ident, action = rng.integers(0, 4, n), rng.integers(0, 3, n)
    static = rng.normal(size=(n, 6))
    static[:, :4] += 3.0 * np.eye(4)[ident]
    dynamic = rng.normal(size=(n, 5, 4))
    dynamic[:, :, :3] += 3.0 * np.eye(3)[action][:, None, :]
    if leak:  # each code also carries the other factor
        static[:, 4] += 4.0 * action
        dynamic[:, :, 3] += 4.0 * ident[:, None]
    return static, dynamic, ident, action


class TestLeakage:
    def test_pool_dynamic(self):
        # frames [1,2] and [3,6]: mean [2,4], population std [1,2]
        d = np.array([[[1.0, 2.0], [3.0, 6.0]]])
        np.testing.assert_allclose(F.pool_dynamic(d), [[2.0, 4.0, 1.0, 2.0]])
        np.testing.assert_allclose(F.pool_dynamic(torch.tensor(d)), [[2.0, 4.0, 1.0, 2.0]])
        np.testing.assert_allclose(F.pool_dynamic(np.ones((2, 1, 3))), np.c_[np.ones((2, 3)), np.zeros((2, 3))])

    def test_chance_accuracy(self):
        # majority class 0 holds 2 of 4 labels -> 0.5 (1/C would say 1/3)
        assert F.chance_accuracy([0, 0, 1, 2]) == 0.5
        assert F.chance_accuracy(torch.tensor([3, 1, 3, 1])) == 0.5

    def test_random_codes_near_chance(self):
        rng = np.random.default_rng(0)
        x_tr, x_te = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
        y_tr, y_te = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
        chance = F.chance_accuracy(y_te)
        for clf in ("logreg", "mlp"):
            assert abs(F.probe_accuracy(x_tr, y_tr, x_te, y_te, clf) - chance) < 0.12

    def test_informative_codes_near_one(self):
        rng = np.random.default_rng(1)
        y_tr, y_te = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
        x_tr = 4.0 * np.eye(3)[y_tr] + rng.normal(scale=0.5, size=(200, 3))
        x_te = 4.0 * np.eye(3)[y_te] + rng.normal(scale=0.5, size=(200, 3))
        for clf in ("logreg", "mlp"):
            assert F.probe_accuracy(x_tr, y_tr, x_te, y_te, clf) > 0.95

    def test_deterministic(self):
        rng = np.random.default_rng(2)
        x, y = rng.normal(size=(120, 5)), rng.integers(0, 2, 120)
        args = (x[:80], y[:80], x[80:], y[80:])
        assert F.probe_accuracy(*args, "mlp", seed=3) == F.probe_accuracy(*args, "mlp", seed=3)
        assert F.probe_accuracy(*args, "logreg") == F.probe_accuracy(*args, "logreg")

    def test_single_class_train_is_constant_predictor(self):
        # train labels all 2 -> predict 2 -> test [2,0,2,2] -> 3/4
        assert F.probe_accuracy(np.zeros((3, 2)), [2, 2, 2], np.ones((4, 2)), [2, 0, 2, 2]) == 0.75

    def test_errors(self):
        with pytest.raises(ValueError, match="pool"):
            F.probe_accuracy(np.zeros((4, 2, 3)), [0, 1, 0, 1], np.zeros((4, 2, 3)), [0, 1, 0, 1])
        with pytest.raises(ValueError, match="unknown classifier"):
            F.probe_accuracy(np.zeros((4, 2)), [0, 1, 0, 1], np.zeros((4, 2)), [0, 1, 0, 1], "svm")

    def test_leakage_clean_and_leaky(self):
        s_tr, d_tr, id_tr, a_tr = _split_codes(10)
        s_te, d_te, id_te, a_te = _split_codes(11)
        clean = F.leakage(train_static=s_tr, train_dynamic=torch.tensor(d_tr), train_static_labels=id_tr,
                          train_dynamic_labels=a_tr, test_static=s_te, test_dynamic=d_te,
                          test_static_labels=id_te, test_dynamic_labels=a_te)
        assert clean.leakage == pytest.approx((clean.s_to_d + clean.d_to_s) / 2)
        assert clean.chance == pytest.approx((clean.chance_s_to_d + clean.chance_d_to_s) / 2)
        assert clean.s_to_d < clean.chance_s_to_d + 0.12
        assert clean.d_to_s < clean.chance_d_to_s + 0.12
        s_tr, d_tr, id_tr, a_tr = _split_codes(10, leak=True)
        s_te, d_te, id_te, a_te = _split_codes(11, leak=True)
        leaky = F.leakage(train_static=s_tr, train_dynamic=d_tr, train_static_labels=id_tr,
                          train_dynamic_labels=a_tr, test_static=s_te, test_dynamic=d_te,
                          test_static_labels=id_te, test_dynamic_labels=a_te)
        assert leaky.s_to_d > 0.9 and leaky.d_to_s > 0.9
        assert set(leaky.as_dict()) == {"s_to_d", "d_to_s", "leakage", "chance_s_to_d", "chance_d_to_s", "chance"}


# ----------------------------------------------------------------------------- AKD / AED

class TestDistances:
    # one sequence, two frames, two keypoints
    REF = np.array([[[[0.0, 0.0], [2.0, 2.0]], [[0.0, 0.0], [0.0, 0.0]]]])
    GEN = np.array([[[[1.0, 0.0], [2.0, 5.0]], [[3.0, 4.0], [0.0, 0.0]]]])

    def test_akd_hand_computed(self):
        # frame 0: |diff| = (1,0),(0,3) -> L1 mean 4/4 = 1.0 ; euclidean (1 + 3)/2 = 2.0
        # frame 1: |diff| = (3,4),(0,0) -> L1 mean 7/4 = 1.75 ; euclidean (5 + 0)/2 = 2.5
        out = F.average_keypoint_distance(self.REF, self.GEN)
        assert out.value == pytest.approx((1.0 + 1.75) / 2)
        assert out.failure_rate == 0.0 and out.n_frames == 2 and out.n_valid == 2
        eu = F.average_keypoint_distance(torch.tensor(self.REF), torch.tensor(self.GEN), distance="euclidean")
        assert eu.value == pytest.approx((2.0 + 2.5) / 2)

    def test_akd_excludes_failed_frames(self):
        # detection failed on frame 1 of the generated video -> only frame 0 (1.0) counts
        out = F.average_keypoint_distance(self.REF, self.GEN, valid_gen=[[True, False]])
        assert out.value == pytest.approx(1.0)
        assert out.failure_rate == 0.5 and out.n_valid == 1
        same = F.average_keypoint_distance(self.REF, self.GEN, valid_ref=[[True, False]])
        assert same.value == out.value and same.failure_rate == out.failure_rate

    def test_akd_per_keypoint_mask(self):
        # frame 0 keeps keypoint 0 only (L1 (1+0)/2 = 0.5); frame 1 keeps nothing -> excluded
        valid = np.array([[[True, False], [False, False]]])
        out = F.average_keypoint_distance(self.REF, self.GEN, valid_gen=valid)
        assert out.value == pytest.approx(0.5)
        assert out.failure_rate == 0.5

    def test_akd_nan_coordinates_are_failures(self):
        gen = self.GEN.copy()
        gen[0, 1] = np.nan
        out = F.average_keypoint_distance(self.REF, gen)
        assert out.value == pytest.approx(1.0) and out.failure_rate == 0.5

    def test_per_item_and_ratio_form(self):
        # seq 0: frames at distance 1 and 3 ; seq 1: distance 5 and a failed frame
        # pooled value = (1 + 3 + 5) / 3 = 3 ; per item [2, 5] ; sums [4, 5] ; counts [2, 1]
        ref = np.zeros((2, 2, 1, 2))
        gen = np.zeros((2, 2, 1, 2))
        gen[0, 0, 0] = [1.0, 1.0]
        gen[0, 1, 0] = [3.0, 3.0]
        gen[1, 0, 0] = [5.0, 5.0]
        gen[1, 1, 0] = [99.0, 99.0]
        out = F.average_keypoint_distance(ref, gen, valid_gen=[[True, True], [True, False]])
        assert out.value == pytest.approx(3.0)
        np.testing.assert_allclose(out.per_item, [2.0, 5.0])
        np.testing.assert_allclose(out.item_sum, [4.0, 5.0])
        np.testing.assert_array_equal(out.item_count, [2, 1])
        assert out.failure_rate == 0.25
        assert out.as_dict()["n_valid"] == 3

    def test_all_failed(self):
        out = F.average_keypoint_distance(self.REF, self.GEN, valid_ref=np.zeros((1, 2), bool))
        assert math.isnan(out.value) and out.failure_rate == 1.0 and math.isnan(out.per_item[0])

    def test_aed_hand_computed(self):
        # frame 0: ||(0,0) - (3,4)|| = 5 ; frame 1: identical -> 0 ; AED = 2.5
        ref = np.array([[[0.0, 0.0], [1.0, 1.0]]])
        gen = np.array([[[3.0, 4.0], [1.0, 1.0]]])
        assert F.average_euclidean_distance(ref, gen).value == pytest.approx(2.5)
        # identity not found on frame 1 of the reference: excluded, not counted as 0
        out = F.average_euclidean_distance(ref, gen, valid_ref=[[True, False]])
        assert out.value == pytest.approx(5.0) and out.failure_rate == 0.5

    def test_shape_errors(self):
        with pytest.raises(ValueError):
            F.average_keypoint_distance(np.zeros((1, 2, 3, 2)), np.zeros((1, 2, 4, 2)))
        with pytest.raises(ValueError):
            F.average_keypoint_distance(np.zeros((1, 2, 3, 2)), np.zeros((1, 2, 3, 2)), valid_ref=np.ones((2, 2)))

    @SETTINGS
    @given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**31 - 1))
    def test_identical_keypoints_zero(self, n, t, k, seed):
        kp = np.random.default_rng(seed).normal(size=(n, t, k, 2))
        for distance in ("l1", "euclidean"):
            assert F.average_keypoint_distance(kp, kp.copy(), distance=distance).value == 0.0

    @SETTINGS
    @given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**31 - 1))
    def test_invariant_to_excluded_values(self, n, t, k, seed):
        rng = np.random.default_rng(seed)
        ref, gen = rng.normal(size=(2, n, t, k, 2))
        valid_ref, valid_gen = rng.random((2, n, t)) < 0.7
        base = F.average_keypoint_distance(ref, gen, valid_ref, valid_gen)
        excluded = ~(valid_ref & valid_gen)
        garbage = rng.choice([np.nan, np.inf, 1e9, -3.0], size=excluded.sum())
        ref2, gen2 = ref.copy(), gen.copy()
        ref2[excluded] = garbage[:, None, None]
        gen2[excluded] = -garbage[:, None, None]
        again = F.average_keypoint_distance(ref2, gen2, valid_ref, valid_gen)
        assert base.failure_rate == again.failure_rate == excluded.mean()
        np.testing.assert_array_equal(base.item_count, again.item_count)
        if base.n_valid:
            assert again.value == base.value
        else:
            assert math.isnan(again.value)
        emb_ref, emb_gen = rng.normal(size=(2, n, t, 3))
        e_base = F.average_euclidean_distance(emb_ref, emb_gen, valid_ref, valid_gen)
        emb_ref[excluded] = np.nan
        e_again = F.average_euclidean_distance(emb_ref, emb_gen, valid_ref, valid_gen)
        np.testing.assert_array_equal(e_base.item_sum, e_again.item_sum)


# ----------------------------------------------------------------------------- EER

def _eer_sklearn(scores: np.ndarray, target: np.ndarray) -> float:
    """EER from scikit-learn's ROC with the same interpolation rule (independent ROC code)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(target, scores, drop_intermediate=False)
    gap = (1 - tpr) - fpr
    i = int(np.argmax(gap <= 0))
    if gap[i] == 0:
        return float(fpr[i])
    return float(fpr[i - 1] + (fpr[i] - fpr[i - 1]) * gap[i - 1] / (gap[i - 1] - gap[i]))


class TestEER:
    def test_separated(self):
        assert F.equal_error_rate([0.9, 0.8, 0.7, 0.6], [True, True, False, False]) == 0.0

    def test_exact_crossing(self):
        # thresholds: +inf (FPR 0, FNR 1), .9 (0, .5), .8 (.5, .5) -> FNR = FPR = 0.5 exactly
        assert F.equal_error_rate([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(0.5)

    def test_interpolated_crossing(self):
        # P = 3, N = 2. .9: FNR 2/3 FPR 0 ; .8: FNR 1/3 FPR 0 (gap 1/3) ; .7: FNR 1/3 FPR 1/2 (gap -1/6)
        # crossing at 1/3 / (1/3 + 1/6) = 2/3 of the segment: EER = 0 + 2/3 * 1/2 = 1/3
        eer = F.equal_error_rate(np.array([0.9, 0.8, 0.7, 0.6, 0.5]), np.array([1, 1, 0, 1, 0], bool))
        assert eer == pytest.approx(1 / 3)

    def test_ties(self):
        # one tied score: ROC jumps from (0, 1) to (1, 0); midpoint 0.5
        assert F.equal_error_rate([0.5, 0.5], [True, False]) == pytest.approx(0.5)
        assert F.equal_error_rate(torch.tensor([0.5, 0.5]), torch.tensor([True, False])) == pytest.approx(0.5)

    def test_needs_both_classes(self):
        with pytest.raises(ValueError, match="both"):
            F.equal_error_rate([0.1, 0.2], [True, True])

    def test_matches_sklearn_roc(self):
        rng = np.random.default_rng(0)
        for _ in range(5):
            t = rng.random(300) < 0.3
            s = np.round(rng.normal(size=300) + 1.2 * t, 1)  # rounding creates ties
            assert F.equal_error_rate(s, t) == pytest.approx(_eer_sklearn(s, t), abs=1e-12)

    def test_close_to_reference_bisection(self):
        # the reference's bisection on [-1, 1] lands on one side of the ROC step: within a step of ours
        from scipy.optimize import bisect

        rng = np.random.default_rng(1)
        t = rng.random(2000) < 0.2
        s = np.tanh(rng.normal(size=2000) + 1.5 * t)
        def gap(eps):
            return np.mean(s[t] <= eps) - np.mean(s[~t] > eps)
        eps = bisect(gap, -1, 1)
        reference = np.mean(s[~t] > eps)
        assert F.equal_error_rate(s, t) == pytest.approx(reference, abs=2 / min(t.sum(), (~t).sum()))

    def test_identical_distributions_half(self):
        rng = np.random.default_rng(2)
        s = rng.normal(size=8000)
        t = rng.random(8000) < 0.5
        assert F.equal_error_rate(s, t) == pytest.approx(0.5, abs=0.03)

    @SETTINGS
    @given(hnp.arrays(np.float64, st.integers(1, 20), elements=st.floats(-5, 5)),
           hnp.arrays(np.float64, st.integers(1, 20), elements=st.floats(-5, 5)))
    def test_perfect_separation_zero(self, pos, neg):
        pos = pos - pos.min() + neg.max() + 0.5
        s = np.r_[pos, neg]
        t = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
        assert F.equal_error_rate(s, t) == 0.0

    @SETTINGS
    @given(st.integers(2, 60), st.integers(0, 2**31 - 1))
    def test_rank_invariance_and_symmetry(self, n, seed):
        rng = np.random.default_rng(seed)
        t = np.arange(n) % 2 == 0
        s = np.round(rng.normal(size=n), 1)
        eer = F.equal_error_rate(s, t)
        assert 0.0 <= eer <= 1.0
        assert F.equal_error_rate(np.exp(s), t) == pytest.approx(eer, abs=1e-12)  # monotone map
        assert F.equal_error_rate(-s, ~t) == pytest.approx(eer, abs=1e-12)  # swap roles

    def test_cosine_pair_scores(self):
        # pairs (0,1), (0,2), (1,2); cos(e1, e2) = 0.1 / sqrt(1.01)
        e = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 2.0]])
        scores, target = F.cosine_pair_scores(e, [0, 0, 1])
        np.testing.assert_allclose(scores, [1 / math.sqrt(1.01), 0.0, 0.1 / math.sqrt(1.01)])
        np.testing.assert_array_equal(target, [True, False, False])
        assert F.speaker_verification_eer(e, [0, 0, 1]) == 0.0
        # zero embedding: cosine 0 with everything
        scores, _ = F.cosine_pair_scores(np.array([[0.0, 0.0], [1.0, 0.0]]), [0, 1])
        np.testing.assert_array_equal(scores, [0.0])

    def test_speaker_verification(self):
        rng = np.random.default_rng(3)
        speakers = np.repeat(np.arange(10), 6)
        centroids = rng.normal(size=(10, 16))
        good = centroids[speakers] + 0.1 * rng.normal(size=(60, 16))
        assert F.speaker_verification_eer(torch.tensor(good), speakers) == 0.0
        noise = rng.normal(size=(60, 16))
        assert F.speaker_verification_eer(noise, speakers) == pytest.approx(0.5, abs=0.1)

    def test_utterance_embeddings(self):
        # ids [7,3,7]: utterance 3 -> [3,5]; utterance 7 -> mean([1,2],[5,6]) = [3,4]
        emb, ids = F.utterance_embeddings(np.array([[1.0, 2.0], [3.0, 5.0], [5.0, 6.0]]), [7, 3, 7])
        np.testing.assert_array_equal(ids, [3, 7])
        np.testing.assert_allclose(emb, [[3.0, 5.0], [3.0, 4.0]])
        # dynamic [M, T, D]: chunks [0,2] and [4,6] of one utterance -> mean over chunks and time = 3
        emb, ids = F.utterance_embeddings(torch.tensor([[[0.0], [2.0]], [[4.0], [6.0]]]), ["a", "a"])
        np.testing.assert_allclose(emb, [[3.0]])
        assert list(ids) == ["a"]


# ----------------------------------------------------------------------------- reconstruction

class TestReconstruction:
    def test_mse_psnr_hand_computed(self):
        # item 0: squared errors 0,1 -> 0.5 ; item 1: identical -> 0
        x = np.array([[0.0, 0.0], [1.0, 1.0]])
        y = np.array([[0.0, 1.0], [1.0, 1.0]])
        np.testing.assert_allclose(F.mse(x, y), [0.5, 0.0])
        p = F.psnr(torch.tensor(x), torch.tensor(y), data_range=1.0)
        # 10 log10(1 / 0.5) = 3.0103 dB ; identical -> +inf (documented)
        assert p[0] == pytest.approx(10 * math.log10(2)) and p[1] == math.inf
        np.testing.assert_allclose(F.psnr(x, y, 1.0, max_db=100.0), [10 * math.log10(2), 100.0])
        # data_range 2 (values in [-1, 1]): 10 log10(4 / 0.5) = 9.0309 dB
        assert F.psnr(x, y, 2.0)[0] == pytest.approx(10 * math.log10(8))

    def test_psnr_identical_video(self):
        v = np.random.default_rng(0).random((2, 3, 1, 4, 4))
        assert np.all(np.isposinf(F.psnr(v, v.copy(), 1.0)))

    def test_ssim_constant_images(self):
        # constant images a = .5, b = .25: variances and covariance 0, so
        # SSIM = (2ab + C1) / (a^2 + b^2 + C1) with C1 = (0.01 * 1)^2 -> (0.25 + 1e-4) / (0.3125 + 1e-4)
        a, b = np.full((1, 1, 16, 16), 0.5), np.full((1, 1, 16, 16), 0.25)
        assert F.ssim(a, b, 1.0)[0] == pytest.approx((0.25 + 1e-4) / (0.3125 + 1e-4))

    def test_ssim_identical_is_one(self):
        x = np.random.default_rng(1).random((3, 2, 1, 12, 13))
        np.testing.assert_allclose(F.ssim(x, x.copy(), 1.0), 1.0)

    def test_ssim_matches_skimage(self):
        metrics = pytest.importorskip("skimage.metrics")
        rng = np.random.default_rng(2)
        x = rng.random((2, 3, 24, 20))
        y = np.clip(x + 0.2 * rng.normal(size=x.shape), 0, 1)
        ours = F.ssim(torch.tensor(x), y, data_range=1.0)
        for i in range(2):
            ref = metrics.structural_similarity(x[i], y[i], data_range=1.0, channel_axis=0,
                                                gaussian_weights=True, sigma=1.5,
                                                use_sample_covariance=False)
            assert ours[i] == pytest.approx(ref, abs=1e-5)  # float32 moments

    def test_ssim_video_is_frame_mean(self):
        rng = np.random.default_rng(3)
        x, y = rng.random((2, 2, 4, 1, 11, 11))
        per_frame = F.ssim(x.reshape(8, 1, 11, 11), y.reshape(8, 1, 11, 11), 1.0).reshape(2, 4)
        np.testing.assert_allclose(F.ssim(x, y, 1.0), per_frame.mean(axis=1))

    def test_ssim_errors(self):
        with pytest.raises(ValueError, match="smaller"):
            F.ssim(np.zeros((1, 1, 8, 8)), np.zeros((1, 1, 8, 8)), 1.0)
        with pytest.raises(ValueError, match="shape"):
            F.mse(np.zeros((2, 3)), np.zeros((2, 4)))


# ----------------------------------------------------------------------------- bootstrap

class TestBootstrap:
    def test_degenerate(self):
        assert F.bootstrap_ci([0.25, 0.25, 0.25]) == (0.25, 0.25)
        assert F.bootstrap_ci([3.0]) == (3.0, 3.0)

    def test_normal_approximation(self):
        x = np.random.default_rng(0).normal(size=400)
        low, high = F.bootstrap_ci(x, n_resamples=2000)
        half = 1.96 * x.std() / math.sqrt(len(x))
        assert low == pytest.approx(x.mean() - half, abs=0.15 * half)
        assert high == pytest.approx(x.mean() + half, abs=0.15 * half)

    def test_shrinks_with_n(self):
        rng = np.random.default_rng(1)
        small, large = rng.normal(size=25), rng.normal(size=400)
        w_small = np.subtract(*F.bootstrap_ci(small)[::-1])
        w_large = np.subtract(*F.bootstrap_ci(large)[::-1])
        assert w_large < 0.5 * w_small  # expected ratio sqrt(25/400) = 0.25

    def test_ratio_form_equals_mean_form_for_unit_denominators(self):
        x = np.random.default_rng(2).random(50)
        assert F.bootstrap_ci(x, denominators=np.ones(50)) == pytest.approx(F.bootstrap_ci(x), abs=1e-12)

    def test_ratio_form_for_akd(self):
        rng = np.random.default_rng(3)
        out = F.average_keypoint_distance(rng.normal(size=(30, 4, 5, 2)), rng.normal(size=(30, 4, 5, 2)),
                                          valid_gen=rng.random((30, 4)) < 0.7)
        low, high = F.bootstrap_ci(out.item_sum, denominators=out.item_count)
        assert low <= out.value <= high

    def test_seeded_and_blocked(self, monkeypatch):
        x = np.random.default_rng(4).random(40)
        once = F.bootstrap_ci(x, seed=5)
        assert F.bootstrap_ci(x, seed=5) == once
        assert F.bootstrap_ci(x, seed=6) != once
        monkeypatch.setattr(bootstrap_module, "_BLOCK_ELEMENTS", 40 * 7)  # 7 resamples per block
        assert F.bootstrap_ci(x, seed=5) == pytest.approx(once, abs=1e-12)

    def test_other_statistic_and_confidence(self):
        x = np.arange(101, dtype=float)
        lo90, hi90 = F.bootstrap_ci(x, statistic=np.median, confidence=0.9)
        lo99, hi99 = F.bootstrap_ci(x, statistic=np.median, confidence=0.99)
        assert lo99 <= lo90 <= 50 <= hi90 <= hi99

    def test_ratio_with_empty_items(self):
        # a sequence with no valid frame (sum 0, count 0) adds nothing; all-empty resamples drop
        low, high = F.bootstrap_ci([2.0, 0.0, 6.0], denominators=[1, 0, 2])
        assert 2.0 <= low <= 8 / 3 <= high <= 3.0
        with pytest.raises(ValueError, match="length"):
            F.bootstrap_ci([1.0, 2.0], denominators=[1.0])

    def test_errors(self):
        with pytest.raises(ValueError, match="NaN"):
            F.bootstrap_ci([1.0, float("nan")])
        with pytest.raises(ValueError):
            F.bootstrap_ci([])
        with pytest.raises(ValueError):
            F.bootstrap_ci([1.0], confidence=1.5)

    @SETTINGS
    @given(hnp.arrays(np.float64, st.integers(2, 60), elements=st.floats(-100, 100)))
    def test_contains_mean(self, x):
        low, high = F.bootstrap_ci(x, n_resamples=300)
        m = float(np.mean(x))
        assert low - 1e-9 <= m <= high + 1e-9


def test_public_api():
    for name in F.__all__:
        assert callable(getattr(F, name))


# ----------------------------------------------------------------------------- additions for the metric plugins

class TestResampledAndProbes:
    def test_resampled_scores_match_point_formulas(self):
        # row 0 picks every item once: the point estimates; row 1 picks item 0 twice, item 1 never
        p = np.array([[0.75, 0.25], [0.25, 0.75]])
        out = F.resampled_judge_scores(p, np.array([[0, 1], [0, 0]]))
        assert out["inception_score"][0] == pytest.approx(F.inception_score(p))
        assert out["conditional_entropy"][0] == pytest.approx(0.562335, abs=1e-6)
        assert out["marginal_entropy"][0] == pytest.approx(math.log(2))
        # identical rows: pbar = p_0, H(y) = H(y|x) = 0.562335, IS = 1
        assert out["inception_score"][1] == pytest.approx(1.0)
        assert out["marginal_entropy"][1] == pytest.approx(0.562335, abs=1e-6)

    @SETTINGS
    @given(prob_matrices(), st.integers(0, 2**31 - 1))
    def test_resampled_bounds(self, p, seed):
        idx = np.random.default_rng(seed).integers(0, len(p), size=(5, len(p)))
        out = F.resampled_judge_scores(p, idx)
        c = p.shape[1]
        assert np.all(out["inception_score"] >= 1 - 1e-9) and np.all(out["inception_score"] <= c + 1e-9)
        assert np.all(out["marginal_entropy"] <= math.log(c) + 1e-9)
        for b in range(5):
            assert out["inception_score"][b] == pytest.approx(F.inception_score(p[idx[b]]), rel=1e-9)

    def test_bootstrap_ci_indices(self):
        x = np.random.default_rng(0).random(60)
        # the mean through the index form equals the reduction form on the same seed and draws
        low, high = F.bootstrap_ci_indices(60, lambda idx: x[idx].mean(axis=1), seed=4)
        assert (low, high) == pytest.approx(F.bootstrap_ci(x, seed=4), abs=1e-12)
        p = np.eye(3)[np.random.default_rng(1).choice(3, 90, p=[0.6, 0.3, 0.1])]  # IS inside (1, 3)
        lo, hi = F.bootstrap_ci_indices(90, lambda idx: F.resampled_judge_scores(p, idx)["inception_score"],
                                        block_items=90 * 7)
        assert 1.0 < lo <= F.inception_score(p) <= hi < 3.0
        with pytest.raises(ValueError, match="resamples"):
            F.bootstrap_ci_indices(5, lambda idx: np.zeros(1), n_resamples=10)
        with pytest.raises(ValueError, match="NaN"):
            F.bootstrap_ci_indices(5, lambda idx: np.full(len(idx), np.nan))

    def test_probe_predictions(self):
        rng = np.random.default_rng(5)
        y_tr, y_te = rng.integers(0, 3, 150), rng.integers(0, 3, 60)
        x_tr = 5.0 * np.eye(3)[y_tr] + rng.normal(scale=0.3, size=(150, 3))
        x_te = 5.0 * np.eye(3)[y_te] + rng.normal(scale=0.3, size=(60, 3))
        pred = F.probe_predictions(x_tr, y_tr, x_te, y_te)
        assert pred.shape == (60,) and pred.dtype == np.int64
        assert np.mean(pred == y_te) == F.probe_accuracy(x_tr, y_tr, x_te, y_te) == 1.0
        # single train class -> constant predictor
        np.testing.assert_array_equal(F.probe_predictions(np.zeros((3, 2)), [2, 2, 2], np.ones((2, 2)), [0, 2]), [2, 2])
