"""The step benchmark runs, reports every implementation and computes its ratios correctly."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from optimlab import bench
from optimlab.cli import app


def test_resnet50_like_shape_set_has_the_advertised_size():
    shapes = bench.resnet50_like_shapes()
    n_params = sum(int(np.prod(s)) for s in shapes)
    assert len(shapes) == 108 and 25e6 < n_params < 26e6


def test_table_ratios_follow_their_definitions():
    results = [
        bench.Timing("adam", "small", "optimlab", 2.0, 8.0),
        bench.Timing("adam", "small", "keras", 4.0, 8.0),
        bench.Timing("adam", "small", "torch-fused", 1.0, 8.0),
    ]
    bandwidth = 1e9
    frame = bench.table(results, {"small": bandwidth})
    n_params = sum(int(np.prod(s)) for s in bench.SHAPE_SETS["small"]())
    bound_ms = 1e3 * (3 + 2 * 2) * 4 * n_params / bandwidth  # two 4-byte slots
    ours = frame[frame.implementation == "optimlab"].iloc[0]
    assert ours.ratio_to_best_peer == 2.0
    assert np.isclose(ours.ratio_to_bandwidth_bound, 2.0 / bound_ms)
    summary = bench.summary(frame).iloc[0]
    assert (summary.best_peer, summary.ratio, summary.speedup_vs_keras_tf_function) == ("torch-fused", 2.0, 2.0)


def test_cli_bench_writes_csv_png_and_summary(tmp_path, monkeypatch):
    # Keep it quick: the small shape set, one repetition, and no XLA compilation.
    monkeypatch.setattr(bench, "measure_bandwidth", lambda shapes, **_: 1e10)
    original = bench.implementations
    monkeypatch.setattr(bench, "implementations",
                        lambda name, shapes, **kw: [i for i in original(name, shapes, **kw) if "xla" not in i[0]])
    result = CliRunner().invoke(app, ["bench", "--optimizers", "sgd", "--shapes", "small", "--repeats", "1",
                                      "--steps", "1", "--no-isolate", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(tmp_path / "bench.csv")
    assert {"optimlab", "optimlab-plain", "keras"} <= set(frame.implementation)
    assert (frame.dropna(subset=["median_ms"]).median_ms > 0).all()
    assert "min-max" in result.output and "interleaved repeats" in result.output
    assert (tmp_path / "bench.png").stat().st_size > 10_000
    assert (tmp_path / "summary.csv").exists()


def test_every_implementation_is_timed_once_per_repeat_in_a_fresh_order_with_its_spread(monkeypatch):
    """The repeats interleave the implementations (one sample of each per repeat, a new order each repeat), and
    each reports its median with the min and max of its samples."""
    calls = []
    monkeypatch.setattr(bench, "_time", lambda fn, steps: fn(steps) or 1e-5 * (1 + len(calls) % 3))
    fakes = [(label, (lambda label=label: ((lambda n: calls.append((label, n))), 4.0)), "") for label in "abcd"]
    monkeypatch.setattr(bench, "implementations", lambda name, shapes, **kw: fakes)
    results = bench.measure("sgd", "small", repeats=5, steps=1, pause=0.0)
    untimed = [label for label, n in calls if n == 1][4:]  # the step before each timed block (after the warm-ups)
    orders = [tuple(untimed[i:i + 4]) for i in range(0, len(untimed), 4)]
    assert len(orders) == 5 and all(sorted(o) == list("abcd") for o in orders) and len(set(orders)) > 1
    for r in results:
        assert r.min_ms <= r.median_ms <= r.max_ms and r.min_ms < r.max_ms


def test_isolated_run_measures_in_a_fresh_process_and_returns_the_timings(monkeypatch):
    monkeypatch.setattr(bench, "measure_bandwidth", lambda shapes, **_: 1e10)
    results, bandwidth = bench.run(["gd"], ["small"], repeats=1, steps=1, pause=0.0, isolate=True)
    labels = {r.implementation for r in results}
    assert {"optimlab", "optimlab-plain", "keras"} <= labels and bandwidth == {"small": 1e10}
    assert all(r.median_ms > 0 for r in results if not r.note.startswith("failed"))


def test_cli_bench_rejects_unknown_names(tmp_path):
    result = CliRunner().invoke(app, ["bench", "--optimizers", "nope", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown optimizer 'nope'" in result.output
    result = CliRunner().invoke(app, ["bench", "--shapes", "huge", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown shape set" in result.output


def test_raw_tensorflow_kernel_peers_run_and_report_their_state():
    shapes = bench.SHAPE_SETS["small"]()
    for name, (kernel, slot_names, _) in bench.RAW_KERNELS.items():
        labels = [label for label, *_ in bench.implementations(name, shapes, peers=("tf-fused",))]
        assert "tf-fused" in labels, name
        run, state_bytes = bench._raw_runner(name, shapes)
        run(1)
        assert state_bytes == 4.0 * len(slot_names), kernel


def test_steps_per_call_runs_that_many_steps_per_call_and_reports_per_step(monkeypatch):
    """K steps per call: TensorFlow runners make K optimizer steps in each call (one compiled loop), torch's and
    Optax's K steps too, and the timings are per step."""
    import optimlab
    import torch

    shapes = bench.SHAPE_SETS["small"]()
    for opt in (optimlab.get("sgd", momentum=0.9), optimlab.get("adam", fused=False)):
        run, _ = bench._tf_runner(opt, shapes, steps_per_call=4)
        run(3)
        assert int(opt.iterations) == 12, opt
    made = []
    monkeypatch.setattr(torch.optim.SGD, "step", lambda self, closure=None: made.append(1))
    run, _ = bench._torch_runner("SGD", {"momentum": 0.9}, shapes, "fused", steps_per_call=4)
    made.clear()
    run(3)
    assert len(made) == 12
    run, _ = bench._raw_runner("sgd", shapes, steps_per_call=4)
    run(1)  # traces and runs the loop
    monkeypatch.setattr(bench, "_time", lambda fn, steps: 8e-3)
    fakes = [("a", lambda: ((lambda n: None), 4.0), "")]
    monkeypatch.setattr(bench, "implementations", lambda name, shapes, **kw: fakes)
    (timing,) = bench.measure("sgd", "small", repeats=2, steps=1, pause=0.0, steps_per_call=4)
    assert timing.median_ms == 2.0  # 8 ms per call of 4 steps


def test_optax_runner_makes_steps_per_call_steps_in_one_jitted_loop():
    pytest.importorskip("optax")
    shapes = [(3,)]
    run, _ = bench._optax_runner("sgd", {}, shapes, steps_per_call=5)
    run(2)  # ten steps of x -= 1e-3 * g from the seeded start
    rng = np.random.default_rng(0)
    start = rng.standard_normal((3,), dtype=np.float32)
    grad = rng.standard_normal((3,), dtype=np.float32) * 1e-3
    holder = [c.cell_contents for c in run.__closure__ if isinstance(c.cell_contents, list)][0]
    params = holder[0]  # the runner's parameters after its calls
    np.testing.assert_allclose(np.asarray(params[0]), start - 10 * 1e-3 * grad, rtol=1e-5)


def test_cli_bench_steps_per_call_is_reported_and_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "measure_bandwidth", lambda shapes, **_: 1e10)
    original = bench.implementations
    monkeypatch.setattr(bench, "implementations",
                        lambda name, shapes, **kw: [i for i in original(name, shapes, **kw) if i[0] == "optimlab"])
    result = CliRunner().invoke(app, ["bench", "--optimizers", "gd", "--shapes", "small", "--repeats", "1",
                                      "--steps", "1", "--no-isolate", "--steps-per-call", "3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "3 steps per call" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["bench", "--steps-per-call", "0", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "steps-per-call" in result.output
