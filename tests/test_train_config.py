"""Run configs: validation messages, defaults, benchmark configs; schedule and EMA by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from hamnet.train.config import ConfigError, config_diff, default_config, load_config

BASE = {"data": {"path": "somewhere"}}
BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "configs"


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"lr": 0.1}, r"unknown key 'lr'; allowed keys in config: run_dir, data, split"),
        ({"optim": {"learning_rate": 0.1}}, r"unknown key 'optim.learning_rate'; allowed keys in optim: lr,"),
        ({"optim": {"lr": -1.0}}, r"optim.lr must be > 0"),
        ({"optim": {"lr": "fast"}}, r"optim.lr must be a number, got 'fast'"),
        ({"optim": {"batch_size": 2.5}}, r"optim.batch_size must be an integer"),
        ({"optim": {"ema_decay": 1.5}}, r"optim.ema_decay must be < 1, got 1.5"),
        ({"optim": {"lr": float("nan")}}, r"optim.lr must be a finite number"),
        ({"optim": {"betas": [0.9]}}, r"optim.betas must be two numbers in \[0, 1\)"),
        ({"augment": {"rotations": False, "inversion": True}}, r"augment.inversion needs rotations"),
        ({"seed": True}, r"seed must be an integer, got True"),
        ({"schedule": {"kind": "exponential"}}, r"schedule.kind: 'exponential' is not allowed; allowed values: cosine, linear, constant"),
        ({"precision": "float16"}, r"precision: 'float16' is not allowed; allowed values: float32, float64"),
        ({"eval": {"metric": "energy"}}, r"eval.metric: 'energy' is not allowed; allowed values: H_mae"),
        ({"split": {"train": "training"}}, r"split.train: 'training' is not allowed; allowed values: train, val, test"),
        ({"split": {"fractions": [0.9, 0.2]}}, r"split.fractions must be \[f_train, f_val\]"),
        ({"limits": {"max_steps": None, "max_minutes": None}}, r"limits: set max_steps, max_minutes, or both"),
        ({"model": {"num_chanels": 4}}, r"unknown key 'model.num_chanels'; allowed keys in model: elements, fit_reference, init_from, backbone"),
        ({"model": {"num_layers": 0}}, r"model.num_layers must be >= 1, got 0"),
        ({"model": {"backbone": "pet", "num_channels": 4}}, r"model.num_channels is a hyperparameter of another backbone"),
        ({"model": {"backbone": "mace"}}, r"model.backbone: 'mace' is not allowed; allowed values: equivariant, pet"),
        ({"model": {"elements": "HO"}}, r"model.elements must be 'auto' or a list"),
        ({"data": {"recipe": "md17-benzene", "n": 10}}, r"data.recipe: unknown recipe 'md17-benzene'; allowed: .*md17-water"),
        ({"data": {"path": "x", "recipe": "md17-water", "n": 10}}, r"data: give exactly one of 'path'"),
        ({"data": {"recipe": "md17-water"}}, r"data.n: a recipe needs the number of structures"),
        ({"device": "tpu"}, r"device: allowed values are auto, cpu, cuda"),
        ({"optim": [1, 2]}, r"optim must be a mapping of keys"),
        ({"loss": {"eig_weight": -1.0}}, r"loss.eig_weight must be >= 0(\.0)?, got -1.0"),
        ({"loss": {"eig_virtual": 1.5}}, r"loss.eig_virtual must be an integer"),
        ({"loss": {"eig_virtual": -1}}, r"loss.eig_virtual must be >= 0"),
        ({"loss": {"density_weight": "big"}}, r"loss.density_weight must be a number, got 'big'"),
        ({"loss": {"eig_wieght": 1.0}}, r"unknown key 'loss.eig_wieght'; allowed keys in loss: .*eig_weight, eig_virtual, density_weight"),
        ({"eval": {"metric": "density_rmse"}}, r"eval.metric: 'density_rmse' is not allowed; allowed values: .*density_mae"),
    ],
)
def test_wrong_keys_and_values_are_named(patch, message):
    cfg = {**BASE, **patch}
    with pytest.raises(ConfigError, match=message):
        load_config(cfg)


def test_yaml_file_round_trip_and_errors(tmp_path):
    cfg = load_config({**BASE, "optim": {"lr": "1e-3"}, "model": {"num_channels": 6}})
    assert cfg.optim.lr == 1e-3 and cfg.model["num_channels"] == 6 and cfg.model["tracegrad"] is False
    (tmp_path / "c.yaml").write_text(cfg.to_yaml())
    again = load_config(tmp_path / "c.yaml")
    assert again.to_dict() == cfg.to_dict() and config_diff(cfg, again) == []
    (tmp_path / "bad.yaml").write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "nope.yaml")


def test_config_diff_names_changed_keys_and_ignores_limits():
    a = load_config(BASE)
    b = load_config({**BASE, "optim": {"lr": 0.1}, "model": {"tracegrad": True}, "limits": {"max_steps": 9}})
    assert config_diff(a, b) == ["model.tracegrad", "optim.lr"]


def test_default_job():
    cfg = default_config()
    assert cfg.data.recipe == "md17-water" and cfg.data.n == 60 and cfg.limits.max_minutes > 0
    assert cfg.split.fractions == (0.7, 0.1)


@pytest.mark.parametrize("name", ["md17-water", "md17-ethanol", "md17-malondialdehyde", "md17-uracil",
                                  "qh9-stable-random", "qh9-stable-size_ood", "qh9-dynamic-geometry",
                                  "qh9-dynamic-mol", "md17-water-pet"])
def test_benchmark_configs_are_valid(name):
    cfg = load_config(BENCH / f"{name}.yaml")
    assert cfg.data.recipe is not None and cfg.split.name is not None
    from data_tools.recipes import get_recipe, splits

    recipe = get_recipe(cfg.data.recipe)
    assert cfg.split.name in splits(recipe, [9] * 20, list(range(20)))


def test_learning_rate_schedule_by_hand():
    from hamnet.train.optim import learning_rate

    s = load_config({**BASE, "schedule": {"warmup_steps": 4, "min_lr_ratio": 0.1}}).schedule
    assert learning_rate(0, 0.0, 1.0, s) == pytest.approx(1 / 5)
    assert learning_rate(3, 0.0, 1.0, s) == pytest.approx(4 / 5)
    assert learning_rate(4, 0.0, 1.0, s) == pytest.approx(1.0)
    assert learning_rate(10, 0.5, 1.0, s) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert learning_rate(10, 1.0, 2.0, s) == pytest.approx(0.2)
    lin = load_config({**BASE, "schedule": {"kind": "linear", "warmup_steps": 0, "min_lr_ratio": 0.0}}).schedule
    assert learning_rate(7, 0.25, 1.0, lin) == pytest.approx(0.75)


def test_ema_by_hand():
    from hamnet.train.optim import EMA

    lin = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(0.0)
    ema = EMA(lin, decay=0.5)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    ema.update(lin)  # d = min(0.5, 2/11) = 2/11
    assert ema.shadow["weight"].item() == pytest.approx(9 / 11)
    ema.update(lin)  # d = min(0.5, 3/12): shadow = 0.25 * 9/11 + 0.75
    assert ema.shadow["weight"].item() == pytest.approx(0.25 * 9 / 11 + 0.75)


def test_configs_written_before_the_backbone_split_still_load():
    """Saved run configs listed every backbone's keys flat; another backbone's defaults are ignored."""
    legacy = {**BASE, "model": {"backbone": "equivariant", "num_channels": 6, "pet_dim": 64, "pet_heads": 4,
                                "pet_ff": 128, "pet_pair_hidden": 128}}
    cfg = load_config(legacy)
    assert cfg.model["num_channels"] == 6 and "pet_dim" not in cfg.model
    pet = load_config({**BASE, "model": {"backbone": "pet", "pet_dim": 32, "tracegrad": False, "num_channels": 8,
                                         "tracegrad_dim": 32}})
    assert pet.model["pet_dim"] == 32 and pet.model["tracegrad"] is False and "num_channels" not in pet.model
    assert config_diff(cfg, load_config(cfg.to_dict())) == []


def test_spectral_loss_keys_default_off():
    loss = load_config(BASE).loss
    assert (loss.eig_weight, loss.eig_virtual, loss.density_weight) == (0.0, 2, 0.0) and not loss.spectral
    cfg = load_config({**BASE, "loss": {"density_weight": 0.5}, "eval": {"metric": "density_mae"}})
    assert cfg.loss.spectral and cfg.eval.metric == "density_mae"
    assert load_config(cfg.to_dict()).loss.density_weight == 0.5  # round trip through the resolved config
