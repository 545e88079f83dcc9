"""The product catalogue: the real WebShop files when present, else a seeded synthetic one.

Both modes go through the same normaliser (`normalize_products`), which mirrors the original
`load_products` (princeton-nlp/WebShop, web_agent_site/engine/engine.py): Title = name,
Description = full_description, BulletPoints = small_description as a list, pricing parsed
from "$a" / "$a - $b" strings (missing -> $100.0), option groups lower-cased with "/" shown as
" | ", Attributes from the instruction file (else ["DUMMY_ATTR"]), query lower-cased and
stripped, asins that are "nan", longer than 10 characters or repeated are skipped.

Real files (never shipped: research-only, Google-Drive download), in `WEBSHOP_DATA_DIR`:
`items_shuffle_1000.json` (products), `items_ins_v2_1000.json` (per-asin attributes and a
synthetic instruction), optional `items_human_ins.json` (per-asin human instructions).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import string
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .wordlists import (BRANDS, DESCRIPTION_TEMPLATES, FEATURE_TEMPLATES, INSTRUCTION_TEMPLATES,
                        PRODUCT_TYPES, ProductType)

PRODUCTS_FILE = "items_shuffle_1000.json"
ATTRIBUTES_FILE = "items_ins_v2_1000.json"
HUMAN_INSTRUCTIONS_FILE = "items_human_ins.json"
DATA_DIR_ENV = "WEBSHOP_DATA_DIR"


@dataclass
class Catalogue:
    """Normalised products plus where they came from."""

    products: list[dict[str, Any]]
    data_mode: str  # "real" or "synthetic"
    source: str  # directory of the real files, or "synthetic(seed=..., per_type=...)"
    human_instructions: bool  # real mode with items_human_ins.json present
    by_asin: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_asin = {p["asin"]: p for p in self.products}


# --------------------------------------------------------------------------- normalisation

def _parse_pricing(pricing: Any, asin: str) -> tuple[list[float], str]:
    if not pricing:
        return [100.0], "$100.0"
    if isinstance(pricing, list):  # already normalised
        values = [float(x) for x in pricing][:2]
    else:
        values = []
        for part in str(pricing).split("$")[1:]:
            digits = re.sub(r"[^\d.]", "", part)
            try:
                values.append(float(Decimal(digits)))
            except InvalidOperation:
                continue
        if not values:
            return [100.0], "$100.0"
        values = values[:2]
    tag = f"${values[0]}" if len(values) == 1 else f"${values[0]} to ${values[1]}"
    return values, tag


def normalize_products(raw_products: list[dict[str, Any]], attributes: dict[str, Any],
                       human: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Raw WebShop products -> the normalised dicts the engine uses (see module docstring)."""
    products: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_products):
        asin = str(raw.get("asin", "nan"))
        if asin == "nan" or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        try:
            bullets = raw.get("small_description") or []
            pricing, price_tag = _parse_pricing(raw.get("pricing"), asin)
            options: dict[str, list[str]] = {}
            for option_name, contents in (raw.get("customization_options") or {}).items():
                if contents is None:
                    continue
                options[option_name.lower()] = [
                    c["value"].strip().replace("/", " | ").lower() for c in contents]
            record = attributes.get(asin) or {}
            product = {
                "asin": asin,
                "category": raw["category"],
                "query": str(raw["query"]).lower().strip(),
                "product_category": raw.get("product_category") or "",
                "name": raw["name"],
                "Title": raw["name"],
                "Description": raw.get("full_description") or "",
                "BulletPoints": bullets if isinstance(bullets, list) else [bullets],
                "Reviews": [],
                "Rating": "N.A.",
                "pricing": pricing,
                "Price": price_tag,
                "options": options,
                "Attributes": record.get("attributes") or ["DUMMY_ATTR"],
                "instruction_text": record.get("instruction"),
                "instruction_attributes": record.get("instruction_attributes"),
            }
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{PRODUCTS_FILE}: product #{index} (asin {asin!r}) does not have the "
                             f"WebShop schema ({type(exc).__name__}: {exc}); expected keys asin, "
                             "category, query, product_category, name, full_description, "
                             "small_description, pricing, customization_options") from exc
        if human is not None and asin in human:
            product["instructions"] = human[asin]
        products.append(product)
    return products


def _read_json(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def load_real(data_dir: str | os.PathLike[str]) -> Catalogue:
    """Load the real WebShop files from `data_dir` (see module docstring for the names)."""
    root = Path(data_dir)
    missing = [name for name in (PRODUCTS_FILE, ATTRIBUTES_FILE) if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{root}: missing {', '.join(missing)}; a real-data WebShop needs "
                                f"{PRODUCTS_FILE} and {ATTRIBUTES_FILE} (and optionally "
                                f"{HUMAN_INSTRUCTIONS_FILE}) from the original WebShop download")
    raw = _read_json(root / PRODUCTS_FILE)
    attributes = _read_json(root / ATTRIBUTES_FILE)
    if not isinstance(raw, list):
        raise ValueError(f"{root / PRODUCTS_FILE}: expected a JSON list of products, got {type(raw).__name__}")
    if not isinstance(attributes, dict):
        raise ValueError(f"{root / ATTRIBUTES_FILE}: expected a JSON object keyed by asin, "
                         f"got {type(attributes).__name__}")
    human_path = root / HUMAN_INSTRUCTIONS_FILE
    human = _read_json(human_path) if human_path.is_file() else None
    products = normalize_products(raw, attributes, human)
    return Catalogue(products, "real", str(root), human is not None)


# --------------------------------------------------------------------------- synthetic

def _asin(rng: random.Random, taken: set[str]) -> str:
    alphabet = string.ascii_uppercase + string.digits
    while True:
        asin = "B0" + "".join(rng.choice(alphabet) for _ in range(8))
        if asin not in taken:
            taken.add(asin)
            return asin


def _price_text(rng: random.Random, low: float, high: float) -> str:
    base = round(rng.uniform(low, high)) - 0.01
    if rng.random() < 0.25:  # a price range, as many real listings have
        return f"${base:.2f} - ${base + rng.choice((3, 5, 8)):.2f}"
    return f"${base:.2f}"


def _one_product(rng: random.Random, ptype: ProductType, brand: str, attrs: tuple[str, ...],
                 taken: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    a1, a2, a3 = attrs
    title = f"{brand} {a1.title()} {a2.title()} {ptype.noun}"
    noun = ptype.noun.lower()
    groups: list[tuple[str, tuple[str, ...]]] = []
    n_groups = rng.choice((0, 1, 1, 2)) if len(ptype.options) > 1 else rng.choice((0, 1, 1))
    for name, pool in ptype.options[:n_groups]:
        k = min(len(pool), rng.choice((2, 3)))
        groups.append((name, tuple(sorted(rng.sample(pool, k), key=pool.index))))
    raw = {
        "asin": _asin(rng, taken),
        "category": ptype.category,
        "query": ptype.query,
        "product_category": ptype.product_category,
        "name": title,
        "full_description": rng.choice(DESCRIPTION_TEMPLATES).format(
            brand=brand, noun=noun, a1=a1, a2=a2, a3=a3),
        "small_description": [rng.choice(FEATURE_TEMPLATES).format(A=a.upper()) for a in (a1, a2, a3)],
        "pricing": _price_text(rng, *ptype.price),
        "customization_options": {name.title(): [{"value": v, "image": None} for v in values]
                                  for name, values in groups} or None,
        "images": [""],
    }
    art = "a " if ptype.article else ""
    instruction = rng.choice(INSTRUCTION_TEMPLATES).format(art=art, a1=a1, a2=a2, query=ptype.query)
    instruction = re.sub(r"\ba (?=[aeiou]|hdmi)", "an ", instruction)
    record = {"attributes": [a1, a2, a3], "instruction": instruction,
              "instruction_attributes": [a1, a2]}
    return raw, record


def generate_raw(seed: int = 0, per_type: int = 10) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A synthetic catalogue in the raw WebShop schema: (items_shuffle list, items_ins dict).

    Per product type, `per_type` products with distinct (title attribute pair); a third
    attribute only in the bullet points. Pure function of (seed, per_type)."""
    rng = random.Random(seed)
    taken: set[str] = set()
    raw_products: list[dict[str, Any]] = []
    records: dict[str, Any] = {}
    for type_index, ptype in enumerate(PRODUCT_TYPES):
        pairs = list(itertools.permutations(ptype.attributes, 2))
        rng.shuffle(pairs)
        used: set[frozenset[str]] = set()
        chosen: list[tuple[str, str]] = []
        for pair in pairs:
            if frozenset(pair) not in used:
                used.add(frozenset(pair))
                chosen.append(pair)
            if len(chosen) == per_type:
                break
        for a1, a2 in chosen:
            a3 = rng.choice([a for a in ptype.attributes if a not in (a1, a2)])
            brand = BRANDS[2 * type_index + rng.randrange(2)]
            raw, record = _one_product(rng, ptype, brand, (a1, a2, a3), taken)
            raw_products.append(raw)
            records[raw["asin"]] = record
    rng.shuffle(raw_products)  # "items_shuffle": the real file is shuffled too
    return raw_products, records


_SYNTHETIC_CACHE: dict[tuple[int, int], Catalogue] = {}


def synthetic_catalogue(seed: int = 0, per_type: int = 10) -> Catalogue:
    """The normalised synthetic catalogue (cached in memory per (seed, per_type))."""
    key = (seed, per_type)
    if key not in _SYNTHETIC_CACHE:
        raw, records = generate_raw(seed, per_type)
        products = normalize_products(raw, records, None)
        _SYNTHETIC_CACHE[key] = Catalogue(products, "synthetic",
                                          f"synthetic(seed={seed}, per_type={per_type})", False)
    return _SYNTHETIC_CACHE[key]


def load_catalogue(data_dir: str | os.PathLike[str] | None = None, seed: int = 0,
                   per_type: int = 10) -> Catalogue:
    """Real data when `data_dir` (or $WEBSHOP_DATA_DIR) is given, else the synthetic catalogue."""
    data_dir = data_dir if data_dir is not None else (os.environ.get(DATA_DIR_ENV) or None)
    if data_dir is not None:
        return load_real(data_dir)
    return synthetic_catalogue(seed, per_type)
