"""Training and evaluation: ``hamnet train`` and ``hamnet eval``.

* :mod:`hamnet.train.config`      typed, validated run config (YAML)
* :mod:`hamnet.train.data`        the store of a run, its split, molecules as graphs
* :mod:`hamnet.train.optim`       AdamW, warmup + decay, EMA of the weights
* :mod:`hamnet.train.checkpoint`  atomic, versioned checkpoints (model file + resume state)
* :mod:`hamnet.train.distributed` torchrun / DistributedDataParallel helpers
* :mod:`hamnet.train.loop`        ``run(config, run_dir)``: train, resume, validate, test
* :mod:`hamnet.train.evaluate`    QH9 metrics of a model or of a prediction file
"""

from hamnet.train.config import ConfigError, TrainConfig, default_config, load_config

__all__ = ["ConfigError", "TrainConfig", "default_config", "load_config", "run"]


def run(*args, **kwargs):
    """:func:`hamnet.train.loop.run` (imported on first use: it pulls in torch and e3nn)."""
    from hamnet.train.loop import run as _run

    return _run(*args, **kwargs)
