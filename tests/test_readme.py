"""The README's library example runs exactly as written, and its commands are the CI's."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_library_example_runs(capsys):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README must contain the library example"
    exec(compile(blocks[0], "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert abs(float(out[0]) - 0.2) < 1e-3
    assert "cwv" in out[1] and "equalized_odds_difference" in out[1]


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    install = re.search(r"## Install[^\n]*\n\n    ([^\n]+)\n", readme).group(1)
    test = re.search(r"## Test\n\n    (.+)\n", readme).group(1)
    assert install in ci and test in ci
