"""Every ```python block of README.md runs as written: in order, in one namespace, in a
temporary directory (the blocks build on each other, as a reader pasting them would)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SHIPPED = "qm9-b3lyp5-def2svp"  # the shipped model the first snippet loads


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks of a Markdown text, in order."""
    return re.findall(r"^```python[ \t]*\n(.*?)^```[ \t]*$", text, flags=re.M | re.S)


def test_python_blocks_are_found():
    blocks = python_blocks("x\n```python\na = 1\n```\n```bash\nls\n```\n```python\nb = a\n```\n")
    assert blocks == ["a = 1\n", "b = a\n"]
    assert len(python_blocks(README.read_text())) >= 3


@pytest.mark.slow
def test_readme_python_blocks_run_as_written(tmp_path, monkeypatch):
    import hamnet

    blocks = python_blocks(README.read_text())
    if any(SHIPPED in b for b in blocks) and SHIPPED not in {m["name"] for m in hamnet.pretrained_models()}:
        pytest.skip(f"the README's first snippet loads the shipped model {SHIPPED!r}, which is not in "
                    "hamnet/pretrained/ yet")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for k, code in enumerate(blocks, 1):
        try:
            exec(compile(code, f"README.md python block {k}", "exec"), namespace)
        except Exception as exc:  # noqa: BLE001 - any failure of a snippet is the finding
            pytest.fail(f"README.md python block {k} fails: {type(exc).__name__}: {exc}\n{code}")
