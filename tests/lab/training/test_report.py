"""report.html and its figures, from records only."""

import base64

import pytest

from optimlab.lab.training import report
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

    text = report.write_report(folder).read_text()
    assert text.index("Answer") < text.index("Context") < text.index("Ranked summary")
    runs = analysis.runs_table(records.load_all(folder))
    chosen = analysis.selected(runs)
    iris = chosen[chosen["problem"] == "iris"]
    medians = iris.groupby("optimizer")["test_loss"].median()
    best = medians.idxmin()
    mean = np.mean(iris[iris["optimizer"] == best]["test_loss"])
    answer = text.split('<p class="answer">')[1].split("</p>")[0]  # iris comes first
    assert answer.startswith(best) and "on iris" in answer and f"{mean:.4g}" in answer
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
    assert report._is_sweep(runs)
    assert len(report.shown_configs(runs, "iris")) == 3  # a sweep draws every configuration
    assert report.curve_columns(analysis.curves(records.load_all(tmp_path))) == ("train_loss", "test_loss")


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


def _figure_of(monkeypatch):
    """Capture the figure a plot function saves (its axes hold what the reader sees)."""
    captured = {}

    def keep(fig, path):
        captured["fig"] = fig
        return path

    monkeypatch.setattr(report, "_save", keep)
    return captured


def test_diverged_curves_do_not_flatten_the_finished_ones(monkeypatch, tmp_path):
    """Found by a user test: a diverged run's loss of 1e21 squeezed adam's curve into a line at the bottom."""
    import pandas as pd

    rows, runs = [], []
    for optimizer, diverged in (("adam", False), ("sgd", True)):
        for seed in (0, 1):
            for epoch in range(5):
                loss = 1e21 ** (epoch / 4) if diverged else 5000.0 - 500 * epoch
                rows.append({"problem": "p", "optimizer": optimizer, "config": "lr=0.1", "seed": seed, "epoch": epoch,
                             "train_loss": loss, "valid_loss": loss, "test_loss": loss})
            runs.append({"problem": "p", "optimizer": optimizer, "config": "lr=0.1", "seed": seed,
                         "diverged": diverged, "learning_rate": 0.1, "clipnorm": float("nan"),
                         "selection_loss": float("inf") if diverged else 3000.0, "valid_loss": 3000.0, "loss": "mse"})
    curves, runs = pd.DataFrame(rows), pd.DataFrame(runs)
    captured = _figure_of(monkeypatch)
    report.plot_curves(curves, runs, "p", tmp_path / "c.png", runs)
    for ax in captured["fig"].axes:
        low, high = ax.get_ylim()
        assert high < 1e5 and low > 1000, (low, high)  # adam's 3000..5000 fill the axes
    report.plot_lr_sensitivity(runs[runs["optimizer"] == "adam"], "p", tmp_path / "s.png")
    assert "diverged" not in captured["fig"].axes[0].get_title()  # nothing diverged in this plot
    report.plot_lr_sensitivity(runs, "p", tmp_path / "s.png")
    assert "every seed diverged" in captured["fig"].axes[0].get_title()
