"""Writes .env.example from the Settings model (run after adding an option; a test checks it)."""

from __future__ import annotations

import sys
from pathlib import Path

from boltgate.config import Settings


def render() -> str:
    lines = [
        "# boltgate settings: every option, with its default. Copy to .env or export the variables.",
        "# Generated from boltgate/config.py by scripts/gen_env_example.py.",
        "",
    ]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if hasattr(default, "get_secret_value"):
            default = "" if name == "secret_key" else default.get_secret_value()
        if isinstance(default, list):
            default = ",".join(default)
        elif isinstance(default, dict):
            default = ",".join(f"{k}:{v}" for k, v in default.items())
        elif isinstance(default, bool):
            default = str(default).lower()
        elif default is None:
            default = ""
        lines.append(f"# {field.description}")
        lines.append(f"# BOLTGATE_{name.upper()}={default}")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / ".env.example"
    if "--check" in sys.argv:
        sys.exit(0 if target.read_text() == render() else 1)
    target.write_text(render())
