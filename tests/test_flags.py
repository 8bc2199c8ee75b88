"""tfmech.cli.flags' output-directory check, in process (the binaries' own
one-line errors are tested end to end in test_binaries.py)."""

import errno
import os

import pytest
from absl.testing import flagsaver

from tfmech.cli import flags as tfmech_flags

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
        f"prog: error: --test_output_dir {target} is a file, not a directory")
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


def test_a_failed_download_names_data_dir_and_removes_what_it_created(
        tmp_path):
    """A mistyped --data_dir that sends the binary downloading: one line
    naming the flag, the directory and the download's error; the
    directories made for the download are gone again, and a file the
    download already verified stays."""
    from tfmech.data.download import DownloadError
    kept = tmp_path / "kept"
    kept.mkdir()
    for data_dir, leave_a_file in ((tmp_path / "typo" / "mnist", False),
                                   (kept / "mnist", True)):
        with pytest.raises(SystemExit) as exit_info:
            with tfmech_flags.downloads_into_data_dir("prog", "MNIST",
                                                      str(data_dir)):
                data_dir.mkdir(parents=True)
                if leave_a_file:
                    (data_dir / "train-images-idx3-ubyte.gz").write_bytes(
                        b"verified")
                raise DownloadError("http://127.0.0.1:9/t10k-labels",
                                    "could not connect: refused")
        assert str(exit_info.value) == (
            f"prog: error: --data_dir {data_dir} lacks MNIST and downloading "
            f"it failed: http://127.0.0.1:9/t10k-labels: could not connect: "
            f"refused")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    assert (kept / "mnist" / "train-images-idx3-ubyte.gz").read_bytes() == (
        b"verified")
