"""How notebooks show conversations: plain-text transcripts and HTML chats in which turns
without loss are greyed out and the revision signal stands out."""

from __future__ import annotations

import html
import textwrap

from .llm.base import Message

_ROLE_COLOURS = {"user": "#eef3fb", "assistant": "#eefbf0", "system": "#f5f5f5"}


def transcript(messages: list[Message], width: int = 100, max_chars: int = 600) -> str:
    """A readable plain-text transcript; long observations are shortened in the middle."""
    lines = []
    for message in messages:
        content = message["content"]
        if len(content) > max_chars:
            content = content[: max_chars // 2] + "\n[...]\n" + content[-max_chars // 2:]
        label = {"user": "ENV  ", "assistant": "AGENT", "system": "SYS  "}.get(message["role"], message["role"])
        if message.get("loss") is False and message["role"] == "assistant":
            label += " (no loss)"
        body = "\n".join(
            textwrap.fill(line, width=width, subsequent_indent="      ") if line else "" for line in content.splitlines()
        )
        lines.append(f"{label}: {body}")
    return "\n".join(lines)


def chat_html(messages: list[Message], highlight: str | None = None, max_chars: int = 800) -> str:
    """HTML for a chat. Assistant turns with loss=False are grey and struck through in the
    legend sense (not trained on); a turn containing `highlight` (the revision signal) is
    outlined in orange."""
    blocks = []
    for message in messages:
        role = message["role"]
        content = message["content"]
        if len(content) > max_chars:
            content = content[: max_chars // 2] + "\n[...]\n" + content[-max_chars // 2:]
        trained = role == "assistant" and message.get("loss", True)
        style = [f"background:{_ROLE_COLOURS.get(role, '#fff')}", "padding:4px 8px", "margin:3px 0",
                 "border-radius:4px", "white-space:pre-wrap", "font-family:monospace", "font-size:12px"]
        if role == "assistant" and not trained:
            style += ["color:#999", "background:#f4f4f4"]
        if highlight and highlight in message["content"]:
            style.append("border:2px solid #f28e2b")
        tag = f"{role}{' (trained)' if trained else ''}"
        blocks.append(f'<div style="{";".join(style)}"><b>{html.escape(tag)}</b>: {html.escape(content)}</div>')
    legend = ('<div style="font-size:11px;color:#555">grey assistant turns carry no loss; '
              "the orange box is the revision signal</div>")
    return legend + "".join(blocks)
