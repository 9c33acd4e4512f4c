"""The entry's results file, as the binary writes it: a COCO results JSON kept valid after every batch, and beside it
``<json>.done``, the ids of the images it holds, so that a killed run resumes with every image exactly once."""

from __future__ import annotations

import json
import os
import pathlib

from .. import _uint


class Results:
    """``[``, entries, ``]``, the closing bracket rewritten at each append (an append costs its own entries, not the
    file's); ``.done`` written after the entries it lists. Only images that ran are listed (as the binary does): a
    failed image runs again with ``--resume``. Errors are one-line ``SystemExit`` messages."""

    def __init__(self, path: str, resume: bool) -> None:
        self.path, self.done_path = path, path + ".done"
        self.done: set[int] = set()
        kept: list = []
        if resume and os.path.isfile(path):
            if not os.path.isfile(self.done_path):
                raise SystemExit(f"error: --resume: cannot read {self.done_path}, the list of images {path} holds; restore it, or run again without --resume")
            # As the binary: a line that is not an id is skipped (a line cut off by a kill, at worst its image reruns).
            self.done = {int(line) for line in _lines(self.done_path) if line.strip().isascii() and line.strip().isdigit()}
            kept = [r for r in _entries(path) if r["image_id"] in self.done]
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(kept, f, separators=(",", ":"))
        os.replace(tmp, path)
        self.empty = not kept
        with open(self.done_path, "w") as f:
            f.writelines(f"{i}\n" for i in sorted(self.done))

    def append(self, rows: list[tuple[int, list]]) -> None:
        """Adds images' results (possibly none) and records them as done, results first."""
        entries = [e for _, image_entries in rows for e in image_entries]
        if entries:
            text = json.dumps(entries, separators=(",", ":"))[1:-1]
            with open(self.path, "r+b") as f:
                f.seek(-1, os.SEEK_END)  # the closing bracket
                f.write(("" if self.empty else ",").encode() + text.encode() + b"]")
            self.empty = False
        with open(self.done_path, "a") as f:
            for image_id, _ in rows:
                f.write(f"{image_id}\n")
                self.done.add(image_id)


def _lines(path: str) -> list[str]:
    try:
        return pathlib.Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise SystemExit(f"error: --resume: cannot read {path}: {e.strerror}")


def _entries(path: str) -> list[dict]:
    """The entries of a results JSON this tool wrote; of one cut off mid-append (a killed run: no closing bracket
    yet), the complete ones before the cut. Anything else is refused: keeping what parses of a file damaged
    elsewhere would drop results of images its ``.done`` says are there."""
    bad = f"error: --resume: {path} is not a results JSON this tool wrote"
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SystemExit(f"{bad} (not UTF-8)")
    except OSError as e:
        raise SystemExit(f"error: --resume: cannot read {path}: {e.strerror}")
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as e:
        if text.rstrip().endswith("]") or not text.lstrip().startswith("["):
            raise SystemExit(f"{bad} ({e})")
        entries = _before_the_cut(text)
    if not isinstance(entries, list) or not all(isinstance(r, dict) and _uint(r.get("image_id"), 64) for r in entries):
        raise SystemExit(f"{bad} (every entry must be an object with an integer image_id)")
    return entries


def _before_the_cut(text: str) -> list:
    decoder, out, i = json.JSONDecoder(), [], text.find("[") + 1
    while 0 < i < len(text):
        while i < len(text) and text[i] in " \n\r\t,":
            i += 1
        if i >= len(text) or text[i] == "]":
            break
        try:
            entry, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            break
        out.append(entry)
    return out
