"""The WebShop purchase reward, re-implemented from the original code (Yao et al., 2022,
`web_agent_site/engine/goal.py` and `normalize.py` of princeton-nlp/WebShop):

    reward = r_type * (matched attributes + matched goal options + [price <= ceiling])
                    / (n_goal_attributes + n_goal_options + 1)

- Fuzzy match (`fuzzy_score`): `thefuzz.fuzz.token_set_ratio`, i.e. both strings are turned
  into text, stripped of code points 128-255, lower-cased and freed of punctuation (rapidfuzz's
  `default_process`), scored by token-set ratio and rounded to an integer; a match is a score
  > 85. A string whose words are all among the other's scores 100 ("large" vs "x-large").
- Attributes: each goal attribute counts once if it fuzzy-matches one of the product's
  attributes, else if it is a substring of the lower-cased title, bullet points or
  description.
- Options: both the goal's option values and the chosen option values are colour-normalised
  (`normalize_color`: the first colour of the original's 102-colour `COLOR_SET`, in its
  alphabetical order, that is a case-sensitive substring; otherwise the value unchanged).
  Each *goal* option counts once if any chosen value fuzzy-matches it. Every option (size
  included) is fuzzy-matched, option names are not compared, and the product's text plays no
  part, so extra or unknown chosen options earn nothing and the reward never exceeds 1.
  Synthetic goals hold options as a dict: its values are matched (the original code passes
  the dict's `(name, value)` pairs there, which its processor turns into "name value", so
  the option name joins the words compared; its human-instruction goals are value lists).
- r_type in {0, 0.1, 0.5, 1}: query equality, product-category overlap (>= 2 shared levels)
  and the share of the goal title's nouns found in the purchased title's nouns.

Noun tagger: spaCy (`en_core_web_sm`/`_lg`) when installed, else a documented heuristic
(`heuristic_nouns`; with the dict values above, where we knowingly differ). `TAGGER`
says which one ran, so every result can record it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from rapidfuzz import fuzz
from rapidfuzz.utils import default_process

FUZZY_THRESHOLD = 85  # a match is a rounded score strictly above this

# The original's base colours (normalize.py COLOR_SET), in its order: alphabetical, so the
# first one contained wins ("navy blue" -> "blue", "violet lavender" -> "lavender").
COLOR_SET: tuple[str, ...] = (
    "alabaster", "apricot", "aqua", "ash", "asphalt", "azure", "banana", "beige", "black",
    "blue", "blush", "bordeaux", "bronze", "brown", "burgundy", "camel", "camo", "caramel",
    "champagne", "charcoal", "cheetah", "chestnut", "chocolate", "christmas", "coffee",
    "cognac", "copper", "coral", "cranberry", "cream", "crystal", "dark", "denim", "eggplant",
    "elephant", "espresso", "fuchsia", "gold", "granite", "grape", "graphite", "grass", "gray",
    "green", "grey", "heather", "indigo", "ivory", "ivy", "khaki", "lavender", "lemon",
    "leopard", "light", "lilac", "lime", "magenta", "maroon", "mauve", "merlot", "midnight",
    "mint", "mocha", "multicolor", "mushroom", "mustard", "natural", "navy", "nude", "olive",
    "orange", "peach", "pewter", "pink", "plum", "purple", "rainbow", "red", "rose", "royal",
    "rust", "sand", "sapphire", "seashell", "silver", "skull", "slate", "steel", "stone",
    "stonewash", "sunflower", "tan", "taupe", "teal", "tiger", "turquoise", "violet", "walnut",
    "wheat", "white", "wine", "yellow",
)

# Colour words the heuristic noun tagger treats as modifiers. Deliberately not COLOR_SET:
# that list holds nouns ("coffee", "wine", "steel", "stone") the type reward must keep.
_HEURISTIC_COLORS = (
    "beige", "black", "blue", "bronze", "brown", "burgundy", "charcoal", "coral", "cream",
    "gold", "gray", "green", "grey", "ivory", "khaki", "lavender", "maroon", "mint", "navy",
    "olive", "orange", "pink", "purple", "red", "rose", "silver", "tan", "teal", "turquoise",
    "white", "yellow",
)

_STOPWORDS = frozenset("""
a an the and or of for with without in on at to by from as is are be it its this that these
those your you our my his her their x per & - up off over under into out new set pack count
""".split())
# Words the heuristic treats as modifiers, not nouns (colours, sizes, common adjectives).
_ADJECTIVES = frozenset(_HEURISTIC_COLORS) | frozenset("""
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


# thefuzz's `force_ascii` drops exactly the code points 128-255 before processing.
_DROP_LATIN1 = dict.fromkeys(range(128, 256))


def _fuzz_process(text: Any) -> str:
    return default_process(str(text).translate(_DROP_LATIN1))


def fuzzy_score(a: Any, b: Any) -> int:
    """`thefuzz.fuzz.token_set_ratio(a, b)` with its defaults: Latin-1 dropped, lower-cased,
    punctuation to spaces, token-set ratio, rounded ("Gluten-Free" vs "gluten free": 100)."""
    return int(round(fuzz.token_set_ratio(_fuzz_process(a), _fuzz_process(b))))


def fuzzy_match(a: Any, b: Any) -> bool:
    """The original's match test: rounded token-set ratio > 85."""
    return fuzzy_score(a, b) > FUZZY_THRESHOLD


def normalize_color(value: str) -> str:
    """The first COLOR_SET colour that is a (case-sensitive) substring, else `value` unchanged."""
    for color in COLOR_SET:
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
    wanted_nouns = title_nouns(goal["name"])  # as the tagger lists them (repeats included)
    if not wanted_nouns:
        title_score = 0.2
    else:
        title_score = len(bought_nouns & set(wanted_nouns)) / len(wanted_nouns)
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
        if any(fuzzy_match(have, wanted) for have in purchased["Attributes"]) or _in_text(wanted, purchased):
            matches += 1
    return matches


def option_matches(goal_options: Sequence[str], chosen_options: Sequence[str]) -> int:
    """How many goal options are hit: each goal value counts once if any chosen value
    fuzzy-matches it, both colour-normalised first. Never more than len(goal_options)."""
    chosen = [normalize_color(v) for v in chosen_options]
    return sum(1 for wanted in (normalize_color(o) for o in goal_options)
               if any(fuzzy_match(have, wanted) for have in chosen))


def get_reward(purchased: Mapping[str, Any], goal: Mapping[str, Any], price: float,
               chosen_options: Mapping[str, str]) -> tuple[float, dict[str, Any]]:
    """The reward of buying `purchased` at `price` with `chosen_options` for `goal`,
    plus its components (for logs and tests)."""
    type_info = type_reward(purchased, goal)
    goal_options = goal["goal_options"]
    goal_option_values = list(goal_options.values()) if isinstance(goal_options, Mapping) else list(goal_options)
    n_attr = attribute_matches(purchased, goal["attributes"])
    n_opt = option_matches(goal_option_values, list(chosen_options.values()))
    price_ok = price <= goal["price_upper"]
    denominator = len(goal["attributes"]) + len(goal_option_values) + 1
    reward = type_info["r_type"] * (n_attr + n_opt + int(price_ok)) / denominator
    info = dict(type_info, n_attr_matches=n_attr, n_option_matches=n_opt, price_ok=price_ok,
                n_goal_attributes=len(goal["attributes"]), n_goal_options=len(goal_option_values),
                tagger=TAGGER)
    return reward, info
