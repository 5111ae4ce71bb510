"""From a validated config to a plan: which runs exist, which experiments use them, which reference points.

The JSON schema (config/schema/config.schema.yaml, completed by the registries: pathgeo.planning.schema) checks types,
enums and ranges (its violations: pathgeo.planning.config_errors). The checks that need two keys at once are the
run specs' (pathgeo.planning.run_specs: a model against its dataset's kind, a batch size against its dataset's size)
and the plan's here: reference epochs against the schedule, settings of a shared run, figures against experiments,
correlation windows against segments. Every error names the config key to fix.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from pathgeo.analysis.figures import figure_experiments, plot, plots
from pathgeo.planning.config_defaults import config_defaults, with_defaults
from pathgeo.planning.config_errors import ConfigError, schema_error
from pathgeo.planning.run_specs import expand, run_spec
from pathgeo.training.data import kinds
from pathgeo.training.spec import RunSpec

# Measurements an experiment may ask the replays of its runs for (pathgeo.measurements.point_geometry).
POINT_MEASUREMENTS = ("full_batch_geometry", "fixed_batch_geometry")

# The probe's correlation settings where the config leaves them out (config/defaults.yaml).
CORRELATION_DEFAULTS = config_defaults()["correlations"]
# The longest time limit of a job when the config does not set max_job_minutes (48 hours, a common partition limit).
DEFAULT_MAX_JOB_MINUTES = config_defaults()["max_job_minutes"]


@dataclass(frozen=True)
class Reference:
    """A reference point w*: the weights of a run at `epoch` (the run's end is called 'final')."""

    name: str
    epoch: int


def reference_name(epoch: int, final_epoch: int) -> str:
    return "final" if epoch == final_epoch else f"epoch{epoch}"


@dataclass(frozen=True)
class Plan:
    runs: dict[str, RunSpec]
    experiments: dict[str, tuple[str, ...]]
    experiment_references: dict[tuple[str, str], tuple[int, ...]]
    run_segment_epochs: dict[str, int]
    run_measurements: dict[str, dict[str, dict]]
    replayed_runs: frozenset[str]
    # Epochs between validations of a run's reference training (the train log's validation columns are null
    # in between); it does not change the trajectory.
    run_validate_every: dict[str, int] = dataclasses.field(default_factory=dict)

    def replayed(self, run_id: str) -> bool:
        """Whether some experiment needs the run's replay (one that measures against w*)."""
        return run_id in self.replayed_runs

    def measurements(self, run_id: str) -> dict[str, dict]:
        """The point measurements the replays of a run take, over every experiment that uses it."""
        return self.run_measurements.get(run_id, {})

    def references(self, run_id: str) -> tuple[Reference, ...]:
        """All reference points of a run over every experiment that uses it: one replay measures them all."""
        final = self.runs[run_id].epochs
        epochs = sorted({e for (_, rid), refs in self.experiment_references.items() if rid == run_id for e in refs})
        return tuple(Reference(reference_name(e, final), e) for e in epochs)

    def checkpoint_epochs(self, run_id: str) -> tuple[int, ...]:
        final = self.runs[run_id].epochs
        return tuple(sorted({*range(0, final, self.run_segment_epochs[run_id]), final}))

    def segments(self, run_id: str) -> tuple[tuple[int, int], ...]:
        """The replay jobs of a run, one per pair of adjacent checkpoints; none if no experiment needs its
        replay (its w*-free measurements come from reference training, in the same segments)."""
        if not self.replayed(run_id):
            return ()
        return self.checkpoint_segments(run_id)

    def checkpoint_segments(self, run_id: str) -> tuple[tuple[int, int], ...]:
        bounds = self.checkpoint_epochs(run_id)
        return tuple(zip(bounds[:-1], bounds[1:]))


def _reference_epochs(exp_name: str, exp: dict[str, Any], spec: RunSpec, segment_epochs: int) -> tuple[int, ...]:
    key = f"experiments.{exp_name}.references"
    epochs = []
    for ref in exp.get("references", ["final"]):
        epoch = spec.epochs if ref == "final" else ref
        if epoch <= 0:
            raise ConfigError(
                key, f"reference epoch {epoch} is not ahead of the starting point (epoch 0); a reference must lie ahead"
            )
        if epoch > spec.epochs:
            raise ConfigError(key, f"reference epoch {epoch} is past the run's end (epochs = {spec.epochs})")
        if epoch < spec.epochs and epoch % segment_epochs:
            raise ConfigError(
                key,
                f"reference epoch {epoch} is not a checkpoint; reference epochs must be multiples of "
                f"segment_epochs ({segment_epochs}) or the final epoch",
            )
        epochs.append(epoch)
    if spec.budget_dependent and any(e != spec.epochs for e in epochs):
        raise ConfigError(
            key,
            f"schedule '{spec.schedule}' depends on the epoch budget, so a checkpoint at an earlier epoch is "
            "not the end of a shorter run; use only 'final' or a budget-independent schedule (constant)",
        )
    return tuple(sorted(set(epochs)))


def build_plan(config: dict[str, Any]) -> Plan:
    """The plan of a config laid over the defaults (config/defaults.yaml), checked: the schema's violations at once
    (ConfigErrors), then the checks that need two keys at once (a ConfigError naming the key)."""
    config = with_defaults(config)
    error = schema_error(config)
    if error is not None:
        raise error
    runs: dict[str, RunSpec] = {}
    # run id: {setting: {experiment: (value, the key that set it)}}, for the RUN_SETTINGS
    settings: dict[str, dict[str, dict[str, tuple[int, str]]]] = {}
    run_measurements: dict[str, dict[str, dict]] = {}
    replayed_runs: set[str] = set()
    experiments: dict[str, tuple[str, ...]] = {}
    experiment_references: dict[tuple[str, str], tuple[int, ...]] = {}
    for exp_name, exp in config["experiments"].items():
        run_ids = []
        for case_index, overrides in expand(exp):
            # A case may set its own checkpoint spacing (a long run among short ones), an experiment its runs'.
            chosen = {name: _run_setting(config, exp_name, case_index, overrides, name) for name in RUN_SETTINGS}
            segment_epochs = chosen["segment_epochs"][0]
            spec = run_spec(config, exp_name, exp, case_index, overrides)
            runs[spec.run_id] = spec
            for name, value in chosen.items():
                settings.setdefault(spec.run_id, {}).setdefault(name, {})[exp_name] = value
            if spec.run_id not in run_ids:
                run_ids.append(spec.run_id)
            _add_measurements(run_measurements, exp_name, exp, spec)
            if exp.get("measure", "all") == "all":
                replayed_runs.add(spec.run_id)
            experiment_references[(exp_name, spec.run_id)] = _reference_epochs(exp_name, exp, spec, segment_epochs)
        experiments[exp_name] = tuple(run_ids)
        _check_w_star_free(exp_name, exp)
    agreed = {
        name: {run_id: _agreed(run_id, name, by_run[name]) for run_id, by_run in settings.items()}
        for name in RUN_SETTINGS
    }
    _check_figures(config, experiments)
    plan = Plan(
        runs,
        experiments,
        experiment_references,
        agreed["segment_epochs"],
        run_measurements,
        frozenset(replayed_runs),
        agreed["validate_every"],
    )
    _check_correlations(config, plan)
    return plan


def _check_figures(config: dict[str, Any], experiments: dict[str, tuple[str, ...]]) -> None:
    """Each figure names experiments that exist and that measure what its plot draws."""
    for fig_name, fig in config.get("figures", {}).items():
        # A claims figure draws every run; the experiments it may name only group its rows.
        if plot(fig["plot"]).table != "claims" and "experiment" not in fig:
            raise ConfigError(f"figures.{fig_name}.experiment", f"plot '{fig['plot']}' draws an experiment: name one")
        for exp_name in figure_experiments(fig):
            if exp_name not in experiments:
                raise ConfigError(
                    f"figures.{fig_name}.experiment", f"unknown experiment '{exp_name}'; defined: {sorted(experiments)}"
                )
            if config["experiments"][exp_name].get("measure") == "w_star_free" and plot(fig["plot"]).needs_w_star:
                drawable = sorted(name for name, entry in plots().items() if not entry.needs_w_star)
                raise ConfigError(
                    f"figures.{fig_name}.experiment",
                    f"plot '{fig['plot']}' needs measurements against w*, but experiment '{exp_name}' has measure: "
                    f"w_star_free (no replay); draw it from an experiment that measures all, or plot one of "
                    f"{drawable}",
                )


def _check_w_star_free(exp_name: str, exp: dict[str, Any]) -> None:
    """An experiment without replays has no reference points beyond the run's end, nor point measurements."""
    if exp.get("measure") != "w_star_free":
        return
    if exp.get("references", ["final"]) != ["final"]:
        raise ConfigError(
            f"experiments.{exp_name}.references",
            "an experiment with measure: w_star_free measures nothing against w*; remove its references",
        )
    for kind in POINT_MEASUREMENTS:
        if kind in exp:
            raise ConfigError(
                f"experiments.{exp_name}.{kind}",
                f"{kind} measures against w*, which an experiment with measure: w_star_free does not replay",
            )


def training_correlations(plan: Plan, run_id: str, config: dict[str, Any]) -> dict[str, Any] | None:
    """What reference training measures of a run itself: the w*-free correlation settings when no
    experiment replays it (its w*-free experiments then read the training's tables), else nothing."""
    if plan.replayed(run_id):
        return None
    settings = correlation_settings(config)
    return {"window": settings["window"], "matrix_epochs": settings["matrix_epochs"]}


def _add_measurements(
    run_measurements: dict[str, dict[str, dict]], exp_name: str, exp: dict[str, Any], spec: RunSpec
) -> None:
    """The experiment's point measurements join those its run already has; two experiments asking for the
    same measurement of one run with different settings are refused."""
    for kind in POINT_MEASUREMENTS:
        if kind not in exp:
            continue
        key = f"experiments.{exp_name}.{kind}"
        if kind == "full_batch_geometry" and not kinds()[spec.data.kind].full_batch:
            resident = sorted(name for name, entry in kinds().items() if entry.full_batch)
            raise ConfigError(
                key,
                f"the full-batch gradient needs a finite resident training set ({', '.join(resident)}), "
                f"not dataset '{spec.data.name}' (kind {spec.data.kind})",
            )
        if spec.devices > 1:
            raise ConfigError(
                key,
                f"{kind} runs passes of its own on one device, but run {spec.run_id} trains on {spec.devices}; "
                "measure it in an experiment whose runs have devices: 1",
            )
        settings = run_measurements.setdefault(spec.run_id, {})
        if settings.setdefault(kind, exp[kind]) != exp[kind]:
            raise ConfigError(
                key,
                f"run {spec.run_id} is shared with an experiment that measures it with {settings[kind]}, not "
                f"{exp[kind]}; a run has one setting per measurement",
            )


# Settings of a run that do not change its trajectory, given at the top level, by an experiment or by a case:
# checkpoint spacing (a replay job per segment) and epochs between validations. A run shared by experiments must
# have one of each.
RUN_SETTINGS = ("segment_epochs", "validate_every")


def _run_setting(
    config: dict[str, Any], exp_name: str, case_index: int | None, overrides: dict[str, Any], name: str
) -> tuple[int, str]:
    """The value of a run setting for one case of an experiment, and the key that set it; the case's is taken out
    of `overrides` (it is no run field)."""
    exp = config["experiments"][exp_name]
    if name in overrides:
        return overrides.pop(name), f"experiments.{exp_name}.cases[{case_index}].{name}"
    if name in exp:
        return exp[name], f"experiments.{exp_name}.{name}"
    return config[name], name


def _agreed(run_id: str, name: str, by_experiment: dict[str, tuple[int, str]]) -> int:
    """A run shared by experiments is trained once, so they must agree on its settings. The message names every
    experiment and the key each takes the value from, in the same words whatever their order."""
    if len({value for value, _ in by_experiment.values()}) == 1:
        return next(iter(by_experiment.values()))[0]
    names = sorted(by_experiment)
    keys = [by_experiment[exp][1] for exp in names]
    own = [key for key in keys if key != name]
    listed = "; ".join(f"experiment {exp}: {by_experiment[exp][0]} (from {key})" for exp, key in zip(names, keys))
    raise ConfigError(
        own[0] if len(own) == 1 else ", ".join(keys),
        f"run {run_id} is planned by experiments that give it different {name} ({listed}); a run is trained once: "
        f"give these experiments the same {name}",
    )


def planned_steps_per_epoch(spec: RunSpec) -> int | None:
    """Steps per epoch as far as the config tells (None for external datasets, whose size is not known
    before they are read)."""
    if spec.full_batch:
        return 1
    params = spec.data.params
    if "steps_per_epoch" in params:
        return params["steps_per_epoch"]
    train_size = kinds()[spec.data.kind].train_size
    if train_size is not None:
        return math.ceil(train_size(params) / spec.batch_size)
    return None


def _check_correlations(config: dict[str, Any], plan: Plan) -> None:
    """Refuse correlation settings and figure epochs that would yield no value at all: a window longer than
    every segment of a run (a window must lie inside one segment), matrix or figure epochs past the end."""
    settings = correlation_settings(config)
    window = settings["window"]
    for run_id, spec in plan.runs.items():
        per_epoch = planned_steps_per_epoch(spec)
        if per_epoch is None:
            continue
        longest = max(end - start for start, end in plan.checkpoint_segments(run_id)) * per_epoch
        if window > longest:
            raise ConfigError(
                "correlations.window",
                f"a window of {window} steps does not fit in any replay segment of run {run_id} (at most {longest} "
                f"steps: segment_epochs {plan.run_segment_epochs[run_id]} x {per_epoch} steps per epoch), so it would "
                "measure no window mean and no matrix: make the window shorter or the run's segment_epochs larger",
            )
    longest_run = max(plan.runs.values(), key=lambda spec: (spec.epochs, spec.run_id))
    if settings["matrix_epochs"] != "all":
        past = [e for e in settings["matrix_epochs"] if e >= longest_run.epochs]
        if past:
            raise ConfigError(
                "correlations.matrix_epochs",
                f"epoch {past[0]} is past the end of every run (epochs count from 0; the longest run, "
                f"{longest_run.run_id}, has {longest_run.epochs}), so no matrix would start there",
            )
    for fig_name, fig in config.get("figures", {}).items():
        wanted = fig.get("epochs")
        if wanted is None:
            continue
        drawn = [plan.runs[run_id] for exp in figure_experiments(fig) for run_id in plan.experiments[exp]]
        last = max(spec.epochs for spec in drawn)
        past = [e for e in wanted if e >= last]
        if past:
            raise ConfigError(
                f"figures.{fig_name}.epochs",
                f"epoch {past[0]} is past the end of the runs drawn (epochs count from 0; the longest has {last})",
            )
        if settings["matrix_epochs"] != "all":
            unmeasured = [e for e in wanted if e not in settings["matrix_epochs"]]
            if unmeasured:
                raise ConfigError(
                    f"figures.{fig_name}.epochs",
                    f"epoch {unmeasured[0]} has no matrix: correlations.matrix_epochs lists "
                    f"{settings['matrix_epochs']}; add it there or draw another epoch",
                )


def correlation_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The probe's correlation settings: window h, the protocol of the lagged measure, the matrix epochs.
    YAML reads an unquoted `off` as false, so false means off; true, which meant every step before the
    anchored protocol existed, is refused rather than silently reinterpreted."""
    settings = with_defaults(config)["correlations"]
    if settings["lagged"] is True:
        raise ConfigError(
            "correlations.lagged",
            "true is no longer a value: write anchored (the authors' protocol: a base every 51 steps, six "
            "lags from it, the default) or every_step (every lag at every step, 102 copies of the model)",
        )
    if settings["lagged"] is False:
        settings["lagged"] = "off"
    return settings


def max_job_minutes(config: dict[str, Any]) -> int | None:
    """The site's time limit of one job in minutes (config key max_job_minutes; None: no limit)."""
    return with_defaults(config)["max_job_minutes"]


def zigzag_thresholds(config: dict[str, Any]) -> dict[str, float]:
    """The thresholds of the second paper's findings (pathgeo.analysis.zigzag): the config's `zigzag`, else the defaults."""
    return with_defaults(config)["zigzag"]


def extended_run(
    spec: RunSpec, checkpoints: tuple[int, ...], candidates: dict[str, tuple[RunSpec, tuple[int, ...]]]
) -> str | None:
    """The run of `candidates` (run id: its spec and checkpoint epochs) whose reference training `spec`'s goes on
    from: the same run but for fewer epochs, the longest such, under a schedule that does not depend on the budget
    (a constant LR's epoch k is the same whatever the budget; a cosine's is not), with a checkpoint at each of the
    run's own up to its end. None where the run trains from its seed."""
    if spec.budget_dependent:
        return None
    best: str | None = None
    for run_id, (other, have) in candidates.items():
        if other.epochs >= spec.epochs or dataclasses.replace(other, epochs=spec.epochs) != spec:
            continue
        if not {epoch for epoch in checkpoints if epoch <= other.epochs} <= set(have):
            continue
        if best is None or other.epochs > candidates[best][0].epochs:
            best = run_id
    return best
