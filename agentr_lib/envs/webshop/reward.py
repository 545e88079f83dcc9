"""The WebShop purchase reward, re-implemented from the paper's formula (Yao et al., 2022):

    reward = r_type * (matched attributes + matched options + [price <= ceiling])
                    / (n_goal_attributes + n_goal_options + 1)

Matching follows the original: attributes by fuzzy token-set ratio > 85 against the product's
attribute list, else by substring of the title / bullet points / description; options by
exact match for `size`, fuzzy match otherwise, after colour normalisation. r_type comes from
query equality, product-category overlap (>= 2 shared levels) and the share of the goal
title's nouns found in the purchased title's nouns.

Noun tagger: spaCy (`en_core_web_sm`/`_lg`) when installed, else a documented heuristic
(`heuristic_nouns`). `TAGGER` says which one ran, so every result can record it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from rapidfuzz import fuzz

FUZZY_THRESHOLD = 85
EXACT_MATCH_OPTIONS = ("size",)

# Base colour names, longest first so "navy blue" normalises to "navy" before "blue"
# (the original maps a colour string to the first known colour it contains).
COLOR_NAMES: tuple[str, ...] = tuple(sorted((
    "beige", "black", "blue", "bronze", "brown", "burgundy", "charcoal", "coral", "cream",
    "gold", "gray", "green", "grey", "ivory", "khaki", "lavender", "maroon", "mint", "navy",
    "olive", "orange", "pink", "purple", "red", "rose", "silver", "tan", "teal", "turquoise",
    "white", "yellow",
), key=lambda c: (-len(c), c)))

_STOPWORDS = frozenset("""
a an the and or of for with without in on at to by from as is are be it its this that these
those your you our my his her their x per & - up off over under into out new set pack count
""".split())
# Words the heuristic treats as modifiers, not nouns (colours, sizes, common adjectives).
_ADJECTIVES = frozenset(COLOR_NAMES) | frozenset("""
small medium large extra big mini long short wide slim soft hard light dark heavy natural
organic fresh premium classic modern vintage original professional portable compact durable
quick easy high low non free anti ultra super sweet hot cold warm cool dry wet real pure
daily gentle deep thin thick full half double single multi men women mens womens kids unisex
adjustable breathable waterproof wireless rechargeable lightweight comfortable cute fashion
casual sugar gluten dairy oil fragrance
""".split())
_ADJ_SUFFIXES = ("able", "ible", "ful", "less", "ous", "ive", "ish", "ic", "proof")


def heuristic_nouns(text: str) -> list[str]:
    """Approximate the nouns of a product title without a tagger.

    Rule (documented so results can be compared across machines): lower-case alphabetic
    tokens of length >= 2, minus a small stop-word list, minus a closed list of modifiers
    (colours, sizes, common adjectives) and minus words ending in an adjectival suffix
    (-able, -ible, -ful, -less, -ous, -ive, -ish, -ic, -proof). Numbers and units with
    digits are dropped. Order of first appearance, duplicates removed."""
    nouns: list[str] = []
    for token in re.findall(r"[a-z]+", text.lower()):
        if len(token) < 2 or token in _STOPWORDS or token in _ADJECTIVES:
            continue
        if len(token) > 4 and token.endswith(_ADJ_SUFFIXES):
            continue
        if token not in nouns:
            nouns.append(token)
    return nouns


def _load_spacy() -> tuple[str, Callable[[str], list[str]]] | None:
    try:
        import spacy  # type: ignore[import-not-found]
    except ImportError:
        return None
    for model in ("en_core_web_lg", "en_core_web_sm"):
        try:
            nlp = spacy.load(model)
        except OSError:
            continue

        def spacy_nouns(text: str, _nlp: Any = nlp) -> list[str]:
            return [t.text.lower() for t in _nlp(text) if t.pos_ in ("NOUN", "PROPN")]

        return f"spacy:{model}", spacy_nouns
    return None


_SPACY = _load_spacy()
#: Which noun tagger ran: "spacy:<model>" or "heuristic".
TAGGER: str = _SPACY[0] if _SPACY else "heuristic"


@lru_cache(maxsize=8192)
def title_nouns(title: str) -> tuple[str, ...]:
    """Nouns of a title with the active tagger (cached: titles repeat across episodes)."""
    return tuple(_SPACY[1](title) if _SPACY else heuristic_nouns(title))


def normalize_color(value: str) -> str:
    """Map an option value to the first base colour it contains, else leave it unchanged."""
    for color in COLOR_NAMES:
        if color in value:
            return color
    return value


def type_reward(purchased: Mapping[str, Any], goal: Mapping[str, Any]) -> dict[str, Any]:
    """r_type in {0, 0.1, 0.5, 1}: is the purchased product the wanted kind of product?"""
    query_match = purchased["query"] == goal["query"]
    bought_levels = {x.strip() for x in purchased["product_category"].split("›")}
    goal_levels = {x.strip() for x in goal["product_category"].split("›")}
    category_match = len(bought_levels & goal_levels) >= 2
    bought_nouns = set(title_nouns(purchased["name"]))
    wanted_nouns = title_nouns(goal["name"])
    if not wanted_nouns:
        title_score = 0.2
    else:
        title_score = len(bought_nouns & set(wanted_nouns)) / len(set(wanted_nouns))
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return {"r_type": r_type, "query_match": query_match, "category_match": category_match,
            "title_score": title_score}


def _in_text(needle: str, product: Mapping[str, Any]) -> bool:
    return (needle in product["Title"].lower()
            or needle in " ".join(product["BulletPoints"]).lower()
            or needle in product["Description"].lower())


def attribute_matches(purchased: Mapping[str, Any], goal_attributes: Sequence[str]) -> int:
    """How many goal attributes the purchased product has (fuzzy, then in its text)."""
    matches = 0
    for wanted in goal_attributes:
        if any(fuzz.token_set_ratio(have, wanted) > FUZZY_THRESHOLD for have in purchased["Attributes"]):
            matches += 1
        elif _in_text(wanted, purchased):
            matches += 1
    return matches


def option_matches(purchased: Mapping[str, Any], goal_options: Sequence[str],
                   chosen: Mapping[str, str]) -> int:
    """How many of the chosen options match a goal option (exact for size, else fuzzy)."""
    wanted = [normalize_color(o) for o in goal_options]
    matches = 0
    for key in sorted(chosen):
        value = normalize_color(chosen[key])
        if key.lower() in EXACT_MATCH_OPTIONS:
            hit = value in wanted
        else:
            hit = any(fuzz.token_set_ratio(w, value) > FUZZY_THRESHOLD for w in wanted)
        if hit or _in_text(value, purchased):
            matches += 1
    return matches


def get_reward(purchased: Mapping[str, Any], goal: Mapping[str, Any], price: float,
               chosen_options: Mapping[str, str]) -> tuple[float, dict[str, Any]]:
    """The reward of buying `purchased` at `price` with `chosen_options` for `goal`,
    plus its components (for logs and tests)."""
    type_info = type_reward(purchased, goal)
    goal_options = goal["goal_options"]
    goal_option_values = list(goal_options.values()) if isinstance(goal_options, Mapping) else list(goal_options)
    n_attr = attribute_matches(purchased, goal["attributes"])
    n_opt = option_matches(purchased, goal_option_values, chosen_options)
    price_ok = price <= goal["price_upper"]
    denominator = len(goal["attributes"]) + len(goal_option_values) + 1
    reward = type_info["r_type"] * (n_attr + n_opt + int(price_ok)) / denominator
    info = dict(type_info, n_attr_matches=n_attr, n_option_matches=n_opt, price_ok=price_ok,
                n_goal_attributes=len(goal["attributes"]), n_goal_options=len(goal_option_values),
                tagger=TAGGER)
    return reward, info
