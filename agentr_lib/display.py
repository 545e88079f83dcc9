"""How notebooks show conversations: plain-text transcripts and HTML chats in which turns
without loss are greyed out and the revision signal stands out."""

from __future__ import annotations

import html
import textwrap

from .llm.base import Message

_ROLE_COLOURS = {"user": "#eef3fb", "assistant": "#eefbf0", "system": "#f5f5f5"}


def shorten_middle(content: str, max_chars: int) -> str:
    """`content` with its middle replaced by "[... N lines ...]" (or "[...]") so that about
    `max_chars` characters remain; cuts fall on line breaks where there are any, else on
    spaces, never inside a word."""
    if len(content) <= max_chars:
        return content
    half = max_chars // 2
    head, tail = content[:half], content[len(content) - half:]
    head_cut = max(head.rfind("\n"), 0) or max(head.rfind(" "), 0) or half
    tail_break = tail.find("\n")
    tail_start = tail_break + 1 if tail_break != -1 else (tail.find(" ") + 1 if " " in tail else 0)
    head, tail = content[:head_cut], tail[tail_start:]
    hidden = content[len(head):len(content) - len(tail)]
    lines = hidden.strip("\n").count("\n") + 1
    marker = f"[... {lines} lines ...]" if "\n" in hidden.strip("\n") else "[...]"
    return f"{head.rstrip()}\n{marker}\n{tail.lstrip()}"


def transcript(messages: list[Message], width: int = 100, max_chars: int = 600) -> str:
    """A readable plain-text transcript; long observations are shortened in the middle (at
    line breaks, never inside a word)."""
    lines = []
    for message in messages:
        content = shorten_middle(message["content"], max_chars)
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
        content = shorten_middle(message["content"], max_chars)
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


def draw_tree(tree, ax=None, max_nodes: int = 400):
    """Draw an MCTS tree: x = leaf order, y = depth (root on top, integer ticks); nodes
    coloured by mean value W/N (red 0 .. green 1), terminal leaves annotated with their final
    reward. Returns the axes."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4))
    positions: dict[int, tuple[float, int]] = {}
    next_x = [0.0]

    def place(node) -> float:
        if node.id >= max_nodes:
            return next_x[0]
        kids = [child for child in node.children if child.id < max_nodes]
        if not kids:
            x = next_x[0]
            next_x[0] += 1.0
        else:
            x = sum(place(child) for child in kids) / len(kids)
        positions[node.id] = (x, node.depth)
        return x

    place(tree.root)
    cmap = plt.get_cmap("RdYlGn")
    for node in tree.nodes:
        if node.id in positions and node.parent is not None and node.parent.id in positions:
            (x0, y0), (x1, y1) = positions[node.parent.id], positions[node.id]
            ax.plot([x0, x1], [y0, y1], color="#bbb", lw=0.6, zorder=1)
    drawn = [node for node in tree.nodes if node.id in positions]
    ax.scatter([positions[n.id][0] for n in drawn], [positions[n.id][1] for n in drawn],
               c=[n.value for n in drawn], cmap=cmap, vmin=0, vmax=1, s=36, edgecolors="k", linewidths=0.3, zorder=2)
    leaves = [node for node in drawn if node.terminal and not node.children]
    for node in leaves:
        x, y = positions[node.id]
        ax.annotate(f"{node.score:.2g}", (x, y), textcoords="offset points", xytext=(0, -11),
                    ha="center", va="top", fontsize=8)
    deepest = max((positions[n.id][1] for n in drawn), default=0)
    ax.set_ylim(deepest + 0.8, -0.4)  # root on top; room under the deepest leaves for their labels
    ax.set_xlim(-0.6, max(next_x[0] - 0.4, 0.6))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("depth (actions from the root)")
    ax.set_xticks([])
    ax.set_xlabel(f"{len(leaves)} terminal leaves (numbers: final reward)")
    ax.set_title(f"{tree.env} task {tree.task_id}: {len(tree.nodes)} nodes, colour = mean value W/N", fontsize=9)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
    ax.figure.colorbar(sm, ax=ax, fraction=0.03, label="mean value W/N")
    return ax


def token_mask_html(tokenizer, input_ids: list[int], labels: list[int], max_tokens: int = 600) -> str:
    """Decode a tokenised example token by token: trained tokens (label != -100) on green,
    masked ones grey -- the side-by-side check that the loss lands where it should."""
    spans = []
    for token_id, label in list(zip(input_ids, labels))[:max_tokens]:
        text = html.escape(tokenizer.decode([token_id]))
        style = "background:#c7f0c2" if label != -100 else "color:#999"
        spans.append(f'<span style="{style}">{text}</span>')
    more = f"<i> ... {len(input_ids) - max_tokens} more tokens</i>" if len(input_ids) > max_tokens else ""
    return ('<div style="font-family:monospace;font-size:11px;white-space:pre-wrap">'
            '<b>green = trained (label = token id), grey = masked (label = -100)</b>\n' + "".join(spans) + more + "</div>")
