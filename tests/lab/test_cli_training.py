"""The training-lab commands through Typer's CliRunner."""

from typer.testing import CliRunner

from optimlab.cli import app
from optimlab.lab.training import records

cli = CliRunner()


def test_compare_then_report(tmp_path):
    out = tmp_path / "run"
    result = cli.invoke(app, ["compare", "--task", "iris", "--optimizers", "gd,adam", "--seeds", "2", "--lrs", "0.1",
                              "--epochs", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "final test cross-entropy" in result.output and "4 runs computed" in result.output
    assert len(records.load_all(out)) == 4
    again = cli.invoke(app, ["compare", "--task", "iris", "--optimizers", "gd,adam", "--seeds", "2", "--lrs", "0.1",
                             "--epochs", "4", "--out", str(out)])
    assert "0 runs computed, 4 reused" in again.output
    report = cli.invoke(app, ["report", str(out)])
    assert report.exit_code == 0 and (out / "report.html").exists()


def test_sweep_with_clipping_and_raw_inputs(tmp_path):
    result = cli.invoke(app, ["sweep", "--task", "diabetes", "--optimizer", "gd", "--lrs", "1e-3,1e-9",
                              "--clipnorm", "none,2", "--epochs", "3", "--raw", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    specs = [r["spec"] for r in records.load_all(tmp_path)]
    assert len(specs) == 4 and not any(s["standardize"] for s in specs)
    assert sorted(str(s["hyperparameters"].get("clipnorm")) for s in specs) == ["2.0", "2.0", "None", "None"]


def test_set_passes_hyperparameters_like_seed_002_momentum(tmp_path):
    """The Boston housing chapter's Momentum(lr=1e-3, beta=.98, clipnorm=2) is SGD with momentum 0.98 (Keras form)."""
    result = cli.invoke(app, ["sweep", "--task", "diabetes", "--optimizer", "sgd", "--set", "momentum=0.98",
                              "--lrs", "1e-3", "--clipnorm", "2", "--epochs", "3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (record,) = records.load_all(tmp_path)
    assert record["spec"]["hyperparameters"] == {"clipnorm": 2.0, "learning_rate": 1e-3, "momentum": 0.98}
    for args, message in [(["--set", "momentum"], "KEY=NUMBER"), (["--optimizer", "adam", "--set", "momentum=0.9"], "momentum")]:
        bad = cli.invoke(app, ["sweep", "--task", "iris", "--lrs", "1e-3", "--epochs", "1", "--out", str(tmp_path / "bad"), *args])
        assert bad.exit_code == 2 and message in bad.output and "Traceback" not in bad.output, bad.output
    assert not (tmp_path / "bad" / "records").exists()


def test_diverged_run_is_reported_not_a_crash(tmp_path):
    result = cli.invoke(app, ["compare", "--task", "diabetes", "--optimizers", "gd", "--lrs", "100",
                              "--seeds", "1", "--epochs", "20", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "100%" in result.output  # the diverged column
    assert records.load_all(tmp_path)[0]["status"] == "diverged"


def test_bad_input_gives_one_clear_message(tmp_path):
    out = ["--out", str(tmp_path / "o")]
    cases = [(["compare", "--task", "mnist", *out], "--task: unknown task 'mnist'"),
             (["compare", "--task", "iris", "--optimizers", "adam,nope", *out], "unknown optimizer 'nope'"),
             (["compare", "--task", "boston", "--data", str(tmp_path / "missing.csv"), *out], "does not exist"),
             (["sweep", "--task", "iris", "--lrs", "fast", "--out", str(tmp_path / "s")], "lrs must be"),
             (["tune", "--task", "iris", "--sampler", "bayes", "--out", str(tmp_path)], "unknown sampler 'bayes'"),
             (["report", str(tmp_path / "empty")], "does not exist"), (["report", str(tmp_path)], "no run records")]
    for args, message in cases:
        result = cli.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_tune_command(tmp_path):
    result = cli.invoke(app, ["tune", "--task", "iris", "--optimizers", "adam", "--trials", "2", "--sampler",
                              "grid", "--epochs", "3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tuning.db").exists() and "best configuration" in result.output and "lr=" in result.output


def test_compare_warns_before_any_run_when_its_seeds_can_never_show_a_difference(tmp_path):
    """Found by a user (issue 22): 3 optimizers x 6 seeds can never give a Holm-corrected p below 0.0625."""
    result = cli.invoke(app, ["compare", "--task", "iris", "--optimizers", "gd,adam,sgd", "--seeds", "2", "--lrs",
                              "0.1", "--epochs", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    warning = text.index("warning: with 2 paired seeds and 3 optimizers")
    assert "can never reach p < 0.05: that needs at least 7 seeds" in text
    assert warning < text.index("final test cross-entropy") < text.index("6 runs computed")  # before the work
    quiet = cli.invoke(app, ["compare", "--task", "iris", "--optimizers", "gd,adam", "--seeds", "7", "--lrs", "0.1",
                             "--epochs", "1", "--out", str(tmp_path / "seven")])
    assert quiet.exit_code == 0 and "warning" not in quiet.output


def test_tune_warns_before_its_trials_when_the_winners_seeds_can_never_show_a_difference(tmp_path):
    """Found by trying tune --seeds 3 with two optimizers: the limit came only after all the work, in the notes."""
    result = cli.invoke(app, ["tune", "--task", "iris", "--optimizers", "gd,adam", "--trials", "2", "--sampler",
                              "grid", "--seeds", "3", "--epochs", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    warning = text.index("warning: with 3 paired seeds and 2 optimizers")
    assert warning < text.index("best configuration")  # before the tuning table, i.e. before the work


def test_compare_default_seeds_are_enough_for_the_optimizers(monkeypatch, tmp_path):
    from optimlab.lab import commands, training_commands
    from optimlab.lab.training.analysis import stats

    chosen = {}
    monkeypatch.setattr(commands, "compare", lambda runner, optimizers, seeds, *rest: chosen.update(seeds=seeds))
    result = cli.invoke(app, ["compare", "--task", "iris", "--optimizers", "gd,adam,sgd", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert chosen["seeds"] is None  # "enough", decided once the optimizers are known
    for k in (2, 3, 30):
        seeds = training_commands.choose_seeds(None, k)
        assert stats.design_limit(seeds, k) is None and seeds >= stats.seeds_needed(k - 1)
    assert training_commands.choose_seeds(None, 3) == 10 and training_commands.choose_seeds(None, 30) == 11
    assert training_commands.choose_seeds(4, 3) == 4  # the user's choice stands, with a warning


def test_seeds_help_is_truthful():
    from optimlab.lab.training.analysis import stats

    text = " ".join(cli.invoke(app, ["compare", "--help"], terminal_width=200).output.split())
    assert "at least 6 for a Wilcoxon" not in text  # untrue with Holm over 3 optimizers
    assert "fewer than 6 seeds for 2 optimizers, 7 for 3 or 4, 8 for 5 to 7, it never can" in text
    assert [stats.seeds_needed(k - 1) for k in (2, 3, 4, 5, 7)] == [6, 7, 7, 8, 8]
    assert stats.seeds_needed(8) == 9 and stats.default_seeds(26) == 10 < stats.default_seeds(27)
