"""The config keys of the measurement engine: the lag protocol and, from the plan, which measurements each
run's replay (or reference training) takes."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from pathgeo.config import ConfigError, build_plan, correlation_settings

REPO = Path(__file__).resolve().parents[1]
TINY = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())


def with_correlations(**settings) -> dict:
    config = copy.deepcopy(TINY)
    config["correlations"] = settings
    return config


def test_lag_protocols_and_their_spellings():
    assert correlation_settings(TINY)["lagged"] == "anchored"
    for value in ("anchored", "every_step", "off"):
        assert correlation_settings(with_correlations(lagged=value))["lagged"] == value
        build_plan(with_correlations(lagged=value))
    # YAML reads an unquoted off as false: both mean off.
    assert yaml.safe_load("lagged: off") == {"lagged": False}
    assert correlation_settings(with_correlations(lagged=False))["lagged"] == "off"
    with pytest.raises(ConfigError, match=r"config key 'correlations.lagged': true is no longer a value: write anchored"):
        build_plan(with_correlations(lagged=True))
    with pytest.raises(ConfigError, match=r"correlations.lagged"):
        build_plan(with_correlations(lagged="sometimes"))
