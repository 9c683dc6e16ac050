"""Pruned channels propagate between consecutive mapped layers in the crossbar counts."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from forms.compress.counting import crossbar_report
from forms.compress.propagation import ChannelLink, channel_links, fold_dead_channels, removed_channels
from forms.config import CrossbarSpec
from forms.geometry import weight_to_matrix
from forms.nn.models import build_model


class Residual(nn.Module):
    """conv -> relu -> conv, with the first conv's output also added to the second's."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 4, 3)
        self.b = nn.Conv2d(4, 4, 1)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        return self.fc(torch.flatten(self.b(torch.relu(y)) + y, 1))


def test_links_follow_sequential_chains_only() -> None:
    assert channel_links(build_model("lenet5")) == [
        ChannelLink("features.0", "features.3", 25, ("features.1", "features.2")),  # relu, pool, 5x5 conv
        ChannelLink("features.3", "classifier.1", 25, ("features.4", "features.5", "classifier.0")),
        ChannelLink("classifier.1", "classifier.3", 1, ("classifier.2",)),
        ChannelLink("classifier.3", "classifier.5", 1, ("classifier.4",)),
    ]
    bn = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 2, 3))
    assert channel_links(bn) == [ChannelLink("0", "3", 9, ("1", "2"))]
    no_bias = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2, bias=False))
    assert channel_links(no_bias) == []  # no bias to absorb a constant channel
    padded = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Conv2d(3, 2, 3, padding=1))
    assert channel_links(padded) == []  # the padded border would read zeros, not the constant
    # a's output is used twice (b and the add): no link from a; b -> fc passes the add: no link either
    assert channel_links(Residual()) == []


def test_dead_channels_are_removed_on_both_sides() -> None:
    torch.manual_seed(0)
    conv1 = torch.randint(1, 4, (4, 1, 2, 2))  # 4 filters
    conv2 = torch.randint(1, 4, (3, 4, 2, 2))  # reads 4 channels of 4 rows each
    conv1[1] = 0  # filter 1 pruned: its channel's 4 rows in conv2 go
    conv2[:, 2] = 0  # input channel 2 pruned in conv2: filter 2 of conv1 goes
    ints = {"c1": weight_to_matrix(conv1), "c2": weight_to_matrix(conv2)}
    out = removed_channels(ints, [ChannelLink("c1", "c2", 4)])
    assert out["c1"][0].ne(0).any(dim=0).tolist() == [True, False, False, True]
    assert out["c2"][0].ne(0).any(dim=1).tolist() == [True] * 4 + [False] * 8 + [True] * 4
    assert torch.equal(out["c1"][0][:, [0, 3]], ints["c1"][0][:, [0, 3]])  # live weights untouched
    assert removed_channels(ints, []) == ints
    small = CrossbarSpec(rows=8, cols=8, cell_bits=2, fragment_size=4)
    before = crossbar_report(ints, 2, small)["layers"]
    after = crossbar_report(out, 2, small)["layers"]
    assert [(la["kept_rows"], la["kept_cols"]) for la in before] == [([4], [3]), ([12], [3])]
    assert [(la["kept_rows"], la["kept_cols"]) for la in after] == [([4], [2]), ([8], [3])]


class Chain(nn.Module):
    """Conv -> BN -> ReLU -> MaxPool -> Conv -> functional ReLU -> flatten -> Linear -> ReLU -> Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 5, 3, padding=1)
        self.bn = nn.BatchNorm2d(5)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.c2 = nn.Conv2d(5, 4, 3)
        self.f1 = nn.Linear(4 * 2 * 2, 6)
        self.act2 = nn.ReLU()
        self.f2 = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.c2(self.pool(self.act(self.bn(self.c1(x))))))
        return self.f2(self.act2(self.f1(torch.flatten(y, 1))))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    dead_filters=st.lists(st.integers(0, 4), max_size=3),
    dead_inputs=st.lists(st.integers(0, 3), max_size=2),
    dead_hidden=st.lists(st.integers(0, 5), max_size=3),
)
def test_folding_pruned_channels_leaves_outputs_unchanged(
    seed: int, dead_filters: list[int], dead_inputs: list[int], dead_hidden: list[int]
) -> None:
    torch.manual_seed(seed)
    model = Chain()
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1, 1)  # biases of both signs, so some constants pass the ReLUs
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
        model.c1.weight[dead_filters] = 0  # pruned filters: constant channels into c2
        model.c2.weight[:, dead_inputs] = 0  # pruned input channels of c2: c1 filters unused
        model.f1.weight[dead_hidden] = 0  # pruned f1 filters: constant rows of f2
    model.eval()
    x = torch.randn(3, 2, 8, 8)
    before = model(x)
    links = channel_links(model)
    assert [(link.source, link.target) for link in links] == [("c1", "c2"), ("c2", "f1"), ("f1", "f2")]
    ints = {n: weight_to_matrix(model.get_submodule(n).weight.detach()) for n in ("c1", "c2", "f1", "f2")}
    expected = removed_channels(ints, links)
    fold_dead_channels(model, links)
    assert torch.allclose(model(x), before, atol=1e-5, rtol=1e-5)
    for name, matrix in expected.items():  # the folded weights have the counted zero pattern
        assert torch.equal(weight_to_matrix(model.get_submodule(name).weight.detach()).ne(0), matrix.ne(0))
    rows_c2 = weight_to_matrix(model.c2.weight.detach())[0].ne(0).any(dim=1).reshape(5, 9).any(dim=1)
    assert not rows_c2[sorted(set(dead_filters))].any()
    assert not model.c1.weight[sorted(set(dead_inputs))].any()
