"""Goals: what the shopper is asked to buy, built as the original `get_goals` does.

Synthetic goals (from the per-asin instruction): one goal per product x option combination,
instruction text = instruction + " with <option>: <value>, and ..." + ", and price lower than
<ceiling> dollars". Human goals (real mode with items_human_ins.json): one goal per human
instruction, options as the annotator listed them. The price ceiling is 2 of the 4 multiples
of $10 above the product's price, the larger one (original rule); product prices of price
ranges are drawn uniformly inside the range. Everything is seeded (the original used the
global `random`), and the goal list is shuffled with a fixed seed.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

PRICE_STEPS = [10.0 * i for i in range(1, 100)]
GOAL_SHUFFLE_SEED = 233  # the original's random.seed(233) before shuffling goals
NO_CEILING = 1_000_000.0


def product_prices(products: list[dict[str, Any]], seed: int) -> dict[str, float]:
    """The price each product sells at (a draw inside its range when it has one)."""
    rng = random.Random(f"prices:{seed}")
    prices: dict[str, float] = {}
    for product in products:
        pricing = product["pricing"]
        prices[product["asin"]] = float(pricing[0]) if len(pricing) == 1 else rng.uniform(*pricing[:2])
    return prices


def _ceiling(rng: random.Random, price: float) -> tuple[float, str]:
    steps = [p for p in PRICE_STEPS if p > price][:4]
    if len(steps) < 2:
        return NO_CEILING, ""
    _, upper = sorted(rng.sample(steps, 2))
    return upper, f", and price lower than {upper:.2f} dollars"


def _base(product: dict[str, Any]) -> dict[str, Any]:
    return {"asin": product["asin"], "category": product["category"], "query": product["query"],
            "name": product["name"], "product_category": product["product_category"]}


def synthetic_goals(products: list[dict[str, Any]], prices: dict[str, float], seed: int) -> list[dict[str, Any]]:
    """Instruction x option combination x price ceiling, per product with an instruction."""
    rng = random.Random(f"ceilings:{seed}")
    goals: list[dict[str, Any]] = []
    for product in products:
        if not product.get("instruction_text") or not product.get("instruction_attributes"):
            continue
        upper, price_text = _ceiling(rng, prices[product["asin"]])
        names = sorted(product["options"])
        for combination in itertools.product(*(product["options"][n] for n in names)):
            goal_options = dict(zip(names, combination))
            option_text = ", and ".join(f"{k}: {v}" for k, v in goal_options.items())
            option_text = f" with {option_text}" if option_text else ""
            goals.append(dict(_base(product),
                              instruction_text=f"{product['instruction_text']}{option_text}{price_text}",
                              attributes=list(product["instruction_attributes"]),
                              price_upper=upper, goal_options=goal_options))
    return goals


def human_goals(products: list[dict[str, Any]], prices: dict[str, float], seed: int) -> list[dict[str, Any]]:
    """One goal per human instruction (goals without attributes are skipped, as originally)."""
    rng = random.Random(f"ceilings:{seed}")
    goals: list[dict[str, Any]] = []
    for product in products:
        for entry in product.get("instructions") or []:
            attributes = entry.get("instruction_attributes") or []
            if not attributes:
                continue
            upper, price_text = _ceiling(rng, prices[product["asin"]])
            goals.append(dict(_base(product),
                              instruction_text=entry["instruction"].strip(".") + price_text,
                              attributes=list(attributes), price_upper=upper,
                              goal_options=entry.get("instruction_options") or []))
    return goals


def build_goals(products: list[dict[str, Any]], prices: dict[str, float], human: bool,
                seed: int) -> list[dict[str, Any]]:
    """All goals, shuffled with a fixed seed (task id = index in this list)."""
    goals = human_goals(products, prices, seed) if human else synthetic_goals(products, prices, seed)
    random.Random(GOAL_SHUFFLE_SEED + seed).shuffle(goals)
    return goals
