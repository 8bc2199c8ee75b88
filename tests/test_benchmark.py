"""benchmarks.benchmark: the harness (order, ratios, JSON), not the numbers.

One real run of one small case in a fresh process checks the end-to-end
path (child process, result line, table, JSON file); the rest drives the
harness with stand-in cases.
"""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO
from benchmarks import benchmark


def case(name, group="g", higher_is_better=True):
    return benchmark.Case(name, group, "steps/s", higher_is_better,
                          run=None, quick_size=1, full_size=2)


def test_one_case_in_a_fresh_process_writes_the_table_and_json(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.benchmark", "--quick", "--cases=matmul",
         f"--out={out}"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "matmul" in done.stdout and "GFLOP/s" in done.stdout
    report = json.loads(out.read_text())
    assert set(report) >= {"cases", "comparisons", "limits", "machine",
                           "rounds", "quick", "seconds", "command"}
    entry = report["cases"]["matmul"]
    assert entry["unit"] == "GFLOP/s" and len(entry["values"]) == 1
    assert entry["median"] > 1 and entry["peak_rss_mb"] > 10
    assert report["machine"]["cpus"] >= 1 and report["quick"] is True


def test_cases_of_a_group_alternate_after_a_warm_up_round(monkeypatch):
    calls = []

    def fake_child(case, quick, paths):
        calls.append(case.name)
        return {"value": float(len(calls)), "peak_rss_mb": 1.0}

    monkeypatch.setattr(benchmark, "run_child", fake_child)
    cases = [case("a"), case("b"), case("c", group="other")]
    results = benchmark.run_groups(cases, rounds=2, warm_up=True, quick=True,
                                   paths=benchmark.Paths("/nonexistent",
                                                         "/nonexistent", "/tmp"),
                                   say=lambda line: None)
    assert calls == ["a", "b", "a", "b", "a", "b", "c", "c", "c"]
    # The warm-up round is not kept.
    assert [r["value"] for r in results["a"]] == [3.0, 5.0]
    assert [r["value"] for r in results["b"]] == [4.0, 6.0]


def test_a_failing_case_is_reported_and_the_others_go_on(monkeypatch):
    def fake_child(case, quick, paths):
        if case.name == "bad":
            raise RuntimeError("case bad failed (exit 1): boom")
        return {"value": 1.0, "peak_rss_mb": 1.0}

    said = []
    monkeypatch.setattr(benchmark, "run_child", fake_child)
    results = benchmark.run_groups([case("bad"), case("good")], rounds=2,
                                   warm_up=False, quick=True,
                                   paths=benchmark.Paths("/nonexistent",
                                                         "/nonexistent", "/tmp"),
                                   say=said.append)
    assert results["bad"] == [] and len(results["good"]) == 2
    assert any("boom" in line for line in said)


def test_ratios_are_per_round_medians_checked_against_targets():
    cases = [case("fcf_v1", "mechanics101"), case("fcf_v2", "mechanics101"),
             case("matmul", "machine")]
    run = lambda value, **extra: dict(value=value, peak_rss_mb=5.0, **extra)  # noqa: E731
    results = {
        "fcf_v1": [run(100.0, flops_per_step=1e9), run(50.0, flops_per_step=1e9),
                   run(100.0, flops_per_step=1e9)],
        "fcf_v2": [run(150.0, flops_per_step=1e9), run(60.0, flops_per_step=1e9),
                   run(140.0, flops_per_step=1e9)],
        "matmul": [run(200.0)] * 3,
    }
    report = benchmark.summarize(cases, results, rounds=3)
    [row] = [r for r in report["comparisons"] if r["a"] == "fcf_v2"
             and r["b"] == "fcf_v1"]
    # Per round 1.5, 1.2, 1.4: the median ratio is 1.4 (the ratio of the
    # medians, 140 / 100, happens to agree here; a noisy round does not
    # decide it).
    assert row["ratios"] == pytest.approx([1.5, 1.2, 1.4])
    assert row["ratio"] == pytest.approx(1.4)
    assert row["target"] == [">=", 1.0] and row["met"] is True
    entry = report["cases"]["fcf_v2"]
    assert entry["median"] == 140.0 and entry["gflops"] == pytest.approx(140.0)
    assert entry["fraction_of_matmul"] == pytest.approx(0.7)
    table = benchmark.format_report(report)
    assert "fcf_v2 / fcf_v1" in table and "70%" in table


def test_unknown_case_names_are_a_usage_error():
    with pytest.raises(Exception, match="unknown"):
        benchmark.select_cases(benchmark._cases(), ["no_such_case"])
    selected = benchmark.select_cases(benchmark._cases(), ["cifar10_eval"])
    assert [c.name for c in selected] == ["cifar10_eval_v1", "cifar10_eval_v2"]
