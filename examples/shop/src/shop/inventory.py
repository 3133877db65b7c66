"""Where the stock comes from."""

import json
from pathlib import Path

from shop.catalog import Item


def load_stock(path: Path) -> list[Item]:
    return [Item(name, price) for name, price in json.loads(path.read_text()).items()]
