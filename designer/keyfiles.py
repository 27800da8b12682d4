"""Where a local installation keeps its keys: apart from the data folder (SPEC §9).

The database and the key that decrypts its secrets must not travel together: a copy of the data
folder (a backup, a bug report) would otherwise carry both. Older installations kept the keys in
the data folder; ``locate`` moves such a key to the key folder once, saying so, so `make run`
keeps working. Imported by settings.py, so nothing here needs Django.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def _say(message: str) -> None:
    print(f"Mailwright: {message}", file=sys.stderr)


def locate(name: str, key_dir: Path, data_dir: Path) -> Path:
    """The file ``name`` in ``key_dir``, moved there first from ``data_dir`` if it is only there.

    When the move fails (a read-only data folder, say) the old file is used where it is, with a
    message asking to move it: refusing to start would lock the installation out of its secrets.
    """
    new, old = key_dir / name, data_dir / name
    if new.exists() or not old.exists() or new.resolve() == old.resolve():
        return new
    try:
        key_dir.mkdir(parents=True, exist_ok=True)
        key_dir.chmod(0o700)
        shutil.move(old, new)
        new.chmod(0o600)
    except OSError as exc:
        _say(f"could not move {old} to {key_dir} ({exc.strerror or exc}); using it where it is. "
             "Move it there by hand: keys kept next to the database travel with every copy of it.")
        return old
    _say(f"moved {old} to {new}: keys are now kept outside the data folder, so that a copy of "
         "the database does not carry the key that decrypts it (MAILWRIGHT_KEY_DIR chooses the folder).")
    return new


def write_new(path: Path, value: str) -> None:
    """Create a key file readable by its owner only, in a folder only its owner can enter."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    path.write_text(value + "\n")
    path.chmod(0o600)
