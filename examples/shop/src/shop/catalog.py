"""Items and finding them."""

from dataclasses import dataclass

from shop.pricing import gross


@dataclass
class Item:
    name: str
    price: float

    def label(self) -> str:
        return f"{self.name}: {gross(self.price)} EUR"


def find(items: list[Item], name: str) -> list[Item]:
    return [item for item in items if item.name == name]
