from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supernet.errors import ArchStringError, ConfigError
from supernet.space import SearchSpace, SubnetConfig

SPACES = [
    SearchSpace(n_blocks=4),
    SearchSpace(n_blocks=9, width_choices=(0.25, 0.5, 0.75, 1.0)),
    SearchSpace(n_blocks=3, width_choices=(0.5, 1.0), exit_positions=(0, 1), token_choices=(0.5, 0.75, 1.0),
                n_token_positions=2, family="vit"),
    SearchSpace(n_blocks=4, exit_positions=(1,), n_cascade=2),
]


@st.composite
def space_and_vector(draw):
    space = draw(st.sampled_from(SPACES))
    vec = [draw(st.integers(0, c - 1)) for c in space.cardinalities]
    return space, vec


@given(space_and_vector())
@settings(max_examples=200, deadline=None)
def test_encode_decode_and_string_round_trip(sv):
    space, vec = sv
    cfg = space.decode(vec)
    assert list(space.encode(cfg)) == vec
    text = space.format(cfg)
    assert space.parse(text) == cfg
    assert space.subnet_id(space.parse(text)) == space.subnet_id(cfg)


@given(st.sampled_from(SPACES))
def test_space_json_round_trip(space):
    again = SearchSpace.from_json(space.to_json())
    assert again == space and hash(again) == hash(space)
    assert again.fingerprint == space.fingerprint


def test_cardinalities_size_and_extremes():
    space = SPACES[2]
    assert space.cardinalities == (2, 2, 2, 2, 2, 3, 3)
    assert space.size == 2**5 * 9
    assert space.format(space.smallest()) == "w0-0-0_x00_t2-2"
    assert space.largest().widths == (1, 1, 1)


def test_sample_is_seeded_and_respects_allowed_widths():
    space = SPACES[1]
    a = [space.sample(np.random.default_rng(3)) for _ in range(5)]
    b = [space.sample(np.random.default_rng(3)) for _ in range(5)]
    assert a == b
    rng = np.random.default_rng(0)
    restricted = [space.sample(rng, (2, 3)) for _ in range(50)]
    assert {w for cfg in restricted for w in cfg.widths} == {2, 3}


def test_subnet_id_differs_between_spaces_and_archs():
    s1, s2 = SearchSpace(n_blocks=4), SearchSpace(n_blocks=4, width_choices=(0.5, 1.0))
    cfg = SubnetConfig((0, 1, 0, 1))
    assert s1.subnet_id(cfg) != s2.subnet_id(cfg)
    assert s1.subnet_id(cfg) != s1.subnet_id(SubnetConfig((1, 1, 0, 1)))
    assert len(s1.subnet_id(cfg)) == 12


@pytest.mark.parametrize("bad, field", [((0, 1, 2), "widths"), ((0, 1, 2, 4), "widths[3]"), ((0, -1, 0, 0), "widths[1]")])
def test_validation_names_field_value_and_choices(bad, field):
    with pytest.raises(ConfigError) as e:
        SearchSpace(n_blocks=4).make(bad)
    assert f"`{field}`" in str(e.value)


@pytest.mark.parametrize("text", ["", "w1-2", "x0101", "w1-2-3-9", "w1-2-3-a", "w0-0-0-0_x01"])
def test_parse_errors_show_expected_form(text):
    with pytest.raises(ArchStringError) as e:
        SearchSpace(n_blocks=4).parse(text)
    assert "w3-3-3-3" in str(e.value)


@pytest.mark.parametrize("kwargs", [dict(n_blocks=0), dict(n_blocks=2, width_choices=(1.0, 0.5)),
                                    dict(n_blocks=2, width_choices=(0.0, 1.0)), dict(n_blocks=2, exit_positions=(5,)),
                                    dict(n_blocks=2, token_choices=(0.5,))])
def test_invalid_spaces_rejected(kwargs):
    with pytest.raises(ConfigError):
        SearchSpace(**kwargs)


def test_config_dict_is_json_serialisable():
    cfg = SPACES[2].largest()
    assert json.loads(json.dumps(cfg.to_dict())) == {"widths": [1, 1, 1], "exits": [0, 0], "tokens": [2, 2],
                                                     "cascade": 0}


def test_cascade_gene():
    space = SPACES[3]
    assert space.cardinalities == (4, 4, 4, 4, 2, 3) and space.size == 4 ** 4 * 2 * 3
    cfg = space.parse("w3-3-2-1_x1_c2")
    assert cfg.cascade == 2 and space.format(cfg) == "w3-3-2-1_x1_c2"
    assert space.scout(cfg) == space.uniform(1) and space.scout(space.without_cascade(cfg)) is None
    assert list(space.encode(cfg)) == [3, 3, 2, 1, 1, 2]
    with pytest.raises(ArchStringError, match="_c<k>"):
        space.parse("w3-3-2-1_x1")
    with pytest.raises(ArchStringError, match="cascade"):
        space.parse("w3-3-2-1_x1_c3")
    with pytest.raises(ConfigError, match="n_cascade"):
        SearchSpace(n_blocks=2, width_choices=(0.5, 1.0), n_cascade=2)
    # a space without the gene keeps its fingerprint (old subnet ids stay valid)
    plain = SearchSpace(n_blocks=4, exit_positions=(1,))
    assert "n_cascade" not in plain.to_dict() and plain.fingerprint != space.fingerprint
