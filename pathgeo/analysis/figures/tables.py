"""What figures do to pathgeo's tables before drawing them (docs/figures.md): the columns they need, the rows they may
draw (never the last epoch before w* where w* is used), epochs and steps counted from 1, one line per run and
reference point, each run named in words, and the tables made into inline chart data."""

from __future__ import annotations

from collections.abc import Callable

import altair as alt
import polars as pl
import polars.selectors as cs

from pathgeo.analysis.aggregate import STATS
from pathgeo.analysis.figures.words import describe, experiment_title, run_name, value_words
from pathgeo.columns import METRICS, W_STAR_FREE

# The columns figures add: the epoch and step counted from 1, a step's place on the epoch axis, the line a row
# belongs to, and the run's name in words.
EPOCH = "epoch_number"
STEP = "step_number"
AT = "at"
SERIES = "series"
RUN = "run"
RUN_KEYS = ["run_id", "label", "reference"]


def require_columns(table: pl.DataFrame, name: str, columns: list[str]) -> None:
    if table.is_empty():
        raise ValueError(f"the {name} table is empty: there is nothing to plot")
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"the {name} table lacks the columns {missing}")


def unique_columns(columns: list[str | None]) -> list[str]:
    return list(dict.fromkeys(column for column in columns if column is not None))


# What every line of a per-epoch figure keeps besides its own columns: which run and reference it is, and what names
# it; the experiment and the width's unit where the table has them.
LINE_COLUMNS = [*RUN_KEYS, "experiment", "budget", "epoch", "schedule", "seed", "width", "model", "width_unit"]
WHERE_GIVEN = ("experiment", "width_unit")


def epoch_lines(epochs: pl.DataFrame, columns: list[str | None]) -> pl.DataFrame:
    """The rows of an epochs table that a line figure draws, with `columns` (None: none) besides LINE_COLUMNS: every
    epoch but the last before w* (the paper's), counted from 1, one series per run and reference point."""
    wanted = unique_columns([*LINE_COLUMNS, *columns])
    require_columns(epochs, "epochs", [c for c in wanted if c not in WHERE_GIVEN])
    return with_series(with_epoch_number(before_final_epoch(epochs.select([c for c in wanted if c in epochs.columns]))))


def inline_values(table: pl.DataFrame) -> alt.InlineData:
    """Inline the table into the spec.

    NaN and ±inf are not valid JSON and would break the renderer; as null they make Vega-Lite skip the point instead.
    Inline values also bypass Altair's 5000-row guard without switching data transformers globally.
    """
    finite = [
        pl.when(pl.col(column).is_finite()).then(pl.col(column)).alias(column)
        for column in table.select(cs.float()).columns
    ]
    return alt.InlineData(values=table.with_columns(finite).to_dicts())


def uses_w_star(metric: str) -> bool:
    """Whether a metric (a column stem: "gamma", "rsi_wd", "mean_grad_corr") is measured against the reference
    point w*."""
    return metric not in W_STAR_FREE


def before_final_epoch(table: pl.DataFrame) -> pl.DataFrame:
    """The rows of a table of quantities measured against w* that a figure may draw: none of the last epoch before
    the reference point (as in the paper, and as the claims: there w* is mostly its own neighbourhood), whatever the
    tables were aggregated with."""
    return table.filter(pl.col("epoch") < pl.col("budget") - 1)


def with_epoch_number(table: pl.DataFrame) -> pl.DataFrame:
    """Add the epoch counted from 1 (the tables count from 0): figures call the first epoch epoch 1."""
    return table.with_columns((pl.col("epoch") + 1).alias(EPOCH))


def with_step_position(steps: pl.DataFrame) -> pl.DataFrame:
    """Add the step counted from 1 and its place on the epoch axis: the epochs trained before it (epoch n's steps lie
    from n − 1 to n, the first step of a run at 0), so that steps and per-epoch values share one axis."""
    first = pl.col("step").min().over("run_id", "reference", "epoch")
    count = pl.col("step").count().over("run_id", "reference", "epoch")
    return with_epoch_number(steps).with_columns(
        (pl.col("step") + 1).alias(STEP),
        (pl.col("epoch") + (pl.col("step") - first) / count).alias(AT),
    )


def with_series(table: pl.DataFrame) -> pl.DataFrame:
    """Add the key of one line: a run measured against one reference point."""
    return table.with_columns(pl.concat_str([pl.col("run_id"), pl.col("reference")], separator=" · ").alias(SERIES))


def one_reference(table: pl.DataFrame) -> pl.DataFrame:
    """Each run's rows for its largest-budget reference point only: quantities of the gradient alone (loss, learning
    rate, gradient correlations, sign flips) repeat identically for every reference point of a run, and drawing each
    copy would stack duplicate points."""
    return table.filter(pl.col("budget") == pl.col("budget").max().over("run_id"))


def reference_words(reference: str) -> str:
    """A reference point in words: "final" is the run's final weights, "epoch15" its weights after 15 epochs."""
    if reference == "final":
        return "w* = final weights"
    return f"w* = weights after {reference.removeprefix('epoch')} epochs"


# The factors a run's name in words is made of, where its label is a description (pathgeo.analysis.figures.words.describe).
NAME_FACTORS = (
    "model",
    "width",
    "width_unit",
    "dataset",
    "optimizer",
    "peak_lr",
    "schedule",
    "warmup_epochs",
    "full_batch",
    "batch_size",
    "epochs",
    "seed",
)


def with_run_names(table: pl.DataFrame, brief: bool = False) -> pl.DataFrame:
    """Add "run": each run in words (its label's factor=value pairs through pathgeo.analysis.figures.words.run_name; a run whose
    label is a description, from its factors, `brief` where a heading says its model and dataset), with its reference
    point where the table holds several for a run, and with its experiment where one name would stand for runs of
    several experiments."""
    present = [c for c in NAME_FACTORS if c in table.columns]
    runs = table.select("run_id", "label", *present).unique("run_id")
    names = {}
    for row in runs.iter_rows(named=True):
        words = run_name(row["label"], row.get("schedule"))
        names[row["run_id"]] = words if words != row["label"] or not present else describe(row, brief)
    table = table.with_columns(pl.col("run_id").replace_strict(names, return_dtype=pl.String).alias(RUN))
    if "experiment" in table.columns:
        shared = pl.col("run_id").n_unique().over(RUN) > 1
        table = table.with_columns(
            pl.when(shared)
            .then(pl.format("{} ({})", pl.col(RUN), _words(pl.col("experiment"), table, experiment_title)))
            .otherwise(pl.col(RUN))
            .alias(RUN)
        )
    if (
        "reference" in table.columns
        and (table.select(pl.col("reference").n_unique().over("run_id").max()).item() or 0) > 1
    ):
        table = table.with_columns(
            pl.format("{}, {}", pl.col(RUN), _words(pl.col("reference"), table, reference_words)).alias(RUN)
        )
    return table


def _words(column: pl.Expr, table: pl.DataFrame, words: Callable[[str], str]) -> pl.Expr:
    """A string column's values in words, each value put into words once."""
    values = table.select(column).to_series().drop_nulls().unique().to_list()
    return column.replace_strict(values, [words(value) for value in values], default=None)


# The most points a line of per-epoch statistics has: a longer run's epochs are drawn in bins of consecutive epochs
# (a 19,000-step full-batch run, an epoch a step, drew a 31 MB SVG point by point).
MAX_EPOCH_POINTS = 500
PER_POINT = "epochs_per_point"


def epoch_statistics(
    steps: pl.DataFrame, metrics: list[str], stats: tuple[str, ...] = ("mean", "min", "max")
) -> pl.DataFrame:
    """Per run, reference point and epoch, the statistics of these metrics over the epoch's steps (as
    pathgeo.analysis.aggregate computes them), over every epoch the steps table holds: for the quantities of the gradient
    alone, which need no reference point and so lose no epoch (the epochs table leaves out the last one before w*
    for every metric). A run of more than MAX_EPOCH_POINTS epochs is drawn in bins of k consecutive epochs (its
    `epochs_per_point`), each the statistics over the bin's steps at the bin's last epoch; `thinning_note` says so."""
    keys = [c for c in steps.columns if c not in {"step", "steps_to_reference", *METRICS}]
    epochs = pl.col("epoch").n_unique().over("run_id")
    per_point = ((epochs + MAX_EPOCH_POINTS - 1) // MAX_EPOCH_POINTS).cast(pl.Int64)
    binned = steps.with_columns(per_point.alias(PER_POINT)).with_columns(
        ((pl.col("epoch") // pl.col(PER_POINT) + 1) * pl.col(PER_POINT) - 1)
        .clip(upper_bound=pl.col("epoch").max().over("run_id"))
        .alias("epoch")
    )
    aggregations = [pl.len().alias("steps")]
    aggregations += [STATS[stat](pl.col(m)).alias(f"{m}_{stat}") for m in metrics for stat in stats]
    return binned.group_by([*keys, PER_POINT], maintain_order=True).agg(aggregations).sort("run_id", "budget", "epoch")


def thinning_note(per_epoch: pl.DataFrame) -> list[str]:
    """The subtitle line of a figure whose long runs are drawn in bins of epochs (`epoch_statistics`)."""
    binned = per_epoch.filter(pl.col(PER_POINT) > 1) if PER_POINT in per_epoch.columns else per_epoch.clear()
    if binned.is_empty():
        return []
    sizes = ", ".join(str(k) for k in sorted(set(binned.get_column(PER_POINT).to_list())))
    return [f"runs of more than {MAX_EPOCH_POINTS} epochs: each point is over {sizes} consecutive epochs' steps"]


def switch_points(steps: pl.DataFrame) -> pl.DataFrame:
    """Each run's switch point as the data show it: the first step of its largest learning rate, where the warm-up
    ends (whether fixed in advance or found by GAWU), with its epoch and the step's μ(t). Runs whose learning rate
    never changes have none."""
    largest = pl.col("lr").max().over("run_id")
    return (
        steps.filter((pl.col("lr") == largest) & (largest > pl.col("lr").min().over("run_id")))
        .sort("step")
        .group_by("run_id", maintain_order=True)
        .first()
    )


def schedule_names(steps: pl.DataFrame) -> dict[str, str]:
    """A name for each run from its schedule and its switch point in the data (`switch_points`), e.g. "GAWU: switch
    after 19 epochs (step 77)" (GAWU's warmup_epochs is only the latest switch it allows) or "exponential warm-up,
    cosine decay: switch after 10 epochs (step 41)": where the epoch axis puts the switch, and the step counted from
    1. Where two runs would read the same, each name adds the run's own name in words. In the order figures show
    them: GAWU's first, then by switch point, runs without one last."""
    at = {row["run_id"]: row for row in switch_points(with_step_position(steps)).iter_rows(named=True)}
    schedules = dict(steps.select("run_id", "schedule").unique().iter_rows())
    order = sorted(
        schedules, key=lambda run: (schedules[run] != "gawu", run not in at, at[run][AT] if run in at else 0, run)
    )
    names = {}
    for run_id in order:
        switch, words = at.get(run_id), value_words("schedule", schedules[run_id])
        names[run_id] = (
            f"{words}: no warm-up"
            if switch is None
            else f"{words}: switch after {switch[AT]:g} epoch{'' if switch[AT] == 1 else 's'} (step {switch[STEP]})"
        )
    shared = {name for name in names.values() if list(names.values()).count(name) > 1}
    if shared:
        words = dict(with_run_names(steps).select("run_id", RUN).unique().iter_rows())
        names = {run_id: f"{name} · {words[run_id]}" if name in shared else name for run_id, name in names.items()}
    return names


def schedule_order(names: dict[str, str]) -> list[str]:
    """The runs' names in the order `schedule_names` gives them."""
    return list(dict.fromkeys(names.values()))


def steps_per_epoch(table: pl.DataFrame) -> int:
    """The steps per epoch of a run whose table holds some of its steps with their epochs (a measurement every N
    steps): the fewest that put every step in its epoch."""
    rows = table.select("step", "epoch").unique().rows()
    smallest = max(1, max(step // (epoch + 1) for step, epoch in rows))
    largest = max(step for step, _ in rows) + 1
    for count in range(smallest, largest + 1):
        if all(step // count == epoch for step, epoch in rows):
            return count
    raise ValueError(
        f"no number of steps per epoch puts the measured steps {sorted(rows)} (step, epoch) in their epochs"
    )


def with_measured_position(table: pl.DataFrame) -> pl.DataFrame:
    """Add the step counted from 1 and its place on the epoch axis (the epochs trained before it) to a table of steps
    measured every N steps, run by run."""
    parts = [
        run.with_columns((pl.col("step") + 1).alias(STEP), (pl.col("step") / steps_per_epoch(run)).alias(AT))
        for run in table.partition_by("run_id", maintain_order=True)
    ]
    return with_epoch_number(pl.concat(parts))
