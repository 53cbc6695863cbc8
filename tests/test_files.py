"""Atomic outputs: staging folders, stale leftovers, what may be replaced."""

import os
import subprocess
import sys

import pytest

from keras_tl.files import check_replaceable, restore_interrupted, write_folder


def _write(text):
    def write(staging):
        with open(os.path.join(staging, "a.txt"), "w") as f:
            f.write(text)

    return write


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "out"
    write_folder(target, _write("one"))
    assert (target / "a.txt").read_text() == "one"

    def fail(staging):
        _write("two")(staging)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_folder(target, fail)
    assert (target / "a.txt").read_text() == "one"
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no staging left


def test_staging_left_by_a_killed_process_is_removed(tmp_path):
    target = tmp_path / "export"
    # A process that dies (os._exit: no cleanup) while writing.
    code = (
        "import os, sys; from keras_tl.files import write_folder\n"
        "write_folder(sys.argv[1], lambda staging: os._exit(9))\n"
    )
    process = subprocess.run([sys.executable, "-c", code, str(target)])
    assert process.returncode == 9
    left = [n for n in os.listdir(tmp_path) if n.startswith(".export.tmp-")]
    assert len(left) == 1 and not target.exists()
    # Another target's staging, and one whose process is alive, stay.
    alive = tmp_path / ".export.tmp-alive"
    alive.mkdir()
    (alive / ".owner-pid").write_text(str(os.getppid()))
    other = tmp_path / ".other.tmp-x"
    other.mkdir()
    # This process's id on a folder it is not writing: an earlier process's.
    reused = tmp_path / ".export.tmp-reused"
    reused.mkdir()
    (reused / ".owner-pid").write_text(str(os.getpid()))
    write_folder(target, _write("new"))
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["export", ".export.tmp-alive", ".other.tmp-x"]
    )


def test_a_folder_moved_aside_by_a_killed_process_is_put_back(tmp_path):
    # Killed between its two renames: the old folder aside, none in place.
    target = tmp_path / "export"
    write_folder(target, _write("old"))
    code = (
        "import os, sys; from keras_tl import files\n"
        "real = os.replace\n"
        "def replace(a, b):\n"
        "    real(a, b)\n"
        "    if b.endswith('previous'): os._exit(9)\n"
        "files.os.replace = replace\n"
        "files.write_folder(sys.argv[1], lambda staging: None)\n"
    )

    def killed():
        process = subprocess.run([sys.executable, "-c", code, str(target)])
        assert process.returncode == 9 and not target.exists()

    killed()
    # The check a caller makes before its work puts it back, so that an
    # output written without overwrite is refused then, not hours later.
    check_replaceable(target, "a.txt", "an output")
    assert (target / "a.txt").read_text() == "old"
    assert not [n for n in os.listdir(tmp_path) if ".old-" in n]
    # A write that replaces it anyway replaces it whole.
    killed()
    write_folder(target, _write("new"))
    assert (target / "a.txt").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["export"]
    assert not restore_interrupted(target)  # nothing left to put back


def test_an_owner_file_left_in_a_finished_folder_is_removed(tmp_path):
    # Killed after moving the finished folder in, before removing the
    # owner file: the next check of that path removes it.
    target = tmp_path / "export"
    code = (
        "import os, sys; from keras_tl import files\n"
        "real = os.remove\n"
        "def remove(p):\n"
        "    if p.endswith('.owner-pid'): os._exit(9)\n"
        "    real(p)\n"
        "files.os.remove = remove\n"
        "def write(staging):\n"
        "    open(os.path.join(staging, 'a.txt'), 'w').write('new')\n"
        "files.write_folder(sys.argv[1], write)\n"
    )
    process = subprocess.run([sys.executable, "-c", code, str(target)])
    assert process.returncode == 9
    owner = target / ".owner-pid"
    dead = owner.read_text()
    # A live writer's file is its own to remove.
    owner.write_text(str(os.getppid()))
    check_replaceable(target, "a.txt", "an output")
    assert owner.exists()
    owner.write_text(dead)
    check_replaceable(target, "a.txt", "an output")
    assert sorted(os.listdir(target)) == ["a.txt"]
    assert (target / "a.txt").read_text() == "new"


def test_a_new_staging_folder_without_its_owner_file_is_left(tmp_path):
    # Another writer between creating its folder and writing its pid.
    other = tmp_path / ".export.tmp-new"
    other.mkdir()
    write_folder(tmp_path / "export", _write("x"))
    assert other.exists()
    old = 2 * 3600
    os.utime(other, (other.stat().st_atime - old, other.stat().st_mtime - old))
    write_folder(tmp_path / "export", _write("y"))
    assert not other.exists()


@pytest.mark.parametrize(
    "make, replaceable",
    [
        (lambda p: p.mkdir(), True),  # empty folder
        (lambda p: (p.mkdir(), (p / "saved_model.pb").write_bytes(b"")), True),
        (lambda p: (p.mkdir(), (p / "thesis.tex").write_text("x")), False),
        (lambda p: p.write_text("notes"), False),
    ],
)
def test_only_what_keras_tl_wrote_is_replaced(tmp_path, make, replaceable):
    path = tmp_path / "target"
    make(path)
    if replaceable:
        check_replaceable(path, "saved_model.pb", "a SavedModel")
    else:
        with pytest.raises(FileExistsError, match="not a SavedModel"):
            check_replaceable(path, "saved_model.pb", "a SavedModel")
