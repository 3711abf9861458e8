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
    SearchSpace(n_blocks=3, width_choices=(0.25, 0.5, 1.0), head_choices=(1, 2, 4), exit_positions=(1,),
                token_choices=(0.5, 0.7, 1.0), n_token_positions=3, token_methods=("topk", "tome"), family="vit"),
    SearchSpace(n_blocks=2, width_choices=(0.5, 1.0), head_choices=(1, 2), token_choices=(0.3, 1.0),
                n_token_positions=1, token_methods=("topk",), n_cascade=1, family="vit"),
]
VIT = SPACES[4]


def _repaired(space: SearchSpace, vec: list[int]) -> list[int]:
    """``vec`` with its token indices replaced by their running minimum (what ``decode`` does)."""
    a = space.n_blocks * (2 if space.head_choices else 1) + len(space.exit_positions)
    b = a + space.n_token_positions
    tokens = np.minimum.accumulate(vec[a:b]).tolist() if b > a else []
    return vec[:a] + tokens + vec[b:]


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
    assert list(space.encode(cfg)) == _repaired(space, vec)
    assert space.decode(space.encode(cfg)) == cfg
    text = space.format(cfg)
    assert space.parse(text) == cfg
    assert space.subnet_id(space.parse(text)) == space.subnet_id(cfg)


@given(space_and_vector())
@settings(max_examples=100, deadline=None)
def test_encode_many_equals_encode_row_by_row(sv):
    space, vec = sv
    cfgs = [space.decode(vec), space.smallest(), space.largest()]
    assert space.encode_many(cfgs).tolist() == [space.encode(c).tolist() for c in cfgs]
    assert space.encode_many([]).shape == (0, len(space.cardinalities))


@pytest.mark.parametrize("bad, match", [
    (SubnetConfig((0, 0, 9), (0,), (2, 2, 2), heads=(0, 0, 0)), r"`widths\[2\]` must be a choice index"),
    (SubnetConfig((0, 0, 0), (0,), (0, 2, 2), heads=(0, 0, 0)), "non-increasing share"),
    (SubnetConfig((0, 0), (0,), (2, 2, 2), heads=(0, 0, 0, 0)), "`widths` must have 3 entries"),
    (SubnetConfig((0, 0, 0), (0,), (2, 2, 2), heads=(0, 0, 0), cascade=1), r"`cascade` must be in \[0, 0\]"),
])
def test_encode_many_rejects_what_validate_rejects(bad, match):
    good = VIT.largest()
    with pytest.raises(ConfigError, match=match):
        VIT.encode_many([good, bad])


@given(st.sampled_from(SPACES))
def test_space_json_round_trip(space):
    again = SearchSpace.from_json(space.to_json())
    assert again == space and hash(again) == hash(space)
    assert again.fingerprint == space.fingerprint


def test_cardinalities_size_and_extremes():
    space = SPACES[2]
    assert space.cardinalities == (2, 2, 2, 2, 2, 3, 3)
    assert space.size == 2**5 * 6  # 6 non-increasing schedules of 2 positions over 3 ratios
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


def test_vit_genes_in_encoding_order_and_string():
    space = VIT
    assert space.cardinalities == (3,) * 3 + (3,) * 3 + (2,) + (3,) * 3 + (2,)
    assert space.gene_names == ("w0", "w1", "w2", "h0", "h1", "h2", "x0", "t0", "t1", "t2", "method")
    assert space.size == 3**3 * 3**3 * 2 * 10 * 2  # 10 non-increasing schedules of 3 positions over 3 ratios
    cfg = space.make((2, 1, 0), (1,), (2, 2, 1), heads=(2, 2, 0), method=1)
    text = space.format(cfg)
    assert text == "w2-1-0_h2-2-0_x1_t2-2-1_m1"
    assert space.parse(text) == cfg
    assert list(space.encode(cfg)) == [2, 1, 0, 2, 2, 0, 1, 2, 2, 1, 1]
    assert space.decode([2, 1, 0, 2, 2, 0, 1, 2, 2, 1, 1]) == cfg
    assert space.head_counts(cfg) == (4, 4, 1) and space.keep_ratios(cfg) == (1.0, 1.0, 0.7)
    assert space.token_method(cfg) == "tome"
    assert space.replace(cfg, exits=(0,)) == space.make((2, 1, 0), (0,), (2, 2, 1), heads=(2, 2, 0), method=1)
    d = cfg.to_dict()
    assert d == {"widths": [2, 1, 0], "exits": [1], "tokens": [2, 2, 1], "cascade": 0, "heads": [2, 2, 0], "method": 1}
    assert SubnetConfig.from_dict(json.loads(json.dumps(d))) == cfg


def test_uniform_extremes_keep_all_tokens_and_move_heads_with_widths():
    space = VIT
    assert space.format(space.largest()) == "w2-2-2_h2-2-2_x0_t2-2-2_m0"
    assert space.format(space.smallest()) == "w0-0-0_h0-0-0_x0_t2-2-2_m0"
    assert space.uniform(1).heads == (1, 1, 1) and space.keep_ratios(space.uniform(1)) == (1.0, 1.0, 1.0)


def test_decode_repairs_an_increasing_schedule_by_running_minimum():
    space = VIT
    cfg = space.decode([0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0])  # tokens 1, 2, 0
    assert cfg.tokens == (1, 1, 0)
    assert space.decode([0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 0]).tokens == (0, 0, 0)


def test_sample_draws_valid_schedules_and_restricts_heads_to_the_levels():
    space = VIT
    rng = np.random.default_rng(0)
    subs = [space.sample(rng) for _ in range(400)]
    for s in subs:
        assert all(a >= b for a, b in zip(s.tokens[:-1], s.tokens[1:], strict=True))
    # uniform over the 10 valid schedules: every one appears, none dominates
    counts = {}
    for s in subs:
        counts[s.tokens] = counts.get(s.tokens, 0) + 1
    assert len(counts) == 10 and max(counts.values()) < 80
    assert {s.method for s in subs} == {0, 1}
    restricted = [space.sample(rng, (1, 2)) for _ in range(100)]
    assert {i for s in restricted for i in s.widths + s.heads} == {1, 2}
    full = [space.sample(rng, tokens=False) for _ in range(20)]
    assert all(s.tokens == (2, 2, 2) and s.method == 0 for s in full)
    assert [space.sample(np.random.default_rng(5)) for _ in range(3)] == \
        [space.sample(np.random.default_rng(5)) for _ in range(3)]


@pytest.mark.parametrize("text, match", [
    ("w2-1-0_h2-2-0_x1_t1-2-1_m1", "non-increasing"),  # the schedule grows at position 1
    ("w2-1-0_h2-2-0_x1_t2-2-1", "_m<k>"),
    ("w2-1-0_x1_t2-2-1_m1", "heads"),
    ("w2-1-0_h2-2-0_x1_t2-2-1_m2", "method"),
    ("w2-1-0_h2-2-3_x1_t2-2-1_m0", "heads"),
])
def test_vit_parse_errors(text, match):
    with pytest.raises(ArchStringError, match=match) as e:
        VIT.parse(text)
    assert "\n" not in str(e.value) and "w2-2-2_h2-2-2_x0_t2-2-2_m0" in str(e.value)


def test_increasing_schedule_rejected_by_make():
    with pytest.raises(ConfigError, match=r"keep ratio 1.0 at position 2 follows 0.5"):
        VIT.make((0, 0, 0), (0,), (2, 0, 2), heads=(0, 0, 0))


def test_family_strings_do_not_cross():
    cnn = SearchSpace(n_blocks=3, width_choices=(0.25, 0.5, 1.0), exit_positions=(1,))
    with pytest.raises(ArchStringError):
        cnn.parse(VIT.format(VIT.largest()))
    with pytest.raises(ArchStringError):
        VIT.parse(cnn.format(cnn.largest()))


@pytest.mark.parametrize("kwargs, match", [
    (dict(token_choices=(0.5, 1.5)), r"\(0, 1\]"),
    (dict(token_choices=(0.0, 1.0)), r"\(0, 1\]"),
    (dict(token_choices=(-0.5, 1.0)), r"\(0, 1\]"),
    (dict(token_choices=(0.5, 0.9)), "end with 1.0"),
    (dict(token_choices=(0.7, 0.5, 1.0)), "ascending"),
    (dict(token_choices=(0.4, 1.0), token_methods=("topk", "tome")), "at most half"),
    (dict(token_methods=("prune",)), "token_methods"),
    (dict(head_choices=(1, 2, 4)), "head_choices"),
    (dict(head_choices=(2, 1)), "head_choices"),
])
def test_invalid_vit_spaces_rejected(kwargs, match):
    base = dict(n_blocks=2, width_choices=(0.5, 1.0), token_choices=(0.5, 1.0), n_token_positions=1)
    with pytest.raises(ConfigError, match=match):
        SearchSpace(**(base | kwargs))
    with pytest.raises(ConfigError, match="n_token_positions"):
        SearchSpace(n_blocks=2, token_methods=("topk",))


def test_cnn_strings_dicts_and_fingerprints_unchanged():
    space = SearchSpace(n_blocks=9, exit_positions=(1, 4), n_cascade=2)
    assert set(space.to_dict()) == {"family", "n_blocks", "width_choices", "exit_positions", "token_choices",
                                    "n_token_positions", "n_cascade"}
    assert space.format(space.largest()) == "w3-3-3-3-3-3-3-3-3_x00_c0"
    cfg = space.parse("w0-1-2-3-0-1-2-3-0_x10_c1")
    assert cfg.heads == () and cfg.method == 0
    assert cfg.to_dict() == {"widths": [0, 1, 2, 3, 0, 1, 2, 3, 0], "exits": [1, 0], "tokens": [], "cascade": 1}
    assert space.gene_names[-3:] == ("x0", "x1", "cascade")
    # the fingerprint hashes exactly the pre-ViT dict (subnet ids of shipped runs stay valid)
    import hashlib
    old = json.dumps({"family": "cnn", "n_blocks": 9, "width_choices": [0.25, 0.5, 0.75, 1.0],
                      "exit_positions": [1, 4], "token_choices": [], "n_token_positions": 0, "n_cascade": 2},
                     sort_keys=True)
    assert space.fingerprint == hashlib.sha1(old.encode()).hexdigest()[:8]


def test_cnn_sampling_stream_is_unchanged():
    """Golden values drawn before the ViT genes existed: CNN training draws the same subnets as before."""
    space = SearchSpace(n_blocks=4, exit_positions=(1,), n_cascade=2)
    rng = np.random.default_rng(0)
    assert [space.format(space.sample(rng)) for _ in range(3)] == ["w3-2-2-1_x0_c0", "w0-0-0-3_x1_c2", "w2-2-3-2_x1_c1"]
    assert space.format(space.sample(rng, (2, 3))) == "w3-3-2-3_x1_c0"


def test_the_genome_is_declared_once() -> None:
    """Cardinalities, gene names, encode and decode all come from SearchSpace.genes."""
    from supernet.space import SearchSpace, arch_is_dynamic

    space = SearchSpace(n_blocks=3, width_choices=(0.5, 1.0), exit_positions=(0, 1), n_cascade=1)
    groups = {g.field: (g.prefix, g.count, g.choices) for g in space.genes}
    assert groups["widths"] == ("w", 3, 2) and groups["heads"][1] == 0 and groups["cascade"] == ("cascade", 1, 2)
    assert space.gene_names == ("w0", "w1", "w2", "x0", "x1", "cascade")
    assert space.cardinalities == (2, 2, 2, 2, 2, 2)
    cfg = space.parse("w1-0-1_x01_c1")
    assert space.encode(cfg).tolist() == [1, 0, 1, 0, 1, 1] and space.decode(space.encode(cfg)) == cfg
    assert space.encode_many([cfg, space.largest()]).shape == (2, 6)
    # the report's static/dynamic split reads the same grammar
    assert arch_is_dynamic("w1-0-1_x01_c0") and arch_is_dynamic("w1-0-1_x00_c3") and not arch_is_dynamic("w1-0-1_x00_c0")
    assert not arch_is_dynamic("w3-3-3-3")
