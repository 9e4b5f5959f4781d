"""A grep gate run by `make lint`: constructs that bypass escaping or CSRF protection
must not appear in application code or templates (RELIABILITY.md T49)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ["app.py", "web", "community", "deliberation", "ballots", "crypto", "templates", "bench"]
FORBIDDEN = {
    r"\|\s*safe\b": "the |safe filter turns off escaping",
    r"\bMarkup\(": "Markup() marks text as safe HTML",
    r"render_template_string\(": "templates from strings invite template injection",
    r"csrf\.exempt": "every state-changing route needs a CSRF token",
    r"\{%\s*autoescape\s+false": "autoescape must stay on",
}


# The one sanctioned place that marks HTML as safe: the output of the allow-list sanitizer.
SANCTIONED = {("deliberation/markup.py", r"\bMarkup\(")}


def violations(root: Path = ROOT) -> list[str]:
    found = []
    for entry in CHECKED:
        base = root / entry
        files = [base] if base.is_file() else sorted(base.rglob("*")) if base.exists() else []
        for path in files:
            if (
                path.suffix not in {".py", ".html", ".txt", ".xml", ".svg"}
                or "__pycache__" in path.parts
            ):
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                for pattern, why in FORBIDDEN.items():
                    if (str(path.relative_to(root)), pattern) in SANCTIONED:
                        continue
                    if re.search(pattern, line):
                        found.append(f"{path.relative_to(root)}:{number}: {why}")
    return found


if __name__ == "__main__":
    problems = violations()
    for problem in problems:
        print(problem)
    sys.exit(1 if problems else 0)
