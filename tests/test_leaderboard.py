"""Leaderboard layout: a headline summary table plus per-metric detail sections, on real plugin declarations."""

from __future__ import annotations

from seqbench.leaderboard import results_frame, headline_keys, render_dataset
from seqbench.plugins import load_plugins


def _row(method: str, seed: int, metric: str, key: str, value: float, higher: bool, backend: str | None = None):
    return dict(run_id="r1", timestamp="2026-11-23T00:00:00", dataset="toy", method=method, seed=seed, metric=metric,
                key=key, value=value, higher_is_better=higher, status="ok", backend=backend, profile="quick",
                metric_version="1", method_version="1", dataset_fingerprint="f", seqbench_version="0",
                git_sha="abc", device="cpu")


def _rows():
    rows = []
    for method, base in (("alpha", 0.9), ("beta", 0.5)):
        for seed in (0, 1):
            jitter = 0.01 * seed
            rows += [_row(method, seed, "judge", "swap/joint", base + jitter, True, "judge-x"),
                     _row(method, seed, "judge", "sample/fixed_static/h_y", 1.0, True, "judge-x")]
            rows += [_row(method, seed, "judge", f"swap/acc_head{i}", base, True, "judge-x") for i in range(6)]
            rows += [_row(method, seed, "judge", f"sample/fixed_dynamic/acc_head{i}", base, True, "judge-x")
                     for i in range(6)]
            rows += [_row(method, seed, "mse", "mse", 1 - base, False), _row(method, seed, "mse", "mse/frame0", 0.1, False)]
    rows += [_row("alpha", 0, "judge", "ceiling/swap/joint", 1.0, True, "judge-x"),
             _row("alpha", 0, "mse", "chance/mse", 0.5, False)]
    return rows


def test_summary_holds_headline_keys_and_details_are_split_by_group():
    headlines = headline_keys(load_plugins())
    assert "swap/joint" in headlines["judge"] and "sample/fixed_static/h_y" not in headlines["judge"]
    text = render_dataset(results_frame(_rows()), "toy", metric_order=["judge", "mse"], headlines=headlines)
    sections = text.split("\n\n")
    summary = next(s for s in sections if s.startswith("| method"))
    header = summary.splitlines()[0]
    assert "swap/joint [judge-x] ↑" in header and "mse ↓" in header
    assert "acc_head" not in header and "mse/frame0" not in header and "h_y" not in header
    assert "**0.9050 ± 0.0071**" in summary  # mean ± std over two seeds, best in bold
    assert "*judge ceiling*" in summary and "*chance*" in summary
    # 13 judge detail keys > 10: split by parent path, leaf names as headers, backend in the heading.
    assert "## judge: swap [judge-x]" in text and "## judge: sample/fixed_dynamic [judge-x]" in text
    assert "## judge: sample/fixed_static [judge-x]" in text and "## mse" in text
    swap_table = text.split("## judge: swap [judge-x]")[1].split("##")[0]
    assert "acc_head0 ↑" in swap_table and "swap/acc_head0" not in swap_table
    assert "Provenance" in text.splitlines()[-1]


def test_without_plugin_declarations_one_table_holds_everything():
    text = render_dataset(results_frame(_rows()), "toy")
    assert "##" not in text and "swap/acc_head3 [judge-x] ↑" in text and "mse/frame0 ↓" in text


def test_numbered_keys_are_in_numeric_order():
    rows = [_row("alpha", 0, "mse", f"mse/frame{t}", 0.1, False) for t in (10, 2, 0, 1)]
    text = render_dataset(results_frame(rows), "toy", metric_order=["mse"], headlines={"mse": set()})
    header = next(line for line in text.splitlines() if "frame" in line)
    positions = [header.index(f"frame{t} ") for t in (0, 1, 2, 10)]
    assert positions == sorted(positions)


def test_one_judge_key_with_two_weights_is_refused_and_one_is_shown_by_its_key():
    import pytest

    from seqbench.leaderboard import MixedVersionsError

    same = [_row(m, 0, "judge", "swap/joint", 0.5, True, "judge-x@aaaa1111") for m in ("alpha", "beta")]
    text = render_dataset(results_frame(same), "toy")
    assert "swap/joint [judge-x] ↑" in text and "evaluation model weights judge-x@aaaa1111" in text
    retrained = same[:1] + [_row("beta", 0, "judge", "swap/joint", 0.5, True, "judge-x@bbbb2222")]
    with pytest.raises(MixedVersionsError, match="judge-x@aaaa1111, judge-x@bbbb2222.*share SEQBENCH_CACHE"):
        render_dataset(results_frame(retrained), "toy")
    unrecorded = same[:1] + [_row("beta", 0, "judge", "swap/joint", 0.5, True, "judge-x")]  # before weights were kept
    with pytest.raises(MixedVersionsError, match="evaluation models judge-x, judge-x@aaaa1111"):
        render_dataset(results_frame(unrecorded), "toy")


def test_paper_reported_rows_get_their_own_section_and_are_never_ranked(tmp_path):
    import json

    import pytest

    from seqbench.errors import SeqbenchError
    from seqbench.results import REPORTED_FILE, append_rows, load_results

    append_rows(tmp_path / "run1" / "results.jsonl", _rows())
    reported = [dict(dataset="toy", method="alpha", key="action accuracy (fixed dynamics)", value=99.5,
                     higher_is_better=True, source="Someone et al., 2021, Table 1",
                     protocol="64 px, the paper's judge"),
                dict(dataset="toy", method="gamma", key="swap/joint", value=0.99, higher_is_better=True,
                     source="Other et al., 2023, Table 2", protocol="as printed")]
    (tmp_path / REPORTED_FILE).write_text("".join(json.dumps(r) + "\n" for r in reported))
    frame = load_results(tmp_path)
    text = render_dataset(frame, "toy", metric_order=["judge", "mse"], headlines=headline_keys(load_plugins()))
    ranked, _, section = text.partition("## Reported by the papers")
    assert "gamma" not in ranked and "99.5" not in ranked  # a reported method or figure never enters the ranking
    assert "**0.9" in ranked  # alpha's measured swap/joint is still the best measured one, not gamma's 0.99
    lines = section.split("<sub>")[0].strip().splitlines()
    assert "| *alpha*  | action accuracy (fixed dynamics) | 99.5 ↑" in "\n".join(lines)
    assert any("*gamma*" in line and "Other et al., 2023, Table 2" in line for line in lines)
    assert render_dataset(frame, "toy") == render_dataset(load_results(tmp_path), "toy")  # stable

    (tmp_path / REPORTED_FILE).write_text(json.dumps(dict(reported[0], source="")) + "\n")
    with pytest.raises(SeqbenchError, match=r"paper-reported.jsonl: row 1 lacks source"):
        load_results(tmp_path)


def test_a_key_only_some_seeds_report_says_how_many_it_averages():
    rows = _rows() + [_row("alpha", 1, "judge", "recon/static", 0.8, True, "judge-x")]
    text = render_dataset(results_frame(rows), "toy")
    line = next(line for line in text.splitlines() if line.startswith("| alpha"))
    assert "0.8000 (1 of 2 seeds)" in line  # a key a newer metric version added to seed 1 only
    assert "0.9050 ± 0.0071" in line and "(2 of 2" not in line
