"""Tests for qa.ort: exports give transformers' numbers, are cached, and answering needs no torch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa import ort
from qa.reader.read import DEFAULT_READER


def _transformers_logits(folder: Path, ids: np.ndarray, types: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(str(folder), dtype=torch.float32).eval()
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids), attention_mask=torch.ones(ids.shape, dtype=torch.long),
                    token_type_ids=torch.tensor(types))
    return out.start_logits.numpy(), out.end_logits.numpy()


def _window(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    tok = ort.load_tokenizer(folder)
    e = tok.encode("Who kept the log?", "The keeper, Ann Tullis, kept a log of every ship that passed.")
    return np.array([e.ids], dtype=np.int64), np.array([e.type_ids], dtype=np.int64)


def test_the_exported_graph_gives_the_transformers_logits(tiny_model_dir: Path) -> None:
    ids, types = _window(tiny_model_dir)
    session = ort.Session(ort.exported(tiny_model_dir, "qa"))
    assert session.uses_token_types
    s, e = session.run(ids, np.ones_like(ids), types)
    ts, te = _transformers_logits(tiny_model_dir, ids, types)
    assert np.allclose(s, ts, atol=1e-5) and np.allclose(e, te, atol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(not (DEFAULT_READER / "config.json").is_file(), reason="no trained reader yet")
def test_the_shipped_readers_export_gives_its_transformers_logits() -> None:
    ids, types = _window(DEFAULT_READER)
    s, e = ort.Session(ort.exported(DEFAULT_READER, "qa")).run(ids, np.ones_like(ids), types)
    ts, te = _transformers_logits(DEFAULT_READER, ids, types)
    assert np.abs(s - ts).max() < 1e-3 and np.abs(e - te).max() < 1e-3
    assert s.argmax() == ts.argmax() and e.argmax() == te.argmax()


def test_exports_are_cached_and_redone_when_weights_change(tiny_model_dir: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ort.CACHE_ENV, str(tmp_path / "cache"))
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    messages: list[str] = []
    first = ort.exported(folder, "qa", log=messages.append)
    assert first.parent == tmp_path / "cache" / "onnx" and len(messages) == 1
    assert ort.exported(folder, "qa", log=messages.append) == first and len(messages) == 1  # cached
    weights = folder / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    second = ort.exported(folder, "qa", log=messages.append)
    assert second != first and second.is_file() and len(messages) == 2
    assert not list((tmp_path / "cache" / "onnx").glob(".export-*"))  # no half-written leftovers


def test_int8_is_a_quantised_copy_of_the_export(tiny_model_dir: Path) -> None:
    f32, i8 = ort.exported(tiny_model_dir, "qa"), ort.exported(tiny_model_dir, "qa", "int8")
    assert i8 != f32 and i8.is_file()
    ids, types = _window(tiny_model_dir)
    a = ort.Session(f32).run(ids, np.ones_like(ids), types)[0]
    b = ort.Session(i8).run(ids, np.ones_like(ids), types)[0]
    assert a.shape == b.shape and np.abs(a - b).max() < 0.5


def test_what_cannot_be_exported_is_refused_with_the_way_out(tmp_path: Path, tiny_model_dir: Path) -> None:
    assert ort.supports(tiny_model_dir) and not ort.supports(tmp_path)
    with pytest.raises(ValueError, match="backend='transformers'"):
        ort.exported(tmp_path, "qa")
    with pytest.raises(ValueError, match="head"):
        ort.exported(tiny_model_dir, "lm")
    with pytest.raises(ValueError, match="precision"):
        ort.exported(tiny_model_dir, "qa", "float16")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}', encoding="utf-8")
    with pytest.raises(ValueError, match="could not export"):
        ort.exported(broken, "qa")


def test_threads_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ort.THREADS_ENV, "1")
    assert ort.threads() == 1
    monkeypatch.setenv(ort.THREADS_ENV, "many")
    assert ort.threads() == 0


def test_answering_imports_neither_torch_nor_transformers(tiny_model_dir: Path) -> None:
    ort.exported(tiny_model_dir, "qa")  # the one-time export happens here, in the test process
    code = ("import sys\nfrom qa.reader.read import Reader\nfrom qa.schema import Passage\n"
            "t = 'The keeper, Ann Tullis, kept a log.'\n"
            f"r = Reader(model={str(tiny_model_dir)!r}, threshold=0.0)\n"
            "p = Passage(id='p', source='s', start=0, end=len(t), text=t)\n"
            "print(r.read('Who kept the log?', [p])[0].text)\n"
            "print('torch' in sys.modules, 'transformers' in sys.modules, r.engine)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "False False onnx"
