"""Conversation evaluation: qa-conversations-1 files asked turn by turn with the system's own history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FakeEmbedder, FakeReader

from qa.chat.chatbot import Chatbot
from qa.cli import main
from qa.lab.conversations import (
    conversation_summary,
    evaluate_conversations,
    is_conversations_file,
    load_conversations,
)

DOC = (
    "Anna Berg designed the Lund bridge in 1990. She studied engineering in Oslo.\n\n"
    "The bridge is 300 metres long. It cost four million crowns."
)


def _write(tmp_path: Path, conversations: list[dict], source: str = "doc.txt") -> Path:
    (tmp_path / "doc.txt").write_text(DOC, encoding="utf-8")
    path = tmp_path / "conv.json"
    path.write_text(json.dumps({"version": "qa-conversations-1", "source": source,
                                "conversations": conversations}), encoding="utf-8")
    return path


CONVERSATIONS = [
    {"id": "a", "turns": [
        {"question": "Who designed the Lund bridge?", "answers": ["Anna Berg"]},
        {"question": "Where did she study engineering?", "answers": ["Oslo", "in Oslo"]},
    ]},
    {"id": "b", "turns": [
        {"question": "How long is the bridge?", "answers": ["300 metres"]},
        {"question": "Who painted it?", "answers": []},
    ]},
]


def test_summary_separates_first_turns_from_follow_ups() -> None:
    rows = [(True, ("Anna Berg",), "Anna Berg", 10.0), (False, ("Oslo",), "in Oslo", 12.0),
            (True, ("300 metres",), "It is 300 metres long", 10.0), (False, (), None, 14.0)]
    out = conversation_summary(2, rows)
    assert out["conversations"] == 2 and out["turns"] == 4
    assert out["first_turn_f1"] == pytest.approx((100 + 400 / 7) / 2, abs=0.01)  # 2 of 5 words right
    assert out["followup_f1"] == pytest.approx((200 / 3 + 100) / 2, abs=0.01)  # abstaining is right
    assert out["exact_match"] == 50.0
    assert out["no_answer_accuracy"] == 100.0 and out["false_abstentions"] == 0.0
    assert out["latency_ms_p50_first"] == 10.0 and out["latency_ms_p50_followup"] == 13.0


def test_each_turn_is_asked_with_the_systems_own_earlier_answers(tmp_path: Path) -> None:
    path = _write(tmp_path, CONVERSATIONS)
    seen: list[tuple[str, list]] = []

    class Recording(Chatbot):
        def ask(self, question, history=None):
            seen.append((question, list(history or [])))
            return super().ask(question, history=history)

    out = evaluate_conversations(path, reader=FakeReader(), progress=False,
                                 chatbot_factory=lambda **kw: Recording(embedder=FakeEmbedder(), **kw))
    assert out["conversations"] == 2 and out["turns"] == 4
    assert set(out) >= {"first_turn_f1", "followup_f1", "exact_match", "f1", "no_answer_accuracy"}
    assert [q for q, _ in seen] == [t["question"] for c in CONVERSATIONS for t in c["turns"]]
    first_answer = seen[1][1][0]  # the follow-up got the system's answer to turn 1, not the gold one
    assert first_answer.question == "Who designed the Lund bridge?"
    assert first_answer.text == "Anna Berg designed the Lund bridge in 1990."
    assert seen[2][1] == []  # a new conversation starts with no history


def test_loader_finds_the_source_beside_the_file_and_explains_bad_files(tmp_path: Path) -> None:
    path = _write(tmp_path, CONVERSATIONS)
    source, conversations = load_conversations(path)
    assert source == tmp_path / "doc.txt" and [c.id for c in conversations] == ["a", "b"]
    assert conversations[1].turns[1] == ("Who painted it?", ())
    assert is_conversations_file(path)
    squad = tmp_path / "squad.json"
    squad.write_text(json.dumps({"version": "1.1", "data": []}), encoding="utf-8")
    assert not is_conversations_file(squad) and not is_conversations_file(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="not a qa-conversations-1 file"):
        load_conversations(squad)
    with pytest.raises(ValueError, match="was not found"):
        load_conversations(_write(tmp_path, CONVERSATIONS, source="nowhere.txt"))
    with pytest.raises(ValueError, match="no conversations"):
        load_conversations(_write(tmp_path, []))
    with pytest.raises(ValueError, match="turns"):
        load_conversations(_write(tmp_path, [{"id": "x"}]))


@pytest.mark.slow
def test_qa_eval_reads_a_conversations_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real pipeline: qa eval FILE --json prints the conversation metrics."""
    path = _write(tmp_path, CONVERSATIONS)
    assert main(["eval", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["conversations"] == 2 and out["turns"] == 4
    assert out["first_turn_f1"] is not None and out["followup_f1"] is not None
    assert main(["eval", str(path), "--reader-only"]) == 2  # a clear error, not a traceback
    assert "--reader-only does not apply" in capsys.readouterr().err
