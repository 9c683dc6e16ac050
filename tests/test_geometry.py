"""Identities of the shared crossbar geometry (docs/design.md, "Shared definitions")."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from forms.config import CrossbarSpec, check_fragment_size
from forms.errors import ConfigError, UnsupportedLayerError
from forms.geometry import (
    fragment_signs,
    fragment_view,
    from_fragment_view,
    layer_geometry,
    mapped_layers,
    matrix_to_weight,
    weight_to_matrix,
)


def test_linear_matrix_is_weight_transpose() -> None:
    lin = nn.Linear(5, 3)
    m = weight_to_matrix(lin.weight.detach())
    assert m.shape == (1, 5, 3)
    assert torch.equal(m[0], lin.weight.detach().t())


def test_conv_rows_follow_c_i_j_order_and_matmul_equals_conv() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, bias=False)
    x = torch.randn(2, 3, 5, 5)
    m = weight_to_matrix(conv.weight.detach())[0]
    cols = nn.functional.unfold(x, 3)  # (N, C*kh*kw, L), rows in (c, i, j) order
    y = (cols.transpose(1, 2) @ m).transpose(1, 2).reshape(2, 4, 3, 3)
    torch.testing.assert_close(y, conv(x).detach())


@settings(max_examples=40, deadline=None)
@given(
    groups=st.sampled_from([1, 2, 4]),
    cin_g=st.integers(1, 3),
    cout_g=st.integers(1, 3),
    k=st.integers(1, 3),
)
def test_matrix_round_trip(groups: int, cin_g: int, cout_g: int, k: int) -> None:
    w = torch.randn(groups * cout_g, cin_g, k, k)
    m = weight_to_matrix(w, groups)
    assert m.shape == (groups, cin_g * k * k, cout_g)
    assert torch.equal(matrix_to_weight(m, w.shape), w)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 5), r=st.sampled_from([1, 2, 4, 8, 16]))
def test_fragment_view_round_trip_and_padding(rows: int, cols: int, r: int) -> None:
    m = torch.randn(2, rows, cols)
    f = fragment_view(m, r)
    assert f.shape == (2, -(-rows // r), r, cols)
    assert torch.equal(from_fragment_view(f, rows), m)
    assert float(f.abs().sum()) == pytest.approx(float(m.abs().sum()), rel=1e-5)


def test_fragment_signs_and_mixed() -> None:
    m = torch.tensor([[1, -1], [2, 0], [0, -3], [0, 0]]).reshape(1, 4, 2)
    s = fragment_signs(m, 2)
    assert s.signs.tolist() == [[[1, -1], [1, -1]]]
    assert s.mixed.tolist() == [[[False, False], [False, False]]]
    assert fragment_signs(m, 4).mixed.tolist() == [[[False, False]]]
    mixed = fragment_signs(torch.tensor([[[1], [-1], [0]]]), 2)
    assert mixed.mixed.tolist() == [[[True], [False]]]
    assert mixed.signs.tolist() == [[[-1], [1]]]


def test_fragment_size_must_divide_rows() -> None:
    with pytest.raises(ValueError, match="must divide"):
        check_fragment_size(3, 128)
    with pytest.raises(ConfigError, match="fragment_size"):
        CrossbarSpec.from_dict({"fragment_size": 3})
    with pytest.raises(ConfigError, match="unknown key 'colums'"):
        CrossbarSpec.from_dict({"colums": 3})


def test_unsupported_layer_named() -> None:
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Linear(2, 2))
    with pytest.raises(UnsupportedLayerError, match="Conv1d"):
        mapped_layers(model)
    with pytest.raises(UnsupportedLayerError, match="no layer to map"):
        mapped_layers(nn.Sequential(nn.ReLU()))


def test_layer_geometry_grouped_conv() -> None:
    g = layer_geometry("c", nn.Conv2d(8, 16, 3, groups=4))
    assert (g.groups, g.rows, g.cols) == (4, 2 * 9, 4)
    assert g.fragments(2, 128) == 4 * 9 * 4


def test_crossbar_count_per_encoding() -> None:
    from forms.config import CrossbarSpec
    from forms.encoding import Encoding

    xbar = CrossbarSpec()

    def crossbar_count(rows: int, cols: int, groups: int, encoding: str, bits: int) -> int:
        return Encoding(encoding).crossbar_count(rows, cols, groups, bits, xbar)

    # 8-bit magnitudes, 2-bit cells: polarized 4 cells, offset 9 bits -> 5 cells, differential 2 x 4.
    assert crossbar_count(128, 32, 1, "polarized", 8) == 1
    assert crossbar_count(128, 32, 1, "offset", 8) == 2  # 160 columns
    assert crossbar_count(128, 32, 1, "differential", 8) == 2
    assert crossbar_count(129, 32, 2, "polarized", 8) == 4
    # ISAAC-CE: 16-bit two's complement weights = 15 magnitude bits + sign -> 8 cells, 16 weights/crossbar.
    assert crossbar_count(128, 16, 1, "offset", 15) == 1
