#!/usr/bin/env python3
"""Check the .want files of this directory against Python's configparser.

Each NAME.want says what configparser.ConfigParser() with its defaults reads
from NAME.cfg. The Go tests compare checker's reader with the .want files
and never run Python; this script is how the .want files were confirmed,
and how to confirm a new one:

    python3 config/testdata/python/confirm.py [NAME...]

Files are read as UTF-8 with an optional byte order mark (utf-8-sig),
which is what checker accepts.
"""
import configparser
import glob
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))


def read_want(path):
    refuses, sections, dups = False, {}, set()
    cur = None
    for line in open(path, encoding="utf-8").read().rstrip("\n").split("\n"):
        if line == "# python: refuses":
            refuses = True
        elif line.startswith("#") or line.startswith("error: ") or line.startswith("hint: "):
            continue
        elif line.startswith("["):
            name = line
            if name.endswith(" (checker: duplicate)"):
                name = name[: -len(" (checker: duplicate)")]
                dups.add(name[1:-1])
            cur = sections.setdefault(name[1:-1], {})
        else:
            for sep in (" = ", " ~ ", " ! "):
                if sep in line:
                    k, v = line.split(sep, 1)
                    cur[k] = (sep.strip(), v)
                    break
            else:
                raise SystemExit(f"{path}: cannot read {line!r}")
    return refuses, sections, dups


def check(name):
    cfg = os.path.join(here, name + ".cfg")
    refuses, sections, _ = read_want(os.path.join(here, name + ".want"))
    parser = configparser.ConfigParser()
    try:
        parser.read(cfg, encoding="utf-8-sig")
    except (configparser.Error, UnicodeDecodeError) as e:
        if refuses:
            return [], f"refuses: {type(e).__name__}: {str(e).splitlines()[0]}"
        return [f"Python refuses it: {type(e).__name__}: {e}"], ""
    if refuses:
        return ["Python reads it, but the .want says it refuses"], ""
    bad = []
    have = set(parser.sections()) | ({"DEFAULT"} if parser.defaults() else set())
    if have != set(sections):
        bad.append(f"sections {sorted(have)}, want {sorted(sections)}")
    for sec, keys in sections.items():
        if sec not in have:
            continue
        pykeys = set(parser.defaults()) if sec == "DEFAULT" else set(parser[sec])
        if pykeys != set(keys):
            bad.append(f"[{sec}] keys {sorted(pykeys)}, want {sorted(keys)}")
        for key, (kind, want) in keys.items():
            try:
                got = parser.get(sec, key)
            except configparser.InterpolationSyntaxError:
                if kind != "~":
                    bad.append(f"[{sec}] {key}: InterpolationSyntaxError, want {kind} {want}")
                continue
            except configparser.Error as e:
                if kind != "!" or type(e).__name__ != want:
                    bad.append(f"[{sec}] {key}: {type(e).__name__}, want {kind} {want}")
                continue
            if kind != "=" or got != json.loads(want):
                bad.append(f"[{sec}] {key} = {json.dumps(got)}, want {kind} {want}")
    return bad, "reads"


def main():
    names = sys.argv[1:] or sorted(
        os.path.basename(p)[: -len(".want")] for p in glob.glob(os.path.join(here, "*.want")))
    failed = 0
    for name in names:
        bad, note = check(name)
        print(f"{'FAIL' if bad else 'ok  '} {name}: {note}")
        for b in bad:
            print("     ", b)
        failed += bool(bad)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
