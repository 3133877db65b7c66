#!/usr/bin/env bash
# selector in one command: install it, record the example project's tests, change one
# function, and see which tests the plan selects and why.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv="$here/.venv-demo"
if [ ! -x "$venv/bin/selector" ]; then
    echo "== 0. install selector into $venv"
    python3 -m venv "$venv"
    # pip's output only matters when it fails.
    "$venv/bin/python" -m pip install --quiet -e "$here" >"$venv/install.log" 2>&1 \
        || { cat "$venv/install.log"; exit 1; }
fi
export PATH="$venv/bin:$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$here/examples/shop" "$work/shop"
cd "$work/shop"
export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.com
export GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.com
git init -q -b main && git add -A && git commit -q -m "shop"

echo "== 1. record the suite on main and store the map"
pytest --selector-record -q -p no:cacheprovider
selector upload-map

echo
echo "== 2. a pull request changes one function"
git checkout -q -b discount-rounding
sed -i 's|return price \* (100 - percent) / 100|return round(price * (100 - percent) / 100, 2)|' \
    src/shop/pricing.py
git commit -q -am "Round discounts"
git --no-pager diff main --stat

echo
echo "== 3. plan: the tests this change can affect"
selector plan --base main --format list | tee "$work/selected.txt"

echo
echo "== 4. run only those"
xargs -r pytest -q -p no:cacheprovider < "$work/selected.txt"

echo
echo "== 5. why is a test (not) selected?"
selector why tests/test_pricing.py::test_discount
selector why tests/test_catalog.py::test_label

echo
echo "== 6. locally: edit without committing, and let selector run what it affects"
sed -i 's|return \[item for item in items if item.name == name\]|return [item for item in items if item.name.lower() == name.lower()]|' \
    src/shop/catalog.py
selector run -q -p no:cacheprovider
echo "-- again, with nothing changed since:"
selector run -q -p no:cacheprovider
