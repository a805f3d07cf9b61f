#!/usr/bin/env python3
"""Keeps docs/reference.md true to the programs.

The flag tables in docs/reference.md are generated from each program's
`--help` (CLI11 output: flag, type and range, default, environment variable,
meaning) between `<!-- BEGIN flags PROGRAM -->` and `<!-- END flags PROGRAM -->`.

  scripts/reference.py --bin build/bin --write   regenerate the tables in place
  scripts/reference.py --bin build/bin --check   exit 1 (with a diff) when a table
                                                 and --help disagree, or when a metric
                                                 the code defines is not in the
                                                 reference

The check is the ctest `docs.reference`. Paths the documents name are checked
by scripts/doc-links.py (ctest `docs.links`).
"""
import argparse
import difflib
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference.md"
PROGRAMS = ("balancer", "webnode")
# Where metric names are defined: every "balancer_*" / "webnode_*" string
# literal in the programs' sources is a metric family name.
METRIC_SOURCES = ("balancer", "webnode", "cache", "common")
METRIC_RE = re.compile(r'"((?:balancer|webnode)_[a-z0-9_]+)"')


def parse_help(text):
    """Returns [(flag, type, default, env, meaning)] from CLI11 --help text."""
    options = []
    for line in text.splitlines():
        if re.match(r"^  -", line):
            head, _, tail = line.strip().partition("(Env:")
            env, meaning = "", ""
            if tail:
                env, _, meaning = tail.partition(")")
            elif re.search(r"\s{2,}", head):
                head, meaning = re.split(r"\s{2,}", head, maxsplit=1)
            parts = head.split(None, 1)
            names = parts[0]
            spec = parts[1].strip() if len(parts) > 1 else ""
            flag = [n for n in names.split(",") if n.startswith("--")][0]
            default = ""
            if "=" in spec:
                spec, default = spec.rsplit("=", 1)
            options.append([flag, spec, default, env, meaning.strip()])
        elif re.match(r"^\s{20,}\S", line) and options:
            options[-1][4] = (options[-1][4] + " " + line.strip()).strip()
    return [tuple(o) for o in options if o[0] not in ("--help", "--version")]


def table(options):
    def cell(s):
        return s.replace("|", "\\|")
    rows = ["| flag | environment | type | default | meaning |", "|---|---|---|---|---|"]
    for flag, spec, default, env, meaning in options:
        rows.append("| `{}` | `{}` | {} | {} | {} |".format(
            flag, env, cell(spec), "`{}`".format(cell(default)) if default else "", cell(meaning)))
    return "\n".join(rows)


def generated(text, bindir):
    for program in PROGRAMS:
        out = subprocess.run([str(bindir / program), "--help"], capture_output=True, text=True, check=True).stdout
        begin, end = "<!-- BEGIN flags {} -->".format(program), "<!-- END flags {} -->".format(program)
        pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
        if not pattern.search(text):
            sys.exit("reference: {} has no {} ... {} block".format(REFERENCE.relative_to(ROOT), begin, end))
        text = pattern.sub(lambda _: "{}\n{}\n{}".format(begin, table(parse_help(out)), end), text)
    return text


def problems(text):
    found = []
    defined = set()
    for top in METRIC_SOURCES:
        for path in (ROOT / top).rglob("*"):
            if path.suffix in (".cc", ".h"):
                defined.update(METRIC_RE.findall(path.read_text(errors="replace")))
    for name in sorted(defined):
        if "`{}".format(name) not in text:
            found.append("metric {} is defined in the code but not in docs/reference.md".format(name))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="directory with the built balancer and webnode")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args()
    bindir = pathlib.Path(args.bin).resolve()
    current = REFERENCE.read_text()
    wanted = generated(current, bindir)
    if args.write:
        REFERENCE.write_text(wanted)
        print("reference: wrote", REFERENCE.relative_to(ROOT))
        return 0
    failed = False
    if wanted != current:
        failed = True
        print("reference: docs/reference.md disagrees with --help (run scripts/reference.py --bin BIN --write):")
        sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), wanted.splitlines(True),
                                                   "docs/reference.md", "from --help"))
    for problem in problems(current):
        failed = True
        print("reference:", problem)
    if not failed:
        print("reference: flag tables match --help of", ", ".join(PROGRAMS), "and every metric is documented")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
