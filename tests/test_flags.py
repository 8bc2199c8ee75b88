"""tfmech.flags' output-directory check, in process (the binaries' own
one-line errors are tested end to end in test_binaries.py)."""

import errno
import os

import pytest
from absl.testing import flagsaver

from tfmech import flags as tfmech_flags

tfmech_flags.define_output_dir("test_output_dir", "/tmp/unused",
                               "An output directory for these tests.")


def test_a_directory_another_process_makes_first_is_used(tmp_path,
                                                         monkeypatch):
    """Two workers of one job start on one --train_dir: the one that loses
    the race to mkdir finds the directory made and carries on."""
    target = tmp_path / "train"
    real_makedirs = os.makedirs

    def another_process_wins(path, *args, **kwargs):
        real_makedirs(path)
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)

    monkeypatch.setattr(os, "makedirs", another_process_wins)
    with flagsaver.flagsaver(test_output_dir=str(target)):
        assert tfmech_flags.output_dir_or_exit(
            "prog", "test_output_dir") == str(target)
    assert target.is_dir()


def test_a_file_where_the_directory_should_be_is_one_line(tmp_path):
    target = tmp_path / "train"
    target.write_text("a user's notes")
    with flagsaver.flagsaver(test_output_dir=str(target)):
        with pytest.raises(SystemExit) as exit_info:
            tfmech_flags.output_dir_or_exit("prog", "test_output_dir")
    assert str(exit_info.value) == (
        f"prog: error: --test_output_dir {target} cannot be created: "
        "File exists")
    assert target.read_text() == "a user's notes"


def test_a_missing_directory_is_made_and_with_create_false_removed(tmp_path):
    target = tmp_path / "a" / "b"
    with flagsaver.flagsaver(test_output_dir=str(target)):
        tfmech_flags.output_dir_or_exit("prog", "test_output_dir")
        assert target.is_dir()
        target.rmdir()
        (tmp_path / "a").rmdir()
        tfmech_flags.output_dir_or_exit("prog", "test_output_dir",
                                        create=False)
    assert os.listdir(tmp_path) == []
