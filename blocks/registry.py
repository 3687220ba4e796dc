"""Finds every block module under blocks/catalogue/ and answers lookups by name."""

import importlib
import pkgutil

from . import catalogue
from .base import Block

_loaded = False


def load_catalogue() -> None:
    """Import each module of the catalogue package once; each defines and registers a block."""
    global _loaded
    if _loaded:
        return
    for module in pkgutil.iter_modules(catalogue.__path__):
        importlib.import_module(f"{catalogue.__name__}.{module.name}")
    _loaded = True


def get_block_class(name: str) -> type[Block] | None:
    load_catalogue()
    return Block.registry.get(name)


_instances: dict[str, Block] = {}


def get_block(name: str) -> Block:
    """A block instance to run; blocks are stateless, so one per process is enough."""
    block = _instances.get(name)
    if block is None:
        cls = get_block_class(name)
        if cls is None:
            raise KeyError(name)
        block = _instances[name] = cls()
    return block


def all_blocks() -> list[type[Block]]:
    load_catalogue()
    return sorted(Block.registry.values(), key=lambda cls: cls.name)
