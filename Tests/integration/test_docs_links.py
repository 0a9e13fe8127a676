"""Every relative link in the repository's Markdown files resolves: the file (or folder) it names exists,
and its #anchor, if any, is a heading of that file (GitHub's heading ids). Links to other sites are not
followed. Code spans and fenced code blocks are not links."""
import os
import re
import unicodedata

import conftest

SKIP_DIRS = {"test-output", "data", "dist", "node_modules", "results", "__pycache__"}
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"<(?:a|img)\s[^>]*?(?:href|src)=\"([^\"]+)\"", re.IGNORECASE)
FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def markdown_files(root):
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        for name in sorted(files):
            if name.lower().endswith(".md"):
                yield os.path.join(folder, name)


def prose(text):
    """The text outside fenced code blocks, with code spans blanked (line numbers kept)."""
    lines, fenced = [], None
    for line in text.split("\n"):
        m = FENCE.match(line)
        if fenced:
            if m and m.group(1) == fenced:
                fenced = None
            lines.append("")
        elif m:
            fenced = m.group(1)
            lines.append("")
        else:
            lines.append(line)
    return CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), "\n".join(lines))


def slug(heading):
    """GitHub's id for a heading: the text without markup, lower case, punctuation dropped, spaces as '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors(path):
    ids, seen = set(), {}
    for line in prose(open(path, encoding="utf-8").read()).split("\n"):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        ids.add(base if n == 0 else f"{base}-{n}")
    ids.update(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", open(path, encoding="utf-8").read()))
    return ids


def broken_links(root):
    """(file, line, target, why) for every relative link under root that does not resolve."""
    found, cache = [], {}
    for path in markdown_files(root):
        text = prose(open(path, encoding="utf-8").read())
        for lineno, line in enumerate(text.split("\n"), 1):
            for target in LINK.findall(line) + HTML_LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("//"):
                    continue  # another site, mailto:, ...
                file_part, _, anchor = target.partition("#")
                dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
                rel = os.path.relpath(path, root)
                if not os.path.exists(dest):
                    found.append((rel, lineno, target, "no such file"))
                elif anchor and not os.path.isdir(dest):
                    if dest not in cache:
                        cache[dest] = anchors(dest) if dest.lower().endswith(".md") else None
                    if cache[dest] is not None and anchor.lower() not in cache[dest]:
                        found.append((rel, lineno, target, "no such heading"))
    return found


def test_every_markdown_link_in_the_repository_resolves():
    assert list(markdown_files(conftest.ROOT)), "no Markdown files found"
    bad = broken_links(conftest.ROOT)
    assert not bad, "broken links:\n" + "\n".join(f"  {f}:{n}: {t} ({why})" for f, n, t, why in bad)


def test_the_checker_finds_missing_files_and_headings(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "B.md").write_text("# Cluster mode (Redis)\n\n## Client → hub\n\n## Twice\n\n## Twice\n")
    (tmp_path / "img.png").write_bytes(b"")
    (tmp_path / "A.md").write_text(
        "[ok](sub/B.md#cluster-mode-redis) [ok](sub/B.md#client--hub) [ok](sub/B.md#twice-1) ![ok](img.png)\n"
        "[ok](#a-heading) [ok](https://example.com/nowhere.md) [ok](sub/) `[code](nowhere.md)`\n"
        "```\n[fenced](nowhere.md)\n```\n"
        "## A heading\n"
        "[gone](missing.md) ![gone](shots/x.png) [bad anchor](sub/B.md#cluster-mode) [bad](#nowhere)\n")
    bad = broken_links(str(tmp_path))
    assert [(f, n, t) for f, n, t, _ in bad] == [
        ("A.md", 7, "missing.md"), ("A.md", 7, "shots/x.png"), ("A.md", 7, "sub/B.md#cluster-mode"),
        ("A.md", 7, "#nowhere")]
