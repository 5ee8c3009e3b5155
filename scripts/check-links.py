#!/usr/bin/env python3
"""Checks the relative links of README.md, traces/README.md and docs/src/*.md.

Every `[text](target)` and `![alt](target)` whose target is not a URL must name a file or
folder that exists (relative to the Markdown file), and a `#fragment` on a Markdown target must
match one of its headings (GitHub/mdBook slugs). Prints each broken link as FILE:LINE: TARGET
and exits 1 if there is any. Standard library only.

    scripts/check-links.py            # from the repository root
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def slug(heading: str) -> str:
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set:
    found, fence = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and line.startswith("#"):
            found.add(slug(line.lstrip("#")))
    return found


def links(path: Path):
    fence = False
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        line = re.sub(r"`[^`]*`", "", line)  # code spans are not links
        for m in LINK.finditer(line):
            yield n, m.group(1)


def main() -> int:
    files = [ROOT / "README.md", ROOT / "traces" / "README.md", *sorted((ROOT / "docs" / "src").glob("*.md"))]
    broken, checked = [], 0
    for md in files:
        for n, target in links(md):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            checked += 1
            file_part, _, fragment = target.partition("#")
            dest = (md.parent / file_part).resolve() if file_part else md
            if not dest.exists():
                broken.append(f"{md.relative_to(ROOT)}:{n}: {target} (no such file)")
            elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
                broken.append(f"{md.relative_to(ROOT)}:{n}: {target} (no heading #{fragment})")
    for b in broken:
        print(b)
    print(f"{checked} relative links in {len(files)} files, {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
