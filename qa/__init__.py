"""qa: ask an article and get the exact answer, with the passage it stands in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qa.schema import Answer, Hit, Passage, Span

if TYPE_CHECKING:
    from qa.chat.chatbot import Chatbot

__all__ = ["Answer", "Chatbot", "Hit", "Passage", "Span"]


def __getattr__(name: str) -> Any:
    """Import ``Chatbot`` on first use so that ``import qa`` stays light."""
    if name == "Chatbot":
        from qa.chat.chatbot import Chatbot

        return Chatbot
    raise AttributeError(f"module 'qa' has no attribute {name!r}")
