"""Replacing one section of BENCHMARKS.md between its `<!-- bench:NAME -->` markers."""

from pathlib import Path


def update_section(page: Path, name: str, section: str) -> None:
    """Replace the section called `name` in `page`, or append `section` when there is none."""
    start_marker = f"<!-- bench:{name} -->"
    end_marker = f"<!-- /bench:{name} -->"
    text = page.read_text()
    start = text.find(start_marker)
    end = text.find(end_marker)
    if start != -1 and end > start:
        end += len(end_marker)
        if text[end : end + 1] == "\n":
            end += 1
        text = text[:start] + section + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    page.write_text(text)
