"""Checkpoints: atomic round trip, and a clear CheckpointError for every way a file can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from forms.errors import CheckpointError
from forms.io import write_json_atomic
from forms.nn.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from forms.nn.models import build_model, model_kwargs


def _state(name: str = "lenet5") -> dict:
    torch.manual_seed(0)
    model = build_model(name)
    return {
        "stage": "float",
        "model": {"name": name, "kwargs": model_kwargs(1, 10, 28)},
        "state_dict": model.state_dict(),
        "optimizer": {},
        "epoch": 3,
        "seed": 7,
        "config": {"lr": 0.1},
        "data": {"dataset": "mnist", "pad_to": None, "channels": None},
    }


def test_round_trip_rebuilds_the_same_model(tmp_path: Path) -> None:
    state = _state()
    path = save_checkpoint(state, tmp_path / "run" / "checkpoint.pt")
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]  # no temp file left behind
    ckpt = load_checkpoint(tmp_path / "run")  # a run directory works too
    assert ckpt["format"] == "forms-checkpoint" and ckpt["version"] == 1 and ckpt["epoch"] == 3
    model = model_from_checkpoint(ckpt)
    x = torch.randn(2, 1, 28, 28)
    reference = build_model("lenet5")
    reference.load_state_dict(state["state_dict"])
    assert torch.equal(model(x), reference.eval()(x))


def test_missing_checkpoint_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nothere\.pt does not exist.*forms train"):
        load_checkpoint(tmp_path / "nothere.pt")


def test_corrupt_checkpoint(tmp_path: Path) -> None:
    path = save_checkpoint(_state(), tmp_path / "c.pt")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"c\.pt is corrupt"):
        load_checkpoint(path)


def test_foreign_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a FORMS checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_weights_of_another_model_are_refused(tmp_path: Path) -> None:
    state = _state()
    state["model"] = {"name": "mlp", "kwargs": model_kwargs(1, 10, 28)}
    with pytest.raises(CheckpointError, match="do not fit model mlp"):
        model_from_checkpoint(state)
    state["model"] = {"name": "nonet", "kwargs": {}}
    with pytest.raises(CheckpointError, match="cannot rebuild"):
        model_from_checkpoint(state)


def test_write_json_atomic(tmp_path: Path) -> None:
    obj = {"a": [1, 2.5, None], "b": "x"}
    path = write_json_atomic(obj, tmp_path / "sub" / "m.json")
    assert json.loads(path.read_text()) == obj
    assert len(list(path.parent.iterdir())) == 1


def test_describe_checkpoint_says_what_a_file_holds() -> None:
    from forms.nn.checkpoint import describe_checkpoint

    state = {**_state(), "config": {"epochs": 10}}
    assert describe_checkpoint(state) == "a float lenet5 model on mnist, 3 of 10 epochs trained (forms train)"
    assert describe_checkpoint({**state, "stage": "compressed"}) == (
        "a compressed lenet5 model on mnist (forms compress)"
    )
    assert describe_checkpoint({"stage": "x", "model": [], "data": None}) == "a FORMS checkpoint of stage 'x'"


def test_orphan_temp_files_of_our_names_only_are_removed(tmp_path: Path) -> None:
    from forms.io import remove_orphan_temp_files

    for name in (".checkpoint.pt.a1.tmp", ".checkpoint.pt.b2.tmp", ".metrics.json.c3.tmp", ".other.d4.tmp"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "checkpoint.pt").write_bytes(b"kept")
    removed = remove_orphan_temp_files(tmp_path, ("checkpoint.pt", "metrics.json"))
    assert sorted(p.name for p in removed) == [
        ".checkpoint.pt.a1.tmp",
        ".checkpoint.pt.b2.tmp",
        ".metrics.json.c3.tmp",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.d4.tmp", "checkpoint.pt"]
    assert remove_orphan_temp_files(tmp_path / "absent", ("checkpoint.pt",)) == []


def test_content_key_follows_the_content_not_the_path(tmp_path: Path) -> None:
    from forms.nn.fingerprint import checkpoint_content_key, fingerprint

    state = _state()
    a = save_checkpoint(state, tmp_path / "a.pt")
    b = save_checkpoint({**state, "seed": 99, "epoch": 5}, tmp_path / "b.pt")  # bookkeeping only
    assert (
        checkpoint_content_key(a) == checkpoint_content_key(b) == checkpoint_content_key(load_checkpoint(a))
    )
    changed = {k: v.clone() for k, v in state["state_dict"].items()}
    next(v for v in changed.values() if v.is_floating_point()).view(-1)[0] += 1
    c = save_checkpoint({**state, "state_dict": changed}, tmp_path / "c.pt")
    d = save_checkpoint({**state, "data": {**state["data"], "pad_to": 32}}, tmp_path / "d.pt")
    assert len({checkpoint_content_key(p) for p in (a, c, d)}) == 3
    assert fingerprint(state["state_dict"]) != fingerprint(changed)
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint_content_key(tmp_path / "missing.pt")
