#!/usr/bin/env python3
"""Counts the crate's public API as rustdoc documents it: item pages (modules, structs, enums, traits, functions,
type aliases, constants, statics, macros) and the public methods and fields on them, from `cargo doc`'s HTML.
Items hidden with `#[doc(hidden)]` (the `internals` module of stage hooks for tests) get no page and are not
counted. Re-exports of one item count once.

    cargo doc --no-deps --release && python3 scripts/public-items.py [target/doc/mask_rcnn_burn]
"""
import collections
import os
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else
                    os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "doc", "mask_rcnn_burn"))
if not root.is_dir():
    root = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", "target")) / "doc" / "mask_rcnn_burn"
kinds = collections.Counter()
methods = fields = 0
modules = 0
seen = set()
for page in sorted(root.rglob("*.html")):
    name = page.name
    if name == "index.html":
        modules += 1
        continue
    m = re.match(r"(struct|enum|trait|fn|type|constant|static|macro|union)\.(\w+)\.html$", name)
    if not m:
        continue
    text = page.read_text(errors="replace")
    # A re-exported item has a page under each path: count the item once, by its defining path's title.
    key = (m.group(1), m.group(2), len(text))
    if key in seen:
        continue
    seen.add(key)
    kinds[m.group(1)] += 1
    if m.group(1) in ("struct", "enum", "trait", "union"):
        # Inherent and trait-required methods documented on the page (not blanket or auto-trait impls).
        methods += len(set(re.findall(r'id="(?:method|tymethod)\.(\w+)"', text.split('id="trait-implementations"')[0])))
        fields += len(set(re.findall(r'id="(?:structfield|variant)\.(\w+)"', text)))
total = modules + sum(kinds.values())
print(f"{root}: {total} items ({modules} modules, " + ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())) +
      f"), {methods} public methods, {fields} public fields and variants")
