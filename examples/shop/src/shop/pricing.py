"""Prices, taxes and discounts."""

TAX_RATE = 0.2


def net(price: float) -> float:
    return price


def gross(price: float) -> float:
    return round(net(price) * (1 + TAX_RATE), 2)


def discount(price: float, percent: int = 10) -> float:
    return price * (100 - percent) / 100
