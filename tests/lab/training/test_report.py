"""report.html, from records only (its figures: test_plots.py)."""

import base64

import pytest

from optimlab.lab.training import plots, report
from optimlab.lab.training.runner import experiments


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    experiments.compare(experiments.Runner(out, "iris", epochs=6), ["gd", "adam"], seeds=2, learning_rates=[0.01, 0.1])
    experiments.compare(experiments.Runner(out, "wine", epochs=6), ["gd", "adam"], seeds=2)
    return out


def test_report_is_self_contained_with_every_figure(folder):
    path = report.write_report(folder)
    text = path.read_text()
    figures = sorted(p.name for p in (folder / "figures").glob("*.png"))
    expected = [f"{p}_{kind}.png" for p in ("iris", "wine") for kind in ("all_curves", "boxes", "curves")]
    expected += ["iris_lr_sensitivity.png"]
    assert figures == sorted(expected + ["performance_profile.png"])
    assert text.count("data:image/png;base64,") == len(figures)
    assert "src=\"figures" not in text  # nothing linked from outside the file
    first = text.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(first).startswith(b"\x89PNG")
    for word in ("Answer", "Context", "Ranked summary", "Statistical tests", "Performance profiles", "iris", "wine", "adam",
                 "Diagnostics", "Naive baseline (majority class"):
        assert word in text


def test_report_without_records_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run records"):
        report.write_report(tmp_path)


def test_report_opens_with_the_answer_then_the_context(folder):
    import numpy as np

    from optimlab.lab.training import analysis, records
    from optimlab.lab.training.analysis import verdict

    text = report.write_report(folder).read_text()
    assert text.index("Answer") < text.index("Context") < text.index("Ranked summary")
    runs = analysis.runs_table(records.load_all(folder))
    chosen = analysis.selected(runs)
    iris = chosen[chosen["problem"] == "iris"]
    medians = iris.groupby("optimizer")["test_loss"].median()
    best = medians.idxmin()
    median = np.median(iris[iris["optimizer"] == best]["test_loss"])  # ranked by median, so quoted as one
    answer = text.split('<p class="answer">')[1].split("</p>")[0]  # iris comes first
    assert answer.startswith(best) and "on iris" in answer and f"median {verdict.loss_name(iris)} {median:.4g}" in answer
    assert "2 paired seeds cannot show" in answer or "paired seeds" in answer
    for context in ("6 epochs", "full batch", "standardized", "20%", "tensorflow", "keras"):
        assert context in text
    for raw in ("test_loss_iqr", "ci_low", "epochs_to_target", "wilcoxon_p_holm"):
        assert raw not in text  # human column names only
    assert "<td class=\"num\">0%</td>" in text  # fractions as percentages


def test_summary_is_ranked_by_median_test_loss(folder):
    from optimlab.lab.training import analysis, records

    ranked = analysis.ranked_summary(analysis.runs_table(records.load_all(folder)))
    for _, group in ranked.groupby("problem"):
        medians = list(group["test_loss_median"])
        assert medians == sorted(medians)


def test_sections_appear_only_when_they_apply(tmp_path):
    from optimlab.lab.training import analysis, records

    runner = experiments.Runner(tmp_path, "iris", epochs=3, valid_fraction=0)
    experiments.sweep(runner, "adam", [0.1, 0.01, 0.001])
    text = report.write_report(tmp_path).read_text()
    assert "Performance profiles" not in text and "Statistical tests" not in text and "Tuning" not in text
    assert not (tmp_path / "figures" / "iris_boxes.png").exists()  # one seed: no per-seed box plot
    runs = analysis.runs_table(records.load_all(tmp_path))
    assert analysis.is_sweep(runs)
    assert len(plots.shown_configs(runs, "iris")) == 3  # a sweep draws every configuration
    assert plots.curve_columns(analysis.curves(records.load_all(tmp_path))) == ("train_loss", "test_loss")


def test_a_problem_note_is_shown_with_its_results(tmp_path):
    """Boston's note (its b column) comes from the problem, found by the records' problem name."""
    import os
    from pathlib import Path

    from optimlab.lab.training import problems

    shared = Path(os.environ.get("OPTIMLAB_SHARED", Path(__file__).resolve().parents[3] / ".." / "shared"))
    csv = shared / "data" / "boston_housing.csv"
    if not csv.exists():
        pytest.skip(f"Boston CSV not found at {csv}")
    experiments.sweep(experiments.Runner(tmp_path, "boston", data=str(csv), epochs=2), "gd", [1e-6])
    text = report.write_report(tmp_path).read_text()
    assert f"<p>Note: {problems.note('boston')}</p>" in text


def _chromium():
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


_CHECK = """<script>
window.addEventListener('load', function () {
  var images = Array.from(document.images);
  var body = document.body.getBoundingClientRect();
  var result = {
    images: images.length,
    loaded: images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
    page_overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    table_overflow: Array.from(document.querySelectorAll('table')).map(function (t) {
      return t.getBoundingClientRect().right - body.right; }),
    answer: document.querySelector('p.answer') ? document.querySelector('p.answer').textContent : ''
  };
  var pre = document.createElement('pre');
  pre.id = 'check';
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed (apt-get install chromium; .ci/run does)")
@pytest.mark.parametrize("width", [1280, 900])
def test_report_renders_in_headless_chromium(folder, tmp_path, width):
    """What a reader sees: every image decodes, no table runs off the page, the answer is there."""
    import json
    import re
    import subprocess

    page = tmp_path / "checked.html"
    page.write_text(report.write_report(folder).read_text().replace("</body>", _CHECK + "</body>"))
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},900",
               "--virtual-time-budget=10000", "--dump-dom", page.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="check">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stderr[-2000:]
    result = json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    assert result["images"] >= 5 and result["loaded"] == result["images"]
    assert result["page_overflow"] <= 0, result
    assert max(result["table_overflow"]) <= 1, result
    assert "on iris" in result["answer"]


# ------------------------------------------------------------------ found by a QA pass (colours, markers, diagnostics)
def _rgb(color):
    from matplotlib import colors

    return colors.to_rgb(color)


def _artist_colors(fig, names):
    """``{optimizer: {rgb, ...}}`` of the labelled lines and markers of ``fig`` (label: optimizer first)."""
    found = {}
    for ax in fig.axes:
        for artist in list(ax.lines) + list(ax.collections):
            label = str(artist.get_label()).split(" ")[0].rstrip(":")
            if label not in names:
                continue
            if hasattr(artist, "get_facecolor") and not hasattr(artist, "get_xdata"):
                rgbs = {tuple(c[:3]) for c in artist.get_edgecolor()} | {tuple(c[:3]) for c in artist.get_facecolor()}
            else:
                rgbs = {_rgb(artist.get_color())}
            found.setdefault(label, set()).update(rgbs)
    return found


def test_each_optimizer_has_one_colour_in_every_figure(folder, monkeypatch):
    """The box plot coloured by rank, the diagnostics by configuration: adam changed colour between figures."""
    from optimlab.lab.training import analysis, records

    names = {"adam", "gd"}
    mapping = plots.optimizer_colors(["gd", "adam", "gd"])
    assert list(mapping) == ["adam", "gd"] and len({mapping[n] for n in names}) == 2
    figures, save = {}, plots._save

    def keep(fig, path):
        figures[path.name] = _artist_colors(fig, names)
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    report.write_report(folder)
    expected = {"iris_curves.png", "iris_lr_sensitivity.png", "iris_boxes.png", "iris_all_curves.png",
                "wine_curves.png", "wine_boxes.png", "wine_all_curves.png", "performance_profile.png"}
    assert expected <= set(figures)
    for name in expected:
        assert set(figures[name]) == names, (name, figures[name])
        for optimizer, seen in figures[name].items():
            assert seen == {_rgb(mapping[optimizer])}, (name, optimizer, seen)
    runs = analysis.runs_table(records.load_all(folder))
    assert plots.optimizer_colors(runs["optimizer"]) == mapping


def _variant(record, optimizer, lr, seed, train_loss, status="ok"):
    """A copy of a real record as another configuration, with its own training curve."""
    import copy

    r = copy.deepcopy(record)
    r["spec"].update(optimizer=optimizer, hyperparameters={"learning_rate": lr}, seed=seed)
    r["key"], r["status"] = f"{optimizer}-{lr}-{seed}", status
    n = len(r["history"]["epoch"])
    r["history"]["train_loss"] = list(train_loss[:n])
    r["history"]["train_loss_max"] = list(train_loss[:n])
    if status == "diverged":
        r["history"]["test_loss"][-1] = None
        r["final"]["test_loss"] = None
    return r


def _diagnostics_keeping_figures(ctx, monkeypatch):
    """The diagnostics section's HTML and its figures by file name (kept open to be inspected)."""
    captured = {}
    save = plots._save

    def keep(fig, path):
        captured[path.name] = fig
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return report.section_diagnostics(ctx), captured


def test_diagnostics_name_diverged_configurations_and_keep_the_curves_readable(folder, monkeypatch, tmp_path):
    """Diverged configurations were left out of "did not beat it"; two explosions to 1e9 squashed the y axis."""
    from optimlab.lab.training import analysis, records

    base = [r for r in records.load_all(folder) if r["spec"]["problem"] == "iris"][0]
    n = len(base["history"]["epoch"])
    calm = [1.2 * 0.8 ** i for i in range(n)]
    exploding = [1.1] + [1.1 * 1000.0 ** i for i in range(1, n)]  # reaches 1e9 and beyond
    recs = [_variant(base, "adam", 0.01, s, calm) for s in range(2)]
    recs += [_variant(base, "momentum", 0.1, s, exploding, "diverged") for s in range(2)]
    recs += [_variant(base, "sgd", 0.1, 0, exploding, "diverged")]
    runs = analysis.runs_table(recs)
    ctx = report.Context(folder, recs, runs, analysis.selected(runs), analysis.curves(recs), tmp_path)
    text, captured = _diagnostics_keeping_figures(ctx, monkeypatch)
    assert ("Did not beat it (diverged): momentum lr=0.1 (every seed diverged), sgd lr=0.1 (every seed "
            "diverged).") in text
    ax = captured["iris_all_curves.png"].axes[0]
    top = ax.get_ylim()[1]
    baseline = base["diagnostics"]["baseline"]["train_loss"]
    assert top <= plots.CLIP * max(1.2, baseline) * 1.0001, top
    assert ax.get_ylim()[0] < min(calm)  # the calm curve is inside the axes
    marks = [c for c in ax.collections if len(c.get_offsets())]
    assert len(marks) == 6  # three explosion peaks (^), three diverged runs' ends (x)
    assert all(c.get_offsets()[0][1] <= top for c in marks)  # on the top edge, not off it
    above = {c.get_offsets()[0][0] for c in marks if c.get_offsets()[0][1] >= top}
    # each peak (^) sits at the epoch it happened (here the last, where the runs also diverged: x), once per spot
    last = max(base["history"]["epoch"])
    assert above == {last} and len(ax.texts) == 1
    assert all(float(t.get_text()) > top for t in ax.texts)


def test_diagnostics_of_one_problem_run_with_two_budgets(folder, monkeypatch, tmp_path):
    """Found in a code read (issue 22): diagnostics grouped by "iris" while the tables said "iris [epochs=3]":
    an empty figure and no flags explained."""
    import copy

    from optimlab.lab.training import analysis, records

    base = [r for r in records.load_all(folder) if r["spec"]["problem"] == "iris"][0]
    n = len(base["history"]["epoch"])
    exploding = [1.1] + [1.1 * 1000.0 ** i for i in range(1, n)]
    recs = []
    for epochs in (3, 6):
        for seed in range(2):
            r = _variant(base, "adam", 0.01, seed, exploding if epochs == 3 else [1.2 * 0.8 ** i for i in range(n)])
            r["spec"]["epochs"], r["key"] = epochs, f"{r['key']}-{epochs}"
            recs.append(copy.deepcopy(r))
    runs = analysis.runs_table(recs)
    assert set(runs["problem"]) == {"iris [epochs=3]", "iris [epochs=6]"}
    ctx = report.Context(folder, recs, runs, analysis.selected(runs), analysis.curves(recs), tmp_path)
    text, captured = _diagnostics_keeping_figures(ctx, monkeypatch)
    for label in ("iris [epochs=3]", "iris [epochs=6]"):
        assert f"<h3>{label}</h3>" in text
        assert len(captured[f"{label}_all_curves.png"].axes[0].lines) >= 1  # the curves are drawn
    assert text.count("Naive baseline (") == 2
    assert "<b>exploding</b> (adam lr=0.01 seed 0" in text  # the flag of the epochs=3 runs, explained


def test_the_tests_section_says_how_many_seeds_each_problem_needs(folder, tmp_path):
    """Issue 22: the note said 6 pairs suffice; with Holm over 2 comparisons no p goes below 0.05 under 7."""
    import json
    import math

    import pandas as pd

    from optimlab.lab.training import analysis

    rows = [{"problem": "toy", "optimizer": name, "config": "lr=0.1", "hyperparameters": json.dumps({"lr": 0.1}),
             "seed": s, "diverged": False, "selection_loss": 1.0, "test_loss": base + s + 0.01 * s * s,
             "epochs_to_target": math.nan, "seconds_to_target": math.nan, "metric": "mae", "test_metric": math.nan}
            for name, base in (("adam", 1.0), ("gd", 2.0), ("sgd", 3.0)) for s in range(6)]
    runs = pd.DataFrame(rows)
    ctx = report.Context(folder, [], runs, analysis.selected(runs), None, tmp_path)
    text = report.section_tests(ctx)
    assert "toy: 3 optimizers, 2 comparisons, at least 7 paired seeds for a p below 0.05" in text
    assert "no p-value can go below 0.0625, so it can never reach p &lt; 0.05: that needs at least 7 seeds" in text
    assert "fewer than 6 pairs)" not in text
