from shop import pricing


def test_net():
    assert pricing.net(3) == 3


def test_gross():
    assert pricing.gross(10) == 12.0


def test_discount():
    assert pricing.discount(100) == 90


def test_big_discount():
    assert pricing.discount(100, percent=50) == 50
