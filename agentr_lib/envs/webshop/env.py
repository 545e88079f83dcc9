"""WebShopEnv: the text-mode shop behind the common Env protocol.

State machine over five page kinds (search, results, item, sub-page, done); actions
`search[query]` (only on the search page, as in the original) and `click[element]` where the
element is a clickable of the current page (case-insensitive). Anything else is invalid:
the page is returned unchanged with reward 0. `click[Buy Now]` ends the episode with the
original reward formula (reward.py). State is a small dataclass, so snapshot/restore is cheap.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Any

from ..base import ExpertStep
from . import pages
from .catalogue import DATA_DIR_ENV, Catalogue, load_catalogue
from .goals import build_goals, product_prices
from .reward import TAGGER, get_reward, normalize_color
from .search import SearchEngine

INSTRUCTION = """You are web shopping. I will give you instructions about what to do.
Every round I give you an observation of the page (texts joined by [SEP]), and you act with one of:
search[keywords] (only on the page that shows Search) or click[element] (a button, product id or option shown on the page).
Reply as:
Thought: I think ...
Action: click[something]
Example:
Thought: I need white running shoes in size 9 under 50 dollars. I will search for them.
Action: search[white running shoes]
Buy with click[Buy Now] after choosing the options the instruction asks for."""

_ACTION_RE = re.compile(r"^\s*(search|click)\s*\[(.*)\]\s*$", re.IGNORECASE | re.DOTALL)
TEST_SIZE = 200


@dataclass
class _Session:
    """Everything that changes during an episode (copied by snapshot())."""

    page: str = "search"  # search | results | item | sub | done
    keywords: str = ""
    results: tuple[str, ...] = ()
    page_no: int = 1
    asin: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    sub: str = ""
    reward: float = 0.0


@dataclass
class _World:
    catalogue: Catalogue
    prices: dict[str, float]
    goals: list[dict[str, Any]]
    engine: SearchEngine


_WORLDS: dict[tuple[Any, ...], _World] = {}


def _world(data_dir: str | None, seed: int, per_type: int, human_goals: bool | None) -> _World:
    key = (data_dir, seed, per_type, human_goals)
    if key not in _WORLDS:
        catalogue = load_catalogue(data_dir, seed=seed, per_type=per_type)
        human = catalogue.human_instructions if human_goals is None else bool(human_goals)
        if human and not catalogue.human_instructions:
            raise ValueError(f"human_goals=True needs items_human_ins.json in {catalogue.source}")
        prices = product_prices(catalogue.products, seed)
        goals = build_goals(catalogue.products, prices, human, seed)
        if not goals:
            raise ValueError(f"{catalogue.source}: no goals could be built (no product has an instruction)")
        _WORLDS[key] = _World(catalogue, prices, goals, SearchEngine(catalogue.products))
    return _WORLDS[key]


class WebShopEnv:
    """Text WebShop. Real data when `data_dir` or $WEBSHOP_DATA_DIR is set, else synthetic.

    `metadata` records the data mode, goal source and noun tagger for every result."""

    name = "webshop"
    instruction = INSTRUCTION
    supports_snapshot = True
    failure_prefixes = ()  # an invalid action returns the page unchanged: no failure message

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, seed: int = 0,
                 per_type: int = 10, human_goals: bool | None = None,
                 max_description_chars: int | None = 400, test_size: int = TEST_SIZE) -> None:
        data_dir = data_dir if data_dir is not None else (os.environ.get(DATA_DIR_ENV) or None)
        self._world = _world(None if data_dir is None else str(data_dir), seed, per_type, human_goals)
        self.catalogue = self._world.catalogue
        self.goals = self._world.goals
        self.max_description_chars = max_description_chars
        self.n_test = min(test_size, len(self.goals) // 2)
        human = bool(self.goals and isinstance(self.goals[0]["goal_options"], list))
        self.metadata: dict[str, Any] = {
            "data_mode": self.catalogue.data_mode, "source": self.catalogue.source,
            "goal_source": "human" if human else "synthetic", "tagger": TAGGER,
            "n_products": len(self.catalogue.products), "n_goals": len(self.goals),
        }
        self.goal: dict[str, Any] = self.goals[0]
        self.task_id = 0
        self.state = _Session()
        self.last_info: dict[str, Any] = {}

    # ------------------------------------------------------------------ protocol
    @property
    def data_mode(self) -> str:
        """'synthetic catalogue' or 'real catalogue': every figure is labelled with it."""
        return f"{self.metadata['data_mode']} catalogue"

    def task_ids(self, split: str) -> list[int]:
        """test = the first `test_size` goals of the shuffled list, train = the rest."""
        if split == "test":
            return list(range(self.n_test))
        if split == "train":
            return list(range(self.n_test, len(self.goals)))
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")

    def reset(self, task_id: int) -> str:
        if not 0 <= int(task_id) < len(self.goals):
            raise IndexError(f"webshop task id {task_id} out of range 0..{len(self.goals) - 1}")
        self.task_id = int(task_id)
        self.goal = self.goals[self.task_id]
        self.state = _Session()
        self.last_info = {}
        return self.observation()

    def step(self, action: str) -> tuple[str, float, bool]:
        state = self.state
        if state.page == "done":
            return self.observation(), 0.0, True
        match = _ACTION_RE.match(action or "")
        if match is None:
            return self.observation(), 0.0, False
        verb, arg = match.group(1).lower(), " ".join(match.group(2).split()).lower()
        if verb == "search":
            if state.page != "search" or not arg:
                return self.observation(), 0.0, False
            self.state = _Session(page="results", keywords=arg, results=self._world.engine.search(arg))
            return self.observation(), 0.0, False
        handler = self.clickables().get(arg)
        if handler is None:
            return self.observation(), 0.0, False
        handler()
        done = self.state.page == "done"
        return self.observation(), (self.state.reward if done else 0.0), done

    def snapshot(self) -> tuple[int, _Session]:
        return self.task_id, replace(self.state, options=dict(self.state.options))

    def restore(self, state: tuple[int, _Session]) -> None:
        task_id, session = state
        self.task_id = task_id
        self.goal = self.goals[task_id]
        self.state = replace(session, options=dict(session.options))

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ pages
    def observation(self) -> str:
        """The current page as text."""
        s, instruction = self.state, self.goal["instruction_text"]
        if s.page == "search":
            return pages.search_page(instruction)
        if s.page == "results":
            window = s.results[(s.page_no - 1) * pages.PRODUCT_WINDOW: s.page_no * pages.PRODUCT_WINDOW]
            products = [self.catalogue.by_asin[a] for a in window]
            return pages.results_page(instruction, products, s.page_no, len(s.results))
        product = self.catalogue.by_asin[s.asin] if s.asin else None
        if s.page == "item":
            return pages.item_page(instruction, product)
        if s.page == "sub":
            return pages.sub_page(instruction, product, s.sub, self.max_description_chars)
        return pages.done_page(s.asin or "", s.reward)

    def clickables(self) -> dict[str, Any]:
        """Lower-cased clickable text -> what clicking it does, for the current page."""
        s = self.state
        out: dict[str, Any] = {}
        if s.page in ("results", "item", "sub"):
            out[pages.BACK_TO_SEARCH.lower()] = self._back_to_search
        if s.page == "results":
            if s.page_no > 1:
                out[pages.PREV_PAGE.lower()] = lambda: self._set(page_no=s.page_no - 1)
            if s.page_no * pages.PRODUCT_WINDOW < len(s.results):
                out[pages.NEXT_PAGE.lower()] = lambda: self._set(page_no=s.page_no + 1)
            start = (s.page_no - 1) * pages.PRODUCT_WINDOW
            for asin in s.results[start:start + pages.PRODUCT_WINDOW]:
                out[asin.lower()] = lambda a=asin: self._set(page="item", asin=a, options={})
        elif s.page == "item":
            out[pages.PREV_PAGE.lower()] = lambda: self._set(page="results")
            for sub in pages.SUB_PAGES:
                out[sub.lower()] = lambda w=sub.lower(): self._set(page="sub", sub=w)
            out[pages.BUY_NOW.lower()] = self._buy
            product = self.catalogue.by_asin[s.asin]
            for name, values in product["options"].items():
                for value in values:
                    out[" ".join(value.split()).lower()] = lambda n=name, v=value: self._choose(n, v)
        elif s.page == "sub":
            out[pages.PREV_PAGE.lower()] = lambda: self._set(page="item", sub="")
        return out

    def _set(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)

    def _back_to_search(self) -> None:
        self.state = _Session()

    def _choose(self, name: str, value: str) -> None:
        self.state = replace(self.state, options={**self.state.options, name: value})

    def _buy(self) -> None:
        s = self.state
        product = self.catalogue.by_asin[s.asin]
        reward, info = get_reward(product, self.goal, self._world.prices[s.asin], s.options)
        self.last_info = dict(info, asin=s.asin, options=dict(s.options), goal_asin=self.goal["asin"],
                              **{k: self.metadata[k] for k in ("data_mode", "goal_source")})
        self.state = replace(s, page="done", reward=float(reward))

    # ------------------------------------------------------------------ expert
    def expert_query(self, task_id: int) -> str:
        """Key words of the instruction: its attributes then the product kind."""
        goal = self.goals[task_id]
        return " ".join([*goal["attributes"], goal["query"]])

    def expert(self, task_id: int) -> list[ExpertStep]:
        """Search with the key words, page to the product, open it, pick each wanted option,
        buy. Thoughts are short and regular (a tiny model learns from them). Falls back to a
        title search when the key words miss the product (rare; never on synthetic goals)."""
        goal = self.goals[task_id]
        product = self.catalogue.by_asin[goal["asin"]]
        query = self.expert_query(task_id)
        results = self._world.engine.search(query)
        if goal["asin"] not in results:
            query = product["Title"].lower()
            results = self._world.engine.search(query)
        wanted = self._wanted_options(goal, product)
        option_text = "".join(f", {k} {v}" for k, v in wanted)
        price_text = (f", under {goal['price_upper']:.0f} dollars"
                      if goal["price_upper"] < 1_000_000 else "")
        steps = [ExpertStep(f"I am shopping for {goal['query']} that is {' and '.join(goal['attributes'])}"
                            f"{option_text}{price_text}. I will search for it.", f"search[{query}]")]
        rank = results.index(goal["asin"]) if goal["asin"] in results else 0
        for _ in range(rank // pages.PRODUCT_WINDOW):
            steps.append(ExpertStep("The item I want is not on this page. I will go to the next page.",
                                    f"click[{pages.NEXT_PAGE}]"))
        asin = results[rank] if results else goal["asin"]
        steps.append(ExpertStep(f"{asin} is the {goal['query']} that is {' and '.join(goal['attributes'])}. "
                                "I will open it.", f"click[{asin}]"))
        for name, value in wanted:
            steps.append(ExpertStep(f"I will choose {name} {value}.", f"click[{value}]"))
        steps.append(ExpertStep("The item and options match. I will buy it.", f"click[{pages.BUY_NOW}]"))
        return steps

    @staticmethod
    def _wanted_options(goal: dict[str, Any], product: dict[str, Any]) -> list[tuple[str, str]]:
        goal_options = goal["goal_options"]
        if isinstance(goal_options, dict):
            return [(k, v) for k, v in goal_options.items() if k in product["options"]]
        wanted = [normalize_color(str(o).lower()) for o in goal_options]
        picks = []
        for name, values in product["options"].items():
            for value in values:
                if normalize_color(value) in wanted:
                    picks.append((name, value))
                    break
        return picks
