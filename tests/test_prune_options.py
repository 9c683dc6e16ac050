"""Per-layer pruning ratios, first/last-layer choices and combined granularity, as a user meets them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import assert_clean_error, run_forms
from compress_helpers import make_float_checkpoint
from forms.compress.constraints import layer_constraints
from forms.compress.projections import TileSize
from forms.compress.spec import CompressSpec
from forms.errors import ConfigError
from forms.nn.models import build_model

QUICK = ["--admm-rounds", "1", "--round-epochs", "1", "--retrain-epochs", "1", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def float_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_float_checkpoint(tmp_path_factory.mktemp("prune_options"), epochs=1)


@pytest.mark.parametrize(
    ("layers", "option"),
    [({"features.0": 0.5}, "prune.first_layer"), ({"classifier.5": 0.5}, "prune.last_layer")],
)
def test_ratio_of_excluded_layer_names_the_option(layers: dict[str, float], option: str) -> None:
    spec = CompressSpec.from_dict({"prune": {"layer_ratios": layers}})
    with pytest.raises(ConfigError, match=option):
        layer_constraints(build_model("lenet5"), spec)
    included = CompressSpec.from_dict({"prune": {"layer_ratios": layers, option.split(".")[1]: True}})
    (name,) = layers
    ratios = {c.name: c.prune_ratio for c in layer_constraints(build_model("lenet5"), included)}
    assert ratios[name] == 0.5
    zero = CompressSpec.from_dict({"prune": {"layer_ratios": {name: 0.0}}})  # 0 prunes nothing: allowed
    assert all(c.prune_ratio == 0 for c in layer_constraints(build_model("lenet5"), zero))


def test_granularity_list_and_any_order_mean_the_same() -> None:
    for value in (["channel", "filter"], "channel+filter", "filter+channel"):
        assert CompressSpec.from_dict({"prune": {"granularity": value}}).prune.granularity == "filter+channel"
    with pytest.raises(ConfigError, match="granularity"):
        CompressSpec.from_dict({"prune": {"granularity": "channel+fragment"}})


def test_round_to_tiles_uses_the_polarized_tile_and_needs_layer_scope() -> None:
    spec = CompressSpec.from_dict(
        {
            "prune": {"ratio": 0.5, "round_to_tiles": True},
            "crossbar": {"cell_bits": 2},
            "quant": {"weight_bits": 8},
        }
    )
    tiles = {c.prune_tile for c in layer_constraints(build_model("lenet5"), spec)}
    assert tiles == {TileSize(rows=128, cols=32)}  # 4 two-bit cells per 8-bit weight: 128 / 4 columns
    assert all(c.prune_tile is None for c in layer_constraints(build_model("lenet5"), CompressSpec()))
    with pytest.raises(ConfigError, match="round_to_tiles"):
        CompressSpec.from_dict({"prune": {"ratio": 0.5, "round_to_tiles": True, "scope": "global"}})


def test_global_scope_refuses_a_layer_ratio_it_would_ignore() -> None:
    ratios = {"features.3": 0.2, "classifier.3": 0}
    with pytest.raises(ConfigError, match=r"prune\.scope 'layer'") as err:
        CompressSpec.from_dict({"prune": {"ratio": 0.5, "scope": "global", "layer_ratios": ratios}})
    named = str(err.value).split("(got")[0]
    assert "features.3" in named and "classifier.3" not in named
    excluded = CompressSpec.from_dict(
        {"prune": {"ratio": 0.5, "scope": "global", "layer_ratios": {"classifier.3": 0.0}}}
    )
    ratios = {c.name: c.prune_ratio for c in layer_constraints(build_model("lenet5"), excluded)}
    assert ratios["classifier.3"] == 0 and ratios["features.3"] == 0.5  # 0 takes a layer out of the ranking


def test_help_names_the_layer_options() -> None:
    proc = run_forms("compress", "--help")
    text = " ".join(proc.stdout.split())
    assert proc.returncode == 0
    for fragment in (
        "--prune-layer",
        "NAME=RATIO",
        "NAME=filter:0.9,channel:0.3",
        "--prune-first-layer",
        "--prune-last-layer",
        "filter+channel",
        "--prune-propagate",
        "--prune-round-to-tiles",
    ):
        assert fragment in text, fragment
    assert "except the first and the last unless" in text


def test_excluded_layer_ratio_is_a_clean_error_and_writes_nothing(
    float_ckpt: tuple[Path, Path], tmp_path: Path
) -> None:
    ckpt, data = float_ckpt
    base = ["compress", "--checkpoint", str(ckpt), "--data-dir", str(data), *QUICK]
    cases = [
        (["--prune-layer", "classifier.5=0.5"], ["prune.last_layer", "--prune-last-layer", "classifier.5"]),
        (["--prune-layer", "features.0=0.3"], ["prune.first_layer", "--prune-first-layer"]),
        (["--prune-layer", "nope=0.3"], ["does not have", "nope"]),
        (["--prune-layer", "features.3"], ["NAME=RATIO", "features.3"]),
        (["--prune-layer", "features.3=1.5"], ["prune.layer_ratios"]),
    ]
    for i, (extra, fragments) in enumerate(cases):
        out = tmp_path / f"bad{i}"
        assert_clean_error(run_forms(*base, "--out", str(out), *extra), *fragments)
        assert not out.exists(), extra


def test_layer_options_and_filter_plus_channel_run(float_ckpt: tuple[Path, Path], tmp_path: Path) -> None:
    ckpt, data = float_ckpt
    out = tmp_path / "run"
    proc = run_forms(
        *("compress", "--checkpoint", str(ckpt), "--out", str(out), "--data-dir", str(data), *QUICK),
        *("--prune", "0.5", "--prune-granularity", "filter+channel", "--prune-first-layer"),
        *("--prune-layer", "features.0=0.5", "--prune-propagate"),
        *("--prune-layer", "classifier.1=filter:0.25,channel:0.1"),
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["prune"]["granularity"] == "filter+channel"
    assert metrics["config"]["prune"]["layer_ratios"] == {
        "features.0": 0.5,
        "classifier.1": {"filter": 0.25, "channel": 0.1},
    }
    records = {layer["name"]: layer for layer in metrics["layers"]}
    assert records["classifier.1"]["prune_unit_ratios"] == {"filter": 0.25, "channel": 0.1}
    assert "prune_unit_ratios" not in records["features.3"]
    layers = {layer["name"]: layer for layer in metrics["crossbar_layers"]}
    # pruned units are zero (polarization and rounding may zero a few more entries, never fewer)
    assert 0 < layers["features.0"]["kept_cols"][0] <= 3  # 6 filters, ratio 0.5 (first layer included)
    assert 0 < layers["features.3"]["kept_cols"][0] <= 8  # 16 filters at --prune 0.5
    assert 0 < layers["features.3"]["kept_rows"][0] <= 75  # and 3 of 6 input channels of 25 rows each
    assert 0 < layers["classifier.1"]["kept_cols"][0] <= 90  # 120 filters at 0.25
    assert 0 < layers["classifier.1"]["kept_rows"][0] <= 360  # 400 input channels at 0.1
    assert layers["classifier.5"]["kept_cols"] == [10]  # the last layer is not pruned
    # propagation: features.3's 8 pruned filters remove their 25-row blocks of classifier.1, and the
    # inputs classifier.3 no longer reads remove classifier.1's filters (at most 60 live of 120)
    assert metrics["config"]["prune"]["propagate"] is True
    assert layers["classifier.1"]["kept_rows"][0] <= 8 * 25
    assert layers["classifier.1"]["kept_cols"][0] <= 60
    assert layers["features.0"]["kept_cols"][0] <= layers["features.3"]["kept_rows"][0] // 25
    npz = tmp_path / "model.npz"
    assert run_forms("export", "--checkpoint", str(out / "checkpoint.pt"), "--out", str(npz)).returncode == 0
    assert run_forms("check", str(npz)).returncode == 0  # folding keeps every constraint
