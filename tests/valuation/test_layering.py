"""Layering: ``valuation`` works on arrays and never imports ``envs`` or ``train`` (so the engine runs
without the simulator, and the retraining tool depends on the engine, not the other way round)."""

import ast
from pathlib import Path

import valuation


def _imported_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_valuation_never_imports_envs_or_train():
    files = sorted(Path(valuation.__file__).parent.rglob("*.py"))
    assert len(files) > 5
    bad = {str(f): sorted(_imported_packages(f) & {"envs", "train"}) for f in files}
    assert not {f: b for f, b in bad.items() if b}


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def g():\n    from train.datamodels import datamodel\n    import envs.point as p\n")
    assert _imported_packages(f) == {"train", "envs"}
