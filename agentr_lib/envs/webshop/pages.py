"""WebShop pages as text, in the original 'simple' text mode: visible strings joined by
" [SEP] ". Long descriptions are cut at `max_chars` (a tiny model has a small context)."""

from __future__ import annotations

from typing import Any

PRODUCT_WINDOW = 10
SEP = " [SEP] "
BACK_TO_SEARCH = "Back to Search"
NEXT_PAGE = "Next >"
PREV_PAGE = "< Prev"
BUY_NOW = "Buy Now"
SUB_PAGES = ("Description", "Features", "Reviews")


def _cap(text: str, max_chars: int | None) -> str:
    text = " ".join(text.split())
    if max_chars is not None and len(text) > max_chars:
        return text[:max_chars].rstrip() + " ..."
    return text


def search_page(instruction: str) -> str:
    return SEP.join(["WebShop", "Instruction:", instruction, "Search"])


def results_page(instruction: str, products: list[dict[str, Any]], page: int, total: int) -> str:
    parts = ["Instruction:", instruction, BACK_TO_SEARCH, f"Page {page} (Total results: {total})"]
    if page > 1:
        parts.append(PREV_PAGE)
    if page * PRODUCT_WINDOW < total:
        parts.append(NEXT_PAGE)
    for product in products:
        parts += [product["asin"], product["Title"], product["Price"]]
    return SEP.join(parts)


def item_page(instruction: str, product: dict[str, Any]) -> str:
    parts = ["Instruction:", instruction, BACK_TO_SEARCH, PREV_PAGE]
    for name, values in product["options"].items():
        parts += [name, *values]
    parts += [product["Title"], f"Price: {product['Price']}", f"Rating: {product['Rating']}",
              *SUB_PAGES, BUY_NOW]
    return SEP.join(parts)


def sub_page(instruction: str, product: dict[str, Any], which: str, max_chars: int | None) -> str:
    parts = ["Instruction:", instruction, BACK_TO_SEARCH, PREV_PAGE]
    if which == "description":
        parts.append(_cap(product["Description"], max_chars))
    elif which == "features":
        parts += [_cap(b, max_chars) for b in product["BulletPoints"] if b]
    else:  # reviews
        for review in product["Reviews"]:
            parts += [str(review.get("title", "")), str(review.get("score", "")),
                      _cap(str(review.get("body", "")), max_chars)]
    return SEP.join(parts)


def done_page(asin: str, reward: float) -> str:
    return SEP.join(["Thank you for shopping with us!", "Purchased", asin,
                     "Your score (min 0.0, max 1.0)", f"{reward:.2f}"])
