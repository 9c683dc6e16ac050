"""`forms compress`, `forms export`, `forms check` end to end, and refusal of bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from compress_helpers import make_float_checkpoint
from forms.cli.app import app, run_app
from forms.compress.export import check_npz
from forms.compress.spec import CompressSpec

QUICK = ["--admm-rounds", "1", "--round-epochs", "1", "--retrain-epochs", "1", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def float_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_float_checkpoint(tmp_path_factory.mktemp("cli"), epochs=1)


def forms(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real console script in a subprocess (so FormsError -> exit 2 is exercised end to end)."""
    cmd = [sys.executable, "-c", "from forms.cli import main; main()", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)


def forms_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    """Run the console entry point in this process; return (exit status, stderr with line wraps undone)."""
    monkeypatch.setattr(sys, "argv", ["forms", *args])
    code = 0
    try:
        run_app()
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("fragment", [4, 128])
def test_compress_export_check_end_to_end(
    float_ckpt: tuple[Path, Path], tmp_path: Path, fragment: int
) -> None:
    ckpt, data = float_ckpt
    out = tmp_path / "c"
    r = CliRunner().invoke(
        app,
        [
            *("compress", "--checkpoint", str(ckpt), "--out", str(out), "--fragment", str(fragment)),
            *("--weight-bits", "6", "--prune", "0.25", "--prune-granularity", "channel"),
            *("--data-dir", str(data), *QUICK),
        ],
    )
    assert r.exit_code == 0, r.output
    metrics = json.loads((out / "metrics.json").read_text())
    required = "accuracy_before accuracy_after fragment_size weight_bits fragments_total fragments_mixed_sign"
    for key in [*required.split(), "sparsity", "crossbars", "accuracy_admm", "accuracy_projected"]:
        assert key in metrics
    assert metrics["fragments_mixed_sign"] == 0 and metrics["fragment_size"] == fragment
    assert set(metrics["crossbars"]["final"]) == {"polarized", "offset", "differential"}
    assert list(metrics["reduction"]) == ["final_encoding", "physical", "per_weight"]
    assert metrics["reduction"]["final_encoding"] == metrics["crossbars"]["final_encoding"] == "polarized"
    assert list(metrics["reduction"]["physical"]) == ["pruning", "quantization", "polarization", "total"]
    per_weight = metrics["reduction"]["per_weight"]
    assert list(per_weight) == ["pruning", "quantization", "polarization", "total", "area_equivalent"]
    assert (per_weight["quantization"], per_weight["polarization"]) == (32 / 6, 2.0)
    printed = " ".join(r.output.split())
    assert f"per weight x{per_weight['total']:.2f} = pruning {per_weight['pruning']:.2f}" in printed
    assert f"area of {per_weight['area_equivalent']:.2f} crossbars" in printed
    npz = tmp_path / "model.npz"
    r = CliRunner().invoke(app, ["export", "--checkpoint", str(out / "checkpoint.pt"), "--out", str(npz)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["check", str(npz)])
    assert r.exit_code == 0, r.output
    with np.load(npz) as z:
        assert int(z["fragment_size"]) == fragment and int(z["weight_bits"]) == 6
        assert int(z["crossbar_rows"]) == 128 and int(z["crossbar_cols"]) == 128
        w = z["features.3.weight_int"]
        assert w.shape == (150, 16) and np.issubdtype(w.dtype, np.integer)  # (rows, cols) crossbar layout


def _tamper(src: Path, dst: Path, **changes: np.ndarray) -> Path:
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    np.savez(dst, **arrays)
    return dst


def test_check_reports_every_kind_of_violation(float_ckpt: tuple[Path, Path], tmp_path: Path) -> None:
    ckpt, data = float_ckpt
    out = tmp_path / "c"
    r = CliRunner().invoke(
        app, ["compress", "--checkpoint", str(ckpt), "--out", str(out), "--data-dir", str(data), *QUICK]
    )
    assert r.exit_code == 0, r.output
    good = tmp_path / "good.npz"
    CliRunner().invoke(app, ["export", "--checkpoint", str(out / "checkpoint.pt"), "--out", str(good)])
    assert check_npz(good).ok
    with np.load(good) as z:
        w = z["features.3.weight_int"].copy()
    mixed = w.copy()
    mixed[0, 0], mixed[1, 0] = 5, -5  # rows 0 and 1 share a fragment of column 0
    big = w.copy()
    big[0, 0] = 256  # 8-bit magnitudes stop at 255
    cases = {
        "mixed": (_tamper(good, tmp_path / "m.npz", **{"features.3.weight_int": mixed}), "hold both signs"),
        "range": (_tamper(good, tmp_path / "b.npz", **{"features.3.weight_int": big}), "exceed"),
        "meta": (_tamper(good, tmp_path / "r.npz", fragment_size=np.asarray(3)), "does not divide"),
        "float": (
            _tamper(good, tmp_path / "f.npz", **{"features.3.weight_int": w.astype(np.float32)}),
            "dtype",
        ),
        "scale": (
            _tamper(good, tmp_path / "s.npz", **{"features.3.scale": np.zeros(3, np.float32)}),
            "scale",
        ),
    }
    for name, (path, message) in cases.items():
        report = check_npz(path)
        assert not report.ok and any(message in v for v in report.violations), (name, report.violations)
        result = CliRunner().invoke(app, ["check", str(path)])
        assert result.exit_code == 1, name
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files if k != "weight_bits"}
    np.savez(tmp_path / "nometa.npz", **arrays)
    assert not check_npz(tmp_path / "nometa.npz").ok


def test_bad_input_gives_clear_error_and_writes_nothing(
    float_ckpt: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ckpt, data = float_ckpt
    base = ["compress", "--checkpoint", str(ckpt), "--data-dir", str(data), *QUICK]
    cases = [
        (["--fragment", "3"], "must divide the crossbar rows"),
        (["--weight-bits", "0"], "weight_bits"),
        (["--weight-bits", "17"], "weight_bits"),
        (["--prune", "1.0"], "prune.ratio"),
        (["--prune", "-0.1"], "prune.ratio"),
        (["--prune-granularity", "kernel"], "granularity"),
    ]
    for i, (extra, message) in enumerate(cases):
        out = tmp_path / f"bad{i}"
        code, err = forms_in_process(monkeypatch, capsys, *base, "--out", str(out), *extra)
        assert code == 2, (extra, err)
        assert message in err, (extra, err)
        assert not out.exists()
    # not a FORMS checkpoint
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    code, err = forms_in_process(
        monkeypatch, capsys, "compress", "--checkpoint", str(junk), "--out", str(tmp_path / "j")
    )
    assert code == 2 and "checkpoint" in err and not (tmp_path / "j").exists()
    code, err = forms_in_process(monkeypatch, capsys, "check", str(tmp_path / "missing.npz"))
    assert code == 2 and "does not exist" in err
    # the real console script: exit status 2, one clear message, no traceback
    r = forms(*base, "--out", str(tmp_path / "sub"), "--fragment", "3")
    assert r.returncode == 2 and "must divide" in " ".join(r.stderr.split()) and "Traceback" not in r.stderr
    assert not (tmp_path / "sub").exists()


def test_config_file_and_options_combine(float_ckpt: tuple[Path, Path], tmp_path: Path) -> None:
    ckpt, data = float_ckpt
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"crossbar": {"fragment_size": 16}, "quant": {"weight_bits": 4}}))
    out = tmp_path / "o"
    r = CliRunner().invoke(
        app,
        ["compress", "--checkpoint", str(ckpt), "--out", str(out), "--config", str(cfg), "--weight-bits", "5",
         "--validation-images", "64", "--data-dir", str(data), *QUICK],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["fragment_size"] == 16 and m["weight_bits"] == 5
    assert m["retrain"]["validation_images"] == 64 and m["retrain"]["selected_epoch"] == 1
    assert "retraining epoch 1 of 1 kept by validation accuracy" in " ".join(r.output.split())


def test_example_configs_load() -> None:
    configs = sorted(Path(__file__).resolve().parent.parent.joinpath("configs").glob("compress-*.yaml"))
    assert configs
    for path in configs:
        CompressSpec.from_yaml(path)


@pytest.mark.slow  # two torchrun processes: ~20 s alone, minutes on the shared machine
def test_two_process_w_step_matches_one_process(float_ckpt: tuple[Path, Path], tmp_path: Path) -> None:
    ckpt, data = float_ckpt
    args = ["compress", "--checkpoint", str(ckpt), "--data-dir", str(data), "--admm-rounds", "2"]
    args += ["--round-epochs", "1", "--retrain-epochs", "1", "--quiet", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", "from forms.cli import main; main()"]
    two = subprocess.run([*cmd, *args, "--out", str(tmp_path / "two"), "--nproc", "2"], env=env,
                         capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert two.returncode == 0, two.stdout + two.stderr
    one = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert m2["world_size"] == 2 and m2["fragments_mixed_sign"] == 0
    # same global batches, averaged gradients: the ADMM trajectories agree up to float summation order
    for h1, h2 in zip(m1["admm"]["history"], m2["admm"]["history"], strict=True):
        for name, value in h1["residuals"].items():
            assert h2["residuals"][name] == pytest.approx(value, rel=1e-3, abs=1e-5)


@pytest.fixture(scope="module")
def exported(float_ckpt: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A compressed checkpoint (no ADMM rounds, no retraining: fast) and its exported .npz."""
    from compress_helpers import tiny_spec
    from forms.compress.export import export_npz
    from forms.compress.pipeline import compress

    ckpt, data = float_ckpt
    root = tmp_path_factory.mktemp("exported")
    compress(
        tiny_spec(data, schedule={"admm_rounds": 0, "retrain_epochs": 0}), ckpt, root / "c", progress=False
    )
    export_npz(root / "c" / "checkpoint.pt", root / "good.npz")
    return root / "c" / "checkpoint.pt", root / "good.npz"


def _crc_damaged(src: Path, dst: Path, member: str) -> Path:
    """A copy of the archive ``src`` with the last data byte of ``member`` flipped (its CRC fails)."""
    import zipfile

    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as archive:
        info = archive.getinfo(member)
    name_len, extra_len = np.frombuffer(bytes(data[info.header_offset + 26 : info.header_offset + 30]), "<u2")
    data[info.header_offset + 30 + name_len + extra_len + info.compress_size - 1] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


def test_check_refuses_files_that_are_not_npz_archives(exported: tuple[Path, Path], tmp_path: Path) -> None:
    from forms.errors import ConfigError

    good = exported[1].read_bytes()
    npy = tmp_path / "w.npy"
    np.save(npy, np.zeros((3, 3), np.int32))
    cases = {
        "empty": (b"", "is empty, not an .npz archive"),
        "truncated": (good[: len(good) // 2], r"is not a readable .npz archive \(BadZipFile"),
        "junk": (b"PK\x03\x04" + b"junk" * 64, r"is not a readable .npz archive \(BadZipFile"),
        "pickle": (b"\x80\x04K\x01.", "is not a readable .npz archive"),
        "npy": (npy.read_bytes(), r"holds a single array \(.npy\), not an .npz archive"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(content)
        with pytest.raises(ConfigError, match=message):
            check_npz(path)
    with pytest.raises(ConfigError, match=r"is a folder, not an \.npz file"):
        check_npz(tmp_path)


def test_check_reports_damaged_or_malformed_members(exported: tuple[Path, Path], tmp_path: Path) -> None:
    good = exported[1]
    with np.load(good) as z:
        w = z["features.0.weight_int"]
    assert w.shape == (25, 6)
    cases = {
        "crc": (
            _crc_damaged(good, tmp_path / "crc.npz", "features.3.weight_int.npy"),
            r"member 'features.3.weight_int' cannot be read \(BadZipFile: Bad CRC-32",
        ),
        "object": (
            _tamper(good, tmp_path / "o.npz", layers=np.asarray(["features.0", 1], dtype=object)),
            r"member 'layers' cannot be read \(ValueError: Object arrays",
        ),
        "vector R": (
            _tamper(good, tmp_path / "v.npz", fragment_size=np.asarray([8, 8])),
            r"metadata 'fragment_size' must be an integer scalar, got dtype int64 shape \(2,\)",
        ),
        "layer vector R": (
            _tamper(good, tmp_path / "lv.npz", **{"features.0.fragment_size": np.asarray([8, 8])}),
            "'features.0.fragment_size' must be an integer scalar",
        ),
        "10x6": (
            _tamper(good, tmp_path / "s.npz", **{"features.0.weight_int": w[:10]}),
            r"weight_int has shape \(10, 6\), but its weight_shape \(6, 1, 5, 5\) maps to crossbar matrices "
            r"\(1, 25, 6\)",
        ),
        "no weight_shape": (
            _tamper(good, tmp_path / "n.npz", **{"features.0.weight_shape": np.asarray([[6, 1], [5, 5]])}),
            "weight_shape must be a 1-D integer array",
        ),
        "complex scale": (
            _tamper(good, tmp_path / "c.npz", **{"features.0.scale": np.ones(6, np.complex64)}),
            "scale has dtype complex64, not a real floating-point type",
        ),
        "huge R": (
            _tamper(good, tmp_path / "h.npz", **{"features.0.fragment_size": np.asarray(10**12)}),
            "fragment_size 1000000000000 is neither the global R=8 nor 1",
        ),
    }
    for name, (path, message) in cases.items():
        report = check_npz(path)
        assert not report.ok and any(re.search(message, v) for v in report.violations), (name, report)
    assert check_npz(good).ok


def test_export_refuses_to_replace_its_checkpoint_or_layers_that_do_not_fit(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    from forms.compress.export import export_npz
    from forms.errors import CheckpointError, ConfigError
    from forms.nn.checkpoint import load_checkpoint, save_checkpoint

    ckpt = exported[0]
    before = ckpt.read_bytes()
    for out in (ckpt, ckpt.parent / "." / "checkpoint.pt"):
        with pytest.raises(ConfigError, match="is the checkpoint being exported"):
            export_npz(ckpt, out)
    with pytest.raises(ConfigError, match="is the checkpoint being exported"):
        export_npz(ckpt.parent, ckpt)
    assert ckpt.read_bytes() == before
    state = load_checkpoint(ckpt)
    first = state["integer_layers"][0]
    state["integer_layers"][0] = {**first, "weight_int": first["weight_int"][:, :10]}
    save_checkpoint(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"corrupt integer layer record .*maps to crossbar matrices"):
        export_npz(tmp_path / "bad.pt", tmp_path / "bad.npz")
    assert not (tmp_path / "bad.npz").exists()
