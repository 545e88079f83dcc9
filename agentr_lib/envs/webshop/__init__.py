"""Text-mode WebShop (real data when present, else a seeded synthetic catalogue)."""

from .env import INSTRUCTION, WebShopEnv

__all__ = ["INSTRUCTION", "WebShopEnv"]
