"""The public surface and the light-import promise."""

import subprocess
import sys

import shopsense


def test_top_level_exports():
    assert set(shopsense.__all__) >= {
        "Engine", "Product", "Event", "EventType", "Settings", "Hit", "ResultList", "Ranked",
        "ShopsenseError", "ValidationError", "NotFoundError", "NotFittedError",
    }
    for name in shopsense.__all__:
        assert hasattr(shopsense, name), name


def test_import_does_not_load_heavy_backends():
    code = (
        "import sys, shopsense, shopsense.cli; "
        "heavy = [m for m in ('torch', 'sentence_transformers', 'implicit', 'lightgbm', 'fastapi') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_bad_input_errors_are_value_errors():
    assert issubclass(shopsense.ValidationError, ValueError)
    assert issubclass(shopsense.ValidationError, shopsense.ShopsenseError)
    assert issubclass(shopsense.NotFoundError, KeyError)
