"""docs/extending.md runs: its Python blocks, in order, in one namespace, as a reader would
paste them. The names the page registers are taken back afterwards."""

from __future__ import annotations

import re
from pathlib import Path

from lom_pyro import registry

PAGE = Path(__file__).resolve().parents[1] / "docs/extending.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", flags=re.S | re.M)


def test_the_page_has_an_example_of_each_part():
    text = PAGE.read_text()
    for heading in ("## An orderless model", "## A scene prior", "## A slot prior", "## A handler"):
        assert heading in text


def test_every_example_on_the_page_runs():
    blocks = BLOCK.findall(PAGE.read_text())
    assert len(blocks) >= 6
    before = {kind: set(registry.names(kind)) for kind in registry.KINDS}
    namespace: dict = {"__name__": "extending"}
    try:
        for number, code in enumerate(blocks, 1):
            exec(compile(code, f"{PAGE.name} block {number}", "exec"), namespace)
    finally:
        for kind, names in before.items():
            for name in set(registry.names(kind)) - names:
                registry.unregister(kind, name)
    assert {kind: set(registry.names(kind)) for kind in registry.KINDS} == before
    # what the page built is what it says it built
    assert type(namespace["lom"].slot_prior).__name__ == "LinearSlotPrior"
    assert namespace["record"].permutations
