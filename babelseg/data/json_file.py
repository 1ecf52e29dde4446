"""Reading JSON annotation files with errors that name the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load_json(path: Path, what: str = "COCO JSON") -> Any:
    """Parse a JSON file; FileNotFoundError / ValueError name the file and the fix."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}. Fix 'json' in the split's paths.")
    try:
        with path.open() as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); re-download or re-export it.") from e
