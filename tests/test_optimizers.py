"""The optimizer registry: every torch.optim optimizer by its lower-case name, the `momentum` alias and the user's
own classes build the torch optimizer a run names, with the run's LR, weight decay and `optimizer_options`; and
each says truly whether it feeds the optimizer G + λw (coupled decay) or G (decoupled), which is what the probe's
`*_wd` columns measure."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from pathgeo.engine.probe import Probe
from pathgeo.plugins import PluginError
from pathgeo.training.loop import build_trainer
from pathgeo.training.optimizers import ALIASES, OPTIMIZERS, UNSUPPORTED, build_optimizer, decay_in_gradient, optimizer
from pathgeo.training.spec import DataSpec, RunSpec

# What each name has meant since the first runs (their checkpoints hold these settings).
EXPECTED = {
    "sgd": lambda params: torch.optim.SGD(params, lr=0.05, weight_decay=1e-4),
    "momentum": lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-4),
    "adam": lambda params: torch.optim.Adam(params, lr=0.05, betas=(0.9, 0.999), weight_decay=1e-4),
}

# Options to try each optimizer with, besides its defaults: the ones that change how it applies weight decay.
DECOUPLING_OPTIONS = {
    "adam": {"decoupled_weight_decay": True},
    "nadam": {"decoupled_weight_decay": True},
    "radam": {"decoupled_weight_decay": True},
}


def spec(name: str, weight_decay: float = 1e-4, **options) -> RunSpec:
    return RunSpec(
        data=DataSpec("walk", "random_walk", {"dim": 3, "steps_per_epoch": 1}),
        model="walk",
        width=0,
        optimizer=name,
        lr=0.05,
        weight_decay=weight_decay,
        schedule="constant",
        warmup_epochs=0,
        batch_size=1,
        epochs=1,
        seed=0,
        data_order_seed=0,
        precision="float32",
        optimizer_options=options,
    )


def test_every_torch_optimizer_by_its_lower_case_name():
    classes = {
        name.lower(): cls
        for name, cls in vars(torch.optim).items()
        if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer
    }
    assert {"sgd", "adam", "adamw", "rmsprop", "nadam", "radam", "adagrad"} <= set(classes)
    assert set(OPTIMIZERS) == (set(classes) - set(UNSUPPORTED)) | {alias.name for alias in ALIASES}
    for name, cls in classes.items():
        if name not in UNSUPPORTED:
            assert optimizer(name).cls is cls


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_optimizers_the_loop_cannot_drive_say_why(name):
    with pytest.raises(KeyError) as error:
        optimizer(name)
    assert error.value.args[0].startswith(f"optimizer '{name}' cannot drive pathgeo's training loop: it")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builds_the_torch_optimizer_of_the_run(name):
    params = [torch.nn.Parameter(torch.ones(3))]
    built = build_optimizer(spec(name), params)
    expected = EXPECTED[name]([torch.nn.Parameter(torch.ones(3))])
    assert type(built) is type(expected)
    assert built.state_dict()["param_groups"] == expected.state_dict()["param_groups"]
    assert built.param_groups[0]["params"] == params


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_steps_like_the_torch_optimizer(name):
    torch.manual_seed(0)
    start, grads = torch.randn(4), torch.randn(3, 4)
    ours, theirs = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    a, b = build_optimizer(spec(name), [ours]), EXPECTED[name]([theirs])
    for grad in grads:
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        a.step()
        b.step()
    assert torch.equal(ours, theirs)


def test_options_are_the_optimizer_s_keyword_arguments():
    built = build_optimizer(
        spec("adamw", 0.01, betas=[0.8, 0.95], eps=1e-6, amsgrad=True), [torch.nn.Parameter(torch.ones(2))]
    )
    group = built.param_groups[0]
    assert type(built) is torch.optim.AdamW
    assert (tuple(group["betas"]), group["eps"], group["amsgrad"], group["weight_decay"]) == (
        (0.8, 0.95),
        1e-6,
        True,
        0.01,
    )
    nesterov = build_optimizer(spec("momentum", nesterov=True), [torch.nn.Parameter(torch.ones(2))])
    assert (nesterov.param_groups[0]["momentum"], nesterov.param_groups[0]["nesterov"]) == (0.9, True)


def test_option_errors_name_the_class_and_its_options():
    assert optimizer("adamw").option_error({"betas": [0.9, 0.99]}) is None
    message = optimizer("adamw").option_error({"betaz": [0.9, 0.99]})
    assert message.startswith("torch.optim.adamw.AdamW takes no option ['betaz']; its options are ['amsgrad', 'betas',")
    assert "run fields" in optimizer("sgd").option_error({"lr": 0.1})


def test_rprop_has_no_weight_decay():
    assert not optimizer("rprop").takes_weight_decay
    built = build_optimizer(spec("rprop", 0.0), [torch.nn.Parameter(torch.ones(2))])
    assert type(built) is torch.optim.Rprop


GRADIENTS = torch.randn(10, 2, 3, generator=torch.Generator().manual_seed(0))


def _trajectory(name: str, options: dict, weight_decay: float, add_decay_to_gradient: float = 0.0) -> torch.Tensor:
    """Ten steps on fixed gradients; `add_decay_to_gradient` = λ feeds G + λw instead of G."""
    w = torch.nn.Parameter(torch.linspace(-1.0, 2.0, 6).reshape(2, 3))
    built = build_optimizer(spec(name, weight_decay, **options), [w])
    for grad in GRADIENTS:
        w.grad = grad + add_decay_to_gradient * w.detach()
        built.step()
    return w.detach().clone()


CASES = [(name, {}) for name in OPTIMIZERS] + sorted(DECOUPLING_OPTIONS.items())


@pytest.mark.parametrize("name,options", CASES, ids=[f"{n}{'-decoupled' if o else ''}" for n, o in CASES])
def test_decay_in_gradient_says_what_the_optimizer_is_fed(name, options):
    """The oracle: an optimizer fed G + λw follows the same trajectory as without decay on the gradients G + λw;
    one with decoupled decay does not (over ten steps: RAdam's first few steps, unadapted, cannot tell the two
    apart). `decay_in_gradient` (what the probe's *_wd columns follow) must agree."""
    if not optimizer(name).takes_weight_decay:
        pytest.skip(f"{name} has no weight decay")
    lam = 0.3
    with_decay = _trajectory(name, options, lam)
    fed_l2_gradient = torch.allclose(with_decay, _trajectory(name, options, 0.0, lam), rtol=1e-5, atol=1e-6)
    built = build_optimizer(spec(name, lam, **options), [torch.nn.Parameter(torch.ones(2))])
    assert decay_in_gradient(built) == fed_l2_gradient
    assert not torch.allclose(with_decay, _trajectory(name, options, 0.0))  # the decay did something


def test_wd_columns_follow_the_gradient_the_optimizer_is_fed(deterministic_single_thread):
    """Adam's *_wd columns are those of G + λw; AdamW is fed G, so its *_wd columns are the plain ones."""
    data = DataSpec("walk", "random_walk", {"dim": 50, "steps_per_epoch": 5})
    columns = {}
    for name in ("adam", "adamw"):
        run = dataclasses.replace(spec(name, 0.5), data=data, lr=0.01)
        trainer = build_trainer(run, {}, torch.device("cpu"))
        probe = Probe(trainer.flat, {"zero": torch.zeros(trainer.flat.numel)}, steps_per_epoch=5)
        probe.end_epoch(trainer.train_epoch(probe).epoch)
        columns[name] = probe.finish()
    adam, adamw = columns["adam"], columns["adamw"]
    assert not np.allclose(adam["gamma_wd"].to_numpy(), adam["gamma"].to_numpy())
    for metric in ("rsi", "eb", "gamma", "lolr", "grad_norm"):
        np.testing.assert_array_equal(adamw[f"{metric}_wd"].to_numpy(), adamw[metric].to_numpy())


def test_an_optimizer_of_your_own(tmp_path, monkeypatch):
    (tmp_path / "my_optim.py").write_text(
        "import torch\n"
        "class SignSGD(torch.optim.Optimizer):\n"
        "    def __init__(self, params, lr=0.01, weight_decay=0.0, scale=1.0):\n"
        "        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, scale=scale))\n"
        "    @torch.no_grad()\n"
        "    def step(self, closure=None):\n"
        "        for group in self.param_groups:\n"
        "            for p in group['params']:\n"
        "                p.add_(torch.sign(p.grad + group['weight_decay'] * p), alpha=-group['lr'] * group['scale'])\n"
        "not_an_optimizer = 3\n"
    )
    monkeypatch.chdir(tmp_path)
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    built = build_optimizer(spec("my_optim:SignSGD", 0.0, scale=2.0), [w])
    w.grad = torch.tensor([0.5, 0.5])
    built.step()
    assert torch.equal(w.detach(), torch.tensor([0.9, -2.1]))
    assert decay_in_gradient(built)
    assert "takes no option ['momentum']" in optimizer("my_optim:SignSGD").option_error({"momentum": 0.9})
    with pytest.raises(PluginError, match="'my_optim:not_an_optimizer' is not a torch.optim.Optimizer subclass"):
        optimizer("my_optim:not_an_optimizer")
    with pytest.raises(PluginError, match=r"has no 'Lion'; it defines \['SignSGD'\]"):
        optimizer("my_optim:Lion")
    with pytest.raises(
        PluginError, match="cannot import module 'their_optim' .*put their_optim.py in the working directory"
    ):
        optimizer("their_optim:Lion")


def test_unknown_optimizer_names_the_known_ones():
    with pytest.raises(KeyError, match=r"unknown optimizer 'adamx'; known: \['adadelta', 'adafactor', "):
        optimizer("adamx")


STEP_SCALES = [
    ("sgd", {}, 1.0),
    ("momentum", {}, 10.0),
    ("sgd", {"momentum": 0.5}, 2.0),
    ("momentum", {"dampening": 0.5}, 5.0),
    ("momentum", {"nesterov": True}, 10.0),
    ("sgd", {"momentum": 0.5, "nesterov": True}, 2.0),
]


@pytest.mark.parametrize("name,options,scale", STEP_SCALES)
def test_step_scale_is_the_steady_state_step_over_lr_times_g(name, options, scale):
    """Under a constant gradient the step tends to lr x G x step_scale, with the run's optimizer_options."""
    assert optimizer(name).step_scale(options) == pytest.approx(scale)
    w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    built = build_optimizer(spec(name, 0.0, **options), [w])
    for _ in range(400):
        before = w.detach().clone()
        w.grad = torch.ones_like(w)
        built.step()
    assert (before - w.detach()).item() == pytest.approx(0.05 * scale, rel=1e-5)


def test_no_step_scale_without_one_factor():
    assert optimizer("adam").step_scale() is None
    assert optimizer("adamw").step_scale({"betas": [0.8, 0.9]}) is None
