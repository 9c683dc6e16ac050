"""Packaged measured activity: the simulator's zero-skip counts of each compared network, shipped as data.

Files ``forms/presets/activity/<model>-<dataset>-<mode>.json`` hold the ``provenance``, ``accuracy``,
``zero_skip`` and ``zero_skip_totals`` of a ``forms simulate`` run (layers named by the model's module
paths, as layer shapes name them). ``mode`` says how activations meet the input width
(:data:`ACTIVITY_MODES`). A network without a file of its own (the ImageNet-shaped ones: no data here)
is costed with the network-wide figures of its nearest measured network (:data:`NEAREST_MEASURED`),
and :func:`measured_range` gives the range across every measured network, so a report can show both.
Whose a measurement is, for the network being costed, is :class:`MeasurementSource`'s one rule, which
packaged accuracy (:mod:`forms.cost.measured_accuracy`) follows too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from forms.cost.activity import (
    Activity,
    SkipFractions,
    activity_from_metrics,
    check_skip_rule,
    load_activity,
)
from forms.errors import ConfigError
from forms.io import read_json

ACTIVITY_MODES: tuple[str, ...] = ("in16-calibrated", "in16-8bit", "in8")
"""How activations meet the input width: 16-bit inputs with a per-layer scale calibrated to the
activation range; a 16-bit datapath holding activations quantized to 8 significant bits (upper bits
zero); 8-bit inputs."""

DEFAULT_MODE = "in16-calibrated"
"""The mode of ``--activity measured`` without one: the presets' 16-bit inputs, each layer's scale
calibrated to its activations (no headroom assumed)."""

NEAREST_MEASURED: dict[str, str] = {
    "resnet18-imagenet": "resnet18",
    "resnet50": "resnet18",
    "vgg16-imagenet": "vgg16",
    "lenet5-caffe": "lenet5",
    "mlp": "lenet5",
}
"""Zoo networks without a measurement -> the measured network of the same family (same blocks, or for
mlp the same MNIST inputs), whose network-wide fractions they are costed with."""


@dataclass(frozen=True)
class MeasurementSource:
    """Whose packaged measurement (activity or accuracy) the network being costed is judged by.

    A measurement is the network's own only when it was taken on the same model and the same data set.
    The costed network's data set is known from a checkpoint's record or ``--dataset``; a zoo model named
    alone (``--model lenet5``) has none, since its input shape fits several data sets (MNIST and
    Fashion-MNIST are both 1x28x28), so the same model's measurement cannot be told its own."""

    borrowed: bool
    """Measured on another model, or on the same model with a data set other than the costed one's."""
    dataset_known: bool
    """Whether the costed network's data set is known (when not, a same-model measurement is unchecked)."""

    @classmethod
    def of(
        cls, model: str, dataset: str | None, measured_model: str, measured_dataset: str
    ) -> MeasurementSource:
        """The rule: borrowed when ``measured_model`` is not ``model`` or ``measured_dataset`` is not the
        costed network's ``dataset`` (None: not known)."""
        borrowed = model != measured_model or (dataset is not None and dataset != measured_dataset)
        return cls(borrowed, dataset is not None)

    @property
    def label(self) -> str:
        """'borrowed', 'data set unknown', or '' for the network's own measurement."""
        if self.borrowed:
            return "borrowed"
        return "" if self.dataset_known else "data set unknown"

    def note(self, model: str, dataset: str | None) -> str:
        """:attr:`label` naming the costed network when borrowed, e.g. 'borrowed for lenet5 on cifar10'."""
        if not self.borrowed:
            return self.label
        return f"borrowed for {model}" + (f" on {dataset}" if dataset is not None else "")


def costed_dataset(dataset: str | None, checkpoint: str | Path | None) -> str | None:
    """The data set the costed network is meant for (what :class:`MeasurementSource` compares): ``dataset``
    (``--dataset``), else the one ``checkpoint`` records in ``data.dataset``; None when neither says (a
    zoo model named alone). ConfigError when the two disagree."""
    if checkpoint is None:
        return dataset
    from forms.nn.checkpoint import load_checkpoint

    data = load_checkpoint(checkpoint).get("data")
    recorded = data.get("dataset") if isinstance(data, dict) else None
    if dataset is not None and recorded is not None and dataset != recorded:
        raise ConfigError(
            f"--dataset {dataset} disagrees with checkpoint {checkpoint}, which was trained on {recorded}; "
            "drop --dataset or match it"
        )
    return dataset if dataset is not None else recorded


@dataclass(frozen=True)
class PackagedActivity:
    """One packaged measurement: which network, data and input mode, and its file."""

    model: str
    """The zoo model measured."""
    dataset: str
    """The data set its inputs came from."""
    mode: str
    """The input mode (one of :data:`ACTIVITY_MODES`)."""
    path: Path
    """The packaged JSON file."""


def activity_dir() -> Path:
    """Folder of the packaged measured activity files."""
    return Path(str(resources.files("forms") / "presets" / "activity"))


def _parse_name(stem: str) -> tuple[str, str, str] | None:
    """(model, dataset, mode) of a file stem ``<model>-<dataset>-<mode>``; None when it is not one."""
    from forms.nn.models import MODEL_NAMES

    mode = next((m for m in ACTIVITY_MODES if stem.endswith(f"-{m}")), None)
    if mode is None:
        return None
    head = stem[: -len(mode) - 1]
    models = sorted((m for m in MODEL_NAMES if head.startswith(f"{m}-")), key=len, reverse=True)
    if not models:
        return None
    return models[0], head[len(models[0]) + 1 :], mode


def list_packaged_activity(directory: str | Path | None = None) -> list[PackagedActivity]:
    """Every packaged measurement in ``directory`` (default :func:`activity_dir`), sorted by file name."""
    folder = Path(directory) if directory is not None else activity_dir()
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        parsed = _parse_name(path.stem)
        if parsed is not None:
            found.append(PackagedActivity(*parsed, path))
    return found


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`ACTIVITY_MODES`; ConfigError naming them otherwise."""
    if mode not in ACTIVITY_MODES:
        raise ConfigError(f"activity mode must be one of {', '.join(ACTIVITY_MODES)}; got '{mode}'")
    return mode


def find_packaged(
    model: str, mode: str, directory: str | Path | None = None, dataset: str | None = None
) -> PackagedActivity | None:
    """The packaged measurement of ``model`` in ``mode``: the one on ``dataset`` when packaged, else the
    model's on any data set (:class:`MeasurementSource` says whether it is its own); None when none."""
    check_mode(mode)
    hits = [p for p in list_packaged_activity(directory) if p.model == model and p.mode == mode]
    hits = [p for p in hits if p.dataset == dataset] or hits
    if len(hits) > 1:
        names = ", ".join(p.path.name for p in hits)
        raise ConfigError(f"several packaged activity files for {model} ({mode}): {names}; keep one")
    return hits[0] if hits else None


def _metrics(entry: PackagedActivity) -> Mapping[str, Any]:
    data = read_json(entry.path, "packaged activity file")
    if not isinstance(data, Mapping) or "provenance" not in data:
        raise ConfigError(f"{entry.path} has no 'provenance' (how the measurement was made)")
    return data


def load_packaged_activity(
    model: str, dataset: str, mode: str, rule: str, directory: str | Path | None = None
) -> Activity:
    """The measured per-layer activity of ``model`` on ``dataset`` in ``mode`` under zero-skip ``rule``."""
    check_skip_rule(rule)
    entry = find_packaged(model, mode, directory, dataset)
    if entry is None or entry.dataset != dataset:
        have = ", ".join(p.path.stem for p in list_packaged_activity(directory)) or "none"
        raise ConfigError(f"no packaged activity for {model}-{dataset}-{mode}; packaged: {have}")
    return activity_from_metrics(_metrics(entry), rule, f"packaged {entry.path.name}")


@dataclass(frozen=True)
class NetworkWide:
    """One network's zero-skip figures over all its layers (count-weighted)."""

    model: str
    """The zoo model measured."""
    conversions_skipped: float
    """Skipped conversions / all conversions, under the rule asked for."""
    reads_skipped: float
    """Skipped crossbar reads / all reads, likewise."""
    driver_activity: float
    """Non-zero input digits / all input digits (1 when not recorded)."""


def network_wide(entry: PackagedActivity, rule: str) -> NetworkWide:
    """The network-wide fractions of one packaged measurement (sums of counts over its layers)."""
    zs = _metrics(entry).get("zero_skip")
    if not isinstance(zs, Mapping) or not zs:
        raise ConfigError(f"{entry.path} has no 'zero_skip' statistics")
    totals: dict[str, float] = {}
    for stats in zs.values():
        for key, value in stats.items():
            if isinstance(value, int | float):
                totals[key] = totals.get(key, 0.0) + float(value)

    def ratio(part: str, whole: str, absent: float) -> float:
        return totals[part] / totals[whole] if totals.get(whole) else absent

    return NetworkWide(
        entry.model,
        ratio(f"conversions_skipped_{rule}", "conversions_total", 0.0),
        ratio(f"reads_skipped_{rule}", "reads_total", 0.0),
        ratio("input_digits_nonzero", "input_digits_total", 1.0),
    )


def measured_range(mode: str, rule: str, directory: str | Path | None = None) -> tuple[NetworkWide, ...]:
    """Network-wide figures of every measured network in ``mode`` (the measured range across networks)."""
    check_mode(mode)
    return tuple(network_wide(p, rule) for p in list_packaged_activity(directory) if p.mode == mode)


def _from_network(fig: NetworkWide, note: str) -> SkipFractions:
    return SkipFractions(None, fig.conversions_skipped, fig.reads_skipped, fig.driver_activity, note)


def _labelled(entry: PackagedActivity, model: str, dataset: str | None) -> str:
    """``entry``'s file name, with whose measurement it is for ``model`` on ``dataset`` unless its own."""
    note = MeasurementSource.of(model, dataset, entry.model, entry.dataset).note(model, dataset)
    return entry.path.name + (f" ({note})" if note else "")


def measured_skip(
    model: str,
    mode: str = DEFAULT_MODE,
    rule: str = "leading",
    directory: str | Path | None = None,
    dataset: str | None = None,
) -> SkipFractions:
    """Skip figures for costing ``model`` on ``dataset`` (None: not known): the model's packaged
    measurement (its sources say when it is borrowed from other data, or the data set is unknown:
    :class:`MeasurementSource`), else the network-wide figures of its nearest measured network (the note
    names it and the measured range across networks); layers a measurement lacks get that
    measurement's network-wide figures."""
    check_skip_rule(rule)
    entry = find_packaged(model, mode, directory, dataset)
    if entry is not None:  # layers the file lacks get its network-wide figures
        own = network_wide(entry, rule)
        name = _labelled(entry, model, dataset)
        note = f"layer not in {name}: its network-wide fractions"
        activity = activity_from_metrics(_metrics(entry), rule, f"packaged {name}")
        return replace(_from_network(own, note), activity=activity)
    nearest = NEAREST_MEASURED.get(model)
    near = find_packaged(nearest, mode, directory) if nearest else None
    if near is None:
        have = ", ".join(sorted({p.model for p in list_packaged_activity(directory) if p.mode == mode}))
        raise ConfigError(
            f"no packaged {mode} activity for '{model}' nor a nearest measured network; measured: "
            f"{have or 'none'}; pass a simulate metrics.json to --activity instead"
        )
    spread = measured_range(mode, rule, directory)
    lo = min(f.conversions_skipped for f in spread)
    hi = max(f.conversions_skipped for f in spread)
    note = (
        f"{model} not measured: network-wide fractions of the nearest measured network {nearest} "
        f"({near.dataset}, {mode}); measured range of conversions skipped across networks {lo:.3f}..{hi:.3f}"
    )
    return _from_network(network_wide(near, rule), note)


def range_skips(
    mode: str, rule: str, directory: str | Path | None = None
) -> tuple[SkipFractions, SkipFractions]:
    """(least, most) skipping measured network's network-wide figures, for costing an unmeasured network
    at both ends of the measured range."""
    spread = measured_range(mode, rule, directory)
    if not spread:
        raise ConfigError(f"no packaged {mode} activity: the measured range is empty")
    low = min(spread, key=lambda f: f.conversions_skipped)
    high = max(spread, key=lambda f: f.conversions_skipped)
    return (
        _from_network(low, f"lowest measured range end: {low.model}'s network-wide fractions ({mode})"),
        _from_network(high, f"highest measured range end: {high.model}'s network-wide fractions ({mode})"),
    )


def packaged_activity_digest(directory: str | Path | None = None) -> str:
    """SHA-256 of every packaged activity file, names and contents: part of the key of resumable work
    that reads them."""
    digest = hashlib.sha256()
    for path in sorted(Path(directory or activity_dir()).glob("*.json")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def parse_measured_option(text: str) -> str | None:
    """The mode of an ``--activity`` value ``measured`` or ``measured:<mode>``; None for a file path."""
    if text != "measured" and not text.startswith("measured:"):
        return None
    return check_mode(text.partition(":")[2] or DEFAULT_MODE)


def skip_from_option(
    activity: str | None, model: str, rule: str, default: float | None = None, dataset: str | None = None
) -> SkipFractions:
    """The skip figures an ``--activity`` value asks for: None (defaults only), a simulate
    ``metrics.json`` path, or ``measured[:mode]`` (:func:`measured_skip` of ``model`` on ``dataset``,
    None: not known); ``default`` is the conversion skip of layers without a measurement."""
    check_skip_rule(rule)
    if activity is None:
        return SkipFractions(None, default)
    mode = parse_measured_option(activity)
    if mode is None:
        return SkipFractions(load_activity(activity, rule), default)
    skip = measured_skip(model, mode, rule, dataset=dataset)
    return skip if default is None else replace(skip, default=default)
