"""Every relative link and image in README.md and docs/ points to a file that exists, and a
`#anchor` to a heading of that file: moving text between pages must not leave dead links.

Links inside code (fenced blocks, `inline`) are not links; http(s) and mailto are not checked
(no network in tests). Anchors are GitHub's heading slugs.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^ *(```|~~~).*?^ *\1", re.M | re.S)
INLINE_CODE = re.compile(r"(`+).+?\1", re.S)


def _prose(text: str) -> str:
    """The text without code: fenced blocks and inline code spans, newlines kept."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return INLINE_CODE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file (repeats get -1, -2, ... as on GitHub)."""
    text = FENCE.sub("", path.read_text())
    seen: dict[str, int] = {}
    out = set()
    for m in re.finditer(r"^#{1,6} +(.+?) *#* *$", text, re.M):
        s = slug(m.group(1))
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def dead_links(page: Path) -> list[str]:
    """`page:line: target (why)` for each relative link of `page` that leads nowhere."""
    text = _prose(page.read_text())
    dead = []
    for m in LINK.finditer(text):
        target = m.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        name = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page.name
        where = f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {target}"
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            dead.append(f"{where} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            dead.append(f"{where} (no such heading in {dest.name})")
    return dead


def test_every_relative_link_and_image_exists():
    assert len(PAGES) > 5
    dead = [d for page in PAGES for d in dead_links(page)]
    assert not dead, "dead links:\n" + "\n".join(dead)


def test_the_readme_links_every_docs_page():
    readme = _prose((ROOT / "README.md").read_text())
    linked = {(ROOT / m.group(1).partition("#")[0]).resolve() for m in LINK.finditer(readme)}
    unlinked = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_dead_links_and_anchors_are_found(tmp_path):
    (tmp_path / "there.md").write_text("# A page\n\n## Its `first` section: x, y\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md) [ok](there.md#its-first-section-x-y) [ok](#top)\n"
                    "# Top\n![gone](figures/none.png) [gone](missing.md)\n"
                    "[bad anchor](there.md#nope) [web](https://example.org/x)\n"
                    "`[code](not-a-link.md)`\n```\n[code](nor-this.md)\n```\n")
    dead = dead_links(page)
    assert [d.split(": ", 1)[1] for d in dead] == [
        "figures/none.png (no such file)", "missing.md (no such file)",
        "there.md#nope (no such heading in there.md)"], dead
