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
    expected = [f"{p}_{kind}.png" for p in ("iris", "wine") for kind in ("all_curves", "boxes", "curves", "lr_sensitivity")]
    assert figures == sorted(expected + ["performance_profile.png"])
    assert text.count("data:image/png;base64,") == len(figures)
    assert "src=\"figures" not in text  # nothing linked from outside the file
    first = text.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(first).startswith(b"\x89PNG")
    for word in ("Summary", "Statistical tests", "Performance profiles", "iris", "wine", "adam", "Diagnostics",
                 "Naive baseline (majority class"):
        assert word in text


def test_report_without_records_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run records"):
        report.write_report(tmp_path)
