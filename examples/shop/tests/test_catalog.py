from shop.catalog import Item, find


def test_label():
    assert Item("apple", 1.0).label() == "apple: 1.2 EUR"


def test_find(stock):
    assert find(stock, "pear")[0].price == 2.0


def test_stock_size(stock):
    assert len(stock) == 3
