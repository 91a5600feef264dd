"""The README's library example runs exactly as written, and its commands are the CI's."""

import pathlib
import re

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_library_example_runs(capsys):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README must contain the library example"
    scope = {}
    exec(compile(blocks[0], "README.md", "exec"), scope)
    out = capsys.readouterr().out.splitlines()
    assert float(out[0]) == 0.5
    assert "cwv" in out[1] and "equalized_odds_difference" in out[1]
    params, mask = scope["params"], scope["mask"]
    for layer in ("hidden", "out"):  # the trained params themselves: pruned entries exactly 0
        w, keep = np.asarray(params[layer]["kernel"]), np.asarray(mask[layer]["kernel"])
        assert np.all(w[~keep] == 0) and np.all(w[keep] != 0)
    accuracy = float(np.mean(np.asarray(scope["y_pred"]) == np.asarray(scope["test"]["y"]).reshape(-1)))
    assert accuracy > 0.8, "the example's model must learn the task"


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    install = re.search(r"## Install[^\n]*\n\n    ([^\n]+)\n", readme).group(1)
    test = re.search(r"## Test\n\n    (.+)\n", readme).group(1)
    assert install in ci and test in ci
