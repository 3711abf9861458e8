"""Token reduction: top-k pruning with fusion, ToMe merging, proportional attention, ONNX export."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from supernet.errors import ConfigError
from supernet.tokens import kept_tokens, proportional_attention, tome_merge, topk_prune


def _brute_tome(x: torch.Tensor, keys: torch.Tensor, size: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ToMe's bipartite matching written as plain loops over one batch row at a time."""
    outs, sizes = [], []
    for bx, bk, bs in zip(x, keys, size, strict=True):
        toks, ks, ss = bx[1:], bk[1:], bs[1:, 0]
        a_ids, b_ids = list(range(0, len(toks), 2)), list(range(1, len(toks), 2))
        best = {}
        for i in a_ids:
            sims = [float(torch.dot(ks[i], ks[j]) / (ks[i].norm() * ks[j].norm())) for j in b_ids]
            j = int(np.argmax(sims))
            best[i] = (sims[j], b_ids[j])
        ranked = sorted(a_ids, key=lambda i: -best[i][0])
        merged, kept = ranked[:r], ranked[r:]
        acc = {j: (toks[j] * ss[j], float(ss[j])) for j in b_ids}
        for i in merged:
            j = best[i][1]
            acc[j] = (acc[j][0] + toks[i] * ss[i], acc[j][1] + float(ss[i]))
        rows = [bx[0]] + [toks[i] for i in kept] + [acc[j][0] / acc[j][1] for j in b_ids]
        row_sizes = [float(bs[0, 0])] + [float(ss[i]) for i in kept] + [acc[j][1] for j in b_ids]
        outs.append(torch.stack(rows))
        sizes.append(torch.tensor(row_sizes).unsqueeze(-1))
    return torch.stack(outs), torch.stack(sizes)


@pytest.mark.parametrize("n, r, seed", [(4, 2, 0), (7, 3, 1), (8, 1, 2), (9, 4, 3), (16, 8, 4), (5, 1, 5)])
def test_tome_merge_equals_brute_force(n, r, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, n + 1, 5, generator=g)
    keys = torch.randn(3, n + 1, 4, generator=g)
    size = torch.randint(1, 4, (3, n + 1, 1), generator=g).float()
    size[:, 0] = 1.0  # the CLS token is never merged: its size stays 1
    got, got_size = tome_merge(x, keys, size, r)
    want, want_size = _brute_tome(x, keys, size, r)
    assert got.shape == (3, n + 1 - r, 5)
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.equal(got_size, want_size)
    assert torch.equal(got_size.sum(dim=1), size.sum(dim=1))  # no patch lost or counted twice
    assert torch.equal(got[:, 0], x[:, 0]) and torch.equal(got_size[:, 0], size[:, 0])  # CLS untouched


def test_tome_sizes_sum_to_input_count_and_keys_average_over_heads():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 17, 8, generator=g)
    keys = torch.randn(2, 3, 17, 4, generator=g)  # per head
    out, size = tome_merge(x, keys, None, 8)
    assert out.shape == (2, 9, 8) and size.sum(dim=1).flatten().tolist() == [17.0, 17.0]
    again, _ = tome_merge(x, keys.mean(dim=1), None, 8)
    assert torch.equal(out, again)
    same, ones = tome_merge(x, keys, None, 0)  # r = 0: nothing moves
    assert same is x and torch.equal(ones, torch.ones(2, 17, 1))
    out2, size2 = tome_merge(out, torch.randn(2, 9, 4, generator=g), size, 4)  # a second merge keeps the count
    assert size2.sum(dim=1).flatten().tolist() == [17.0, 17.0]
    # the size-weighted mean of all patch tokens is invariant under merging
    mean_in = x[:, 1:].sum(dim=1)
    assert torch.allclose((out2[:, 1:] * size2[:, 1:]).sum(dim=1), mean_in, atol=1e-5)


def test_tome_refuses_more_than_half():
    x = torch.randn(1, 10, 4)  # 9 non-CLS tokens: at most 4 merges
    with pytest.raises(ConfigError, match=r"at most half.*\[0, 4\].*r=5"):
        tome_merge(x, x, None, 5)
    with pytest.raises(ConfigError, match="at most half"):
        kept_tokens(9, 0.4, "tome")


def test_proportional_attention_with_unit_sizes_is_plain_attention():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 4, generator=g) for _ in range(3))
    plain = torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1) @ v
    assert torch.allclose(proportional_attention(q, k, v, torch.ones(2, 7, 1)), plain, atol=1e-6)
    assert torch.allclose(proportional_attention(q, k, v, None), plain, atol=1e-6)
    assert torch.allclose(torch.nn.functional.scaled_dot_product_attention(q, k, v), plain, atol=1e-6)


def test_proportional_attention_equals_duplicated_keys():
    """A key of size s weighs like s copies of that key: the defining property of proportional attention."""
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 3, 4, generator=g) for _ in range(3))
    size = torch.tensor([[[1.0], [3.0], [2.0]]])
    rep = torch.tensor([0, 1, 1, 1, 2, 2])
    dup = torch.softmax(q @ k[:, :, rep].transpose(-2, -1) / 2.0, dim=-1) @ v[:, :, rep]
    out, attn = proportional_attention(q, k, v, size, return_attn=True)
    assert torch.allclose(out, dup, atol=1e-6)
    assert torch.allclose(attn.sum(-1), torch.ones(1, 2, 3), atol=1e-6)


def test_topk_keeps_the_highest_scoring_tokens_and_fuses_the_rest():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 9, 5, generator=g)
    scores = torch.rand(2, 8, generator=g)
    out, size = topk_prune(x, scores, 3)
    assert out.shape == (2, 5, 5) and torch.equal(out[:, 0], x[:, 0])
    for b in range(2):
        best = torch.argsort(scores[b], descending=True)
        assert torch.equal(out[b, 1:4], x[b, 1:][best[:3]])  # the top 3, best first
        w = scores[b, best[3:]]
        fused = (x[b, 1:][best[3:]] * w[:, None]).sum(0) / w.sum()
        assert torch.allclose(out[b, 4], fused, atol=1e-6)
    assert size[:, :, 0].tolist() == [[1.0, 1.0, 1.0, 1.0, 5.0]] * 2
    plain, psize = topk_prune(x, scores, 3, fuse=False)
    assert torch.equal(plain, out[:, :4]) and psize.sum().item() == 8
    same, _ = topk_prune(x, scores, 8)
    assert same is x


def test_kept_tokens_is_the_same_for_both_methods():
    assert kept_tokens(64, 0.5, "topk") == kept_tokens(64, 0.5, "tome") == 32
    assert kept_tokens(64, 0.7, "tome") == 45 and kept_tokens(10, 0.7, "tome") == 7
    assert kept_tokens(33, 0.5, "tome") == 17  # r = 16 = 33 // 2
    assert kept_tokens(16, 1.0, "topk") == 16 and kept_tokens(2, 0.5, "topk") == 2
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        kept_tokens(16, 1.2, "topk")
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        kept_tokens(16, 0.0, "topk")


class _Reduce(torch.nn.Module):
    def __init__(self, method: str) -> None:
        super().__init__()
        self.method = method

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = k = v = x.unflatten(-1, (2, 4)).transpose(1, 2)  # (B, 2 heads, N, 4)
        out, attn = proportional_attention(q, k, v, None, return_attn=True)
        h = out.transpose(1, 2).flatten(2)
        if self.method == "topk":
            return topk_prune(h, attn[:, :, 0, 1:].sum(1), 5)
        merged, size = tome_merge(h, k, None, 4)
        return proportional_attention(q[:, :, : 9 - 4], k[:, :, :5], v[:, :, :5], size[:, :5]).sum(), size


@pytest.mark.parametrize("method, ops", [("topk", {"TopK", "GatherElements"}), ("tome", {"TopK", "ScatterElements"})])
def test_token_ops_export_to_onnx_and_agree(method, ops):
    import onnx
    import onnxruntime as ort

    model = _Reduce(method).eval()
    x = torch.randn(3, 9, 8)
    buf = io.BytesIO()
    torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=17, input_names=["x"])
    graph = onnx.load_from_string(buf.getvalue()).graph
    assert ops <= {n.op_type for n in graph.node}
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    for got, want in zip(sess.run(None, {"x": x.numpy()}), model(x), strict=True):
        assert np.abs(got - want.detach().numpy()).max() <= 1e-4
