"""Tests for qa.index.vector_cache: vectors saved shard by shard, read back, damaged shards skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEmbedder

from qa.index.vector_cache import VectorCache, text_key

TEXTS = [f"Sentence number {i} about a topic." for i in range(10)]


def test_get_embeds_once_saves_shards_and_a_new_cache_reads_them(tmp_path: Path) -> None:
    emb = FakeEmbedder()
    cache = VectorCache(tmp_path, emb, shard=4)
    first = cache.get(TEXTS + TEXTS[:3])
    assert emb.encoded == 10 and cache.embedded == 10
    assert len(list(cache.folder.glob("shard-*.npy"))) == 3  # 4 + 4 + 2 texts
    again = VectorCache(tmp_path, FakeEmbedder())
    assert again.load() == 10
    np.testing.assert_array_equal(again.get(TEXTS + TEXTS[:3]), first)
    assert again.embedded == 0
    assert set(again.vectors) == {text_key(t) for t in TEXTS}


def test_damaged_or_half_written_shards_are_skipped(tmp_path: Path) -> None:
    cache = VectorCache(tmp_path, FakeEmbedder(), shard=5)
    cache.get(TEXTS)
    shards = sorted(cache.folder.glob("shard-*.json"))
    shards[0].write_text("[broken")
    shards[1].with_suffix(".npy").unlink()  # killed between the two writes
    (cache.folder / ".shard-1.npy").write_bytes(b"half")  # a temporary file is never read
    assert VectorCache(tmp_path, FakeEmbedder()).load() == 0


def test_memory_only_cache_writes_nothing_and_remove_cleans_up(tmp_path: Path) -> None:
    memory = VectorCache(None, FakeEmbedder())
    assert memory.get(TEXTS).shape == (10, 256) and memory.load() == 0
    memory.remove()
    disk = VectorCache(tmp_path / "partial", FakeEmbedder())
    disk.get(TEXTS)
    disk.remove()
    assert not (tmp_path / "partial").exists()


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shard"):
        VectorCache(tmp_path, FakeEmbedder(), shard=0)
