from pathlib import Path

import pytest

from shop.inventory import load_stock


@pytest.fixture(scope="session")
def stock():
    return load_stock(Path(__file__).parent / "data" / "stock.json")
