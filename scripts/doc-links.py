#!/usr/bin/env python3
"""Keeps the repository standing alone: every in-repo path it names exists,
and nothing names a place outside it.

  scripts/doc-links.py          exit 1, one "file:line: why" per finding

Checked, over the files `git ls-files` lists (new ones not ignored too):
  - Markdown: every relative link [text](path) (resolved against the
    document's directory; URLs and #anchors are not checked), and every
    path in backticks or a code block that starts with a top-level
    directory of the repository (TOP_DIRS) and has a "/".
  - Every text file (comments, scripts, configs): a path that starts with a
    top-level directory and ends in a file extension (PATH_EXTENSIONS);
    found from the repository root or from the file's own directory.
    #include lines are skipped (their paths are include paths).
  - Every text file: no mention of OUTSIDE (a document, tracker or
    directory outside the repository).
A path may be a glob (`*`) and "a.h/.cc" names a.h and a.cc; one with a
placeholder (`<...>`, `{...}`, `$VAR`) is not checked. ALLOWED lists the
paths that are named on purpose although they are not in the repository.

The check is the ctest `docs.links`. It needs no build; outside a git checkout
it is skipped (exit 77).
"""
import fnmatch
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOP_DIRS = ("balancer", "bench", "common", "deploy", "docs", "fuzz", "monitoring", "scripts", "tests", "webnode")
PATH_EXTENSIONS = ("md", "h", "cc", "sh", "py", "yml", "yaml", "json", "txt", "mjs", "conf", "service", "ini", "png")
# Named on purpose although not in the repository (prefix match), and why.
ALLOWED = {
    "deploy/secrets": "made by deploy/compose-secrets.sh at deploy time, ignored by git",
    "deploy/tls/cert.pem": "the operator's certificate, ignored by git (deploy/tls/README.md)",
    "deploy/tls/key.pem": "the operator's key, ignored by git (deploy/tls/README.md)",
    "deploy/balancer": "kubectl's TYPE/NAME (the Deployment), not a path",
    "deploy/webnode": "kubectl's TYPE/NAME (the Deployment), not a path",
    "deploy/redis": "kubectl's TYPE/NAME (the Deployment), not a path",
    "deploy/redis-exporter": "kubectl's TYPE/NAME (the Deployment), not a path",
}
# Places outside the repository (a reader has only the clone). Spelled in two
# parts so that this file does not match itself.
OUTSIDE = [
    (re.compile(r"\bSP" + r"EC\b"), "names the specification, a document outside the repository"),
    (re.compile(r"\.\./" + "shared"), "names a directory outside the repository"),
    (re.compile("/" + "work/|/" + "root/|/" + r"home/[a-z]"), "names a machine's path outside the repository"),
    (re.compile(r"\b[Ii]ssues? " + r"#?\d+\b"), "names an issue of a tracker outside the repository"),
]

TOP = "|".join(TOP_DIRS)
# A path: a top-level directory (or "../" up to one), "/", then path characters.
PATH_RE = re.compile(r"(?<![\w/.$@:-])((?:\.\./)*(?:%s)/[\w./*<>{}$+-]*)" % TOP)
EXT_RE = re.compile(r"\.(?:%s)$" % "|".join(PATH_EXTENSIONS))
LINK_RE = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN_RE = re.compile(r"(`+)(.+?)\1", re.S)
PLACEHOLDER_RE = re.compile(r"[<>{}$]")


def tracked():
    """The repository's files: tracked ones and new ones git does not ignore
    (so a file not yet added counts), as they are on disk."""
    run = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True)
    if run.returncode != 0:
        print("doc-links: SKIP: not a git checkout ({})".format(run.stderr.decode().strip()))
        sys.exit(77)
    return sorted({p for p in run.stdout.decode().split("\0") if p and (ROOT / p).is_file()})


def text_of(path):
    data = (ROOT / path).read_bytes()
    if b"\0" in data:
        return None
    return data.decode("utf-8", errors="replace")


def allowed(path):
    return any(path == a or path.startswith(a.rstrip("/") + "/") for a in ALLOWED)


def expand(path):
    """ "a/b.h/.cc" -> ["a/b.h", "a/b.cc"]; anything else as it is."""
    m = re.match(r"^(.*)\.(\w+)/\.(\w+)$", path)
    if m:
        return ["{}.{}".format(m[1], m[2]), "{}.{}".format(m[1], m[3])]
    return [path]


class Tree:
    def __init__(self, files):
        self.files = set(files)
        self.dirs = {str(pathlib.PurePosixPath(f).parents[i]) for f in files
                     for i in range(len(pathlib.PurePosixPath(f).parents) - 1)}

    def exists(self, path):
        """path: repo-relative, normalised, may end in "/" or hold a glob."""
        path = path.rstrip("/")
        if "*" in path or "?" in path:
            return any(fnmatch.fnmatch(f, path) for f in self.files | self.dirs)
        return path in self.files or path in self.dirs


def normal(path):
    """Repo-relative and without "." / ".." parts, or None if it leaves the repository."""
    parts = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts) + ("/" if path.endswith("/") else "")


def own_dir(name):
    """"dir/" of a repo-relative file name ("" at the top)."""
    base = str(pathlib.PurePosixPath(name).parent)
    return "" if base == "." else base + "/"


def strip_path(token):
    return token.rstrip(".,:;)")


def code_blocks(lines):
    """Line numbers (0-based) inside fenced or indented code blocks."""
    inside, fenced = set(), False
    for i, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            inside.add(i)
        elif fenced or (line.startswith("    ") and (i == 0 or not lines[i - 1].strip() or i - 1 in inside)):
            inside.add(i)
    return inside


def check_markdown(doc, text, tree, found):
    lines = text.splitlines()
    blocks = code_blocks(lines)
    base = own_dir(doc)
    # Links, outside code blocks (a C++ lambda "[](...)" is not a link).
    prose = "\n".join("" if i in blocks else line for i, line in enumerate(lines))
    for m in LINK_RE.finditer(prose):
        target = m[1].strip("<>")
        number = prose.count("\n", 0, m.start()) + 1
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (http:, https:, mailto:) or an anchor in this document
        target = target.split("#", 1)[0]
        if PLACEHOLDER_RE.search(target):
            continue
        path = normal(base + target)
        if path is None:
            found.append("{}:{}: link leaves the repository: {}".format(doc, number, m[1]))
        elif not allowed(path) and not tree.exists(path):
            found.append("{}:{}: link to a path that does not exist: {}".format(doc, number, m[1]))
    # Paths in backticks and code blocks.
    spans = []
    for m in CODE_SPAN_RE.finditer(prose):
        spans.append((prose.count("\n", 0, m.start()) + 1, m[2]))
    spans += [(i + 1, lines[i]) for i in sorted(blocks)]
    for number, span in spans:
        for m in PATH_RE.finditer(span):
            check_path(doc, number, strip_path(m[1]), tree, found, bases=("",))


def check_path(doc, number, token, tree, found, bases):
    """bases: the directories token may be relative to; a "../" path is
    relative to the file's own directory only."""
    if PLACEHOLDER_RE.search(token) or allowed(token):
        return
    if token.startswith("../"):
        bases = (own_dir(doc),)
    for path in expand(token):
        candidates = [normal(b + path) for b in bases]
        if not any(c is not None and (allowed(c) or tree.exists(c)) for c in candidates):
            found.append("{}:{}: names a path that does not exist: {}".format(doc, number, token))


def problems():
    files = tracked()
    tree = Tree(files)
    found = []
    for name in files:
        text = text_of(name)
        if text is None:
            continue
        lines = text.splitlines()
        for number, line in enumerate(lines, 1):
            for pattern, why in OUTSIDE:
                if pattern.search(line):
                    found.append("{}:{}: {}: {}".format(name, number, why, line.strip()))
        if name.endswith(".md"):
            check_markdown(name, text, tree, found)
        bases = ("", own_dir(name))
        for number, line in enumerate(lines, 1):
            if line.lstrip().startswith("#include"):
                continue
            if name.endswith(".md"):
                line = LINK_RE.sub("]()", line)  # link targets: checked above
            for m in PATH_RE.finditer(line):
                token = strip_path(m[1])
                if EXT_RE.search(token):
                    check_path(name, number, token, tree, found, bases)
    return sorted(set(found), key=lambda f: (f.split(":")[0], int(f.split(":")[1])))


def main():
    found = problems()
    for problem in found:
        print("doc-links:", problem)
    if found:
        print("doc-links: {} finding(s): fix the path, or add it to ALLOWED in scripts/doc-links.py "
              "with the reason it is named".format(len(found)))
        return 1
    print("doc-links: every in-repo path named exists, and nothing names a place outside the repository")
    return 0


if __name__ == "__main__":
    sys.exit(main())
