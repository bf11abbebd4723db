"""Analysis of run records: statistics (``stats``), tables (``tables``), diagnostic flags (``diagnostics``), verdicts.

Reads only records, never the runner. The table functions are re-exported
here, so ``analysis.summary(analysis.runs_table(records))`` reads naturally.
"""

from optimlab.lab.training.analysis.tables import (
    config_label,
    curves,
    is_sweep,
    problem_labels,
    profile_costs,
    ranked_summary,
    records_of,
    runs_table,
    selected,
    summary,
    tests,
)

__all__ = ["config_label", "curves", "is_sweep", "problem_labels", "profile_costs", "ranked_summary", "records_of",
           "runs_table", "selected", "summary", "tests"]
