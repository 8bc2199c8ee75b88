"""The documents a reader follows: short README, valid links, no machine paths.

README.md, CONTRIBUTING.md and docs/ are checked as a reader on GitHub and
on the documentation site (mkdocs.yml) meets them: the README stays short,
every relative link leads to a file of the repository (and a ``#anchor`` to
a heading of it, under GitHub's and MkDocs' spelling of the heading), every
``python -m`` module and ``python scripts/...`` script a document tells the
reader to run exists, and no document names a path of the machine it was
written on or an internal tracker number. The last tests build the site with
``mkdocs build --strict`` (the ``docs`` extra) and show that a broken link
fails it.
"""

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import unicodedata

import pytest

from tests.conftest import REPO

README_MAX_LINES = 200
DOCUMENTS = sorted([REPO / "README.md", REPO / "CONTRIBUTING.md",
                    *(REPO / "docs").rglob("*.md"),
                    *(REPO / "tutorials").glob("*.md")])
# A path of a particular machine, or a tracker number.
FORBIDDEN = re.compile(r"/work/|shared/data|\bissues? #?[0-9]", re.IGNORECASE)
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?"
                  r"(?:\s+\"[^\"]*\")?\s*\)")
RUN_MODULE = re.compile(r"\bpython3? -m ([A-Za-z_][\w.]*)")
RUN_SCRIPT = re.compile(r"\bpython3? ((?:scripts|benchmarks)/[\w/]+\.py)")
CI_SCRIPT = re.compile(r"(?<![\w/])\.ci/([a-z_]+)\b")


def relative(path):
    return path.relative_to(REPO).as_posix()


def prose_lines(path):
    """(line number, text) of the lines outside code: fenced blocks,
    indented blocks and HTML comments are dropped, code spans blanked."""
    lines, fenced, comment, previous_blank = [], False, False, True
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        if comment or stripped.startswith("<!--"):
            comment = "-->" not in stripped
            continue
        if line.startswith("    ") and previous_blank:
            continue  # an indented code block (it ends at a blank line)
        previous_blank = not stripped or (previous_blank and
                                          line.startswith("    "))
        lines.append((number, re.sub(r"`[^`]*`", "``", line)))
    return lines


def links(path):
    """(line number, target) of every Markdown link and image of ``path``."""
    return [(number, match.group(1)) for number, text in prose_lines(path)
            for match in LINK.finditer(text)]


def github_slug(heading):
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def mkdocs_slug(heading):
    """Python-Markdown's toc slugify, as MkDocs uses it."""
    text = unicodedata.normalize("NFKD", heading).encode(
        "ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def headings(path):
    """The headings of a Markdown file, inline code marks removed."""
    found, fenced = [], False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            found.append(line.lstrip("#").strip().replace("`", ""))
    return found


def test_readme_is_short():
    count = len((REPO / "README.md").read_text().splitlines())
    assert count <= README_MAX_LINES, (
        f"README.md has {count} lines, at most {README_MAX_LINES}: move "
        f"details to a page in docs/ and link it")


def test_the_documents_are_there():
    names = {relative(path) for path in DOCUMENTS}
    assert {"README.md", "CONTRIBUTING.md", "docs/binaries.md",
            "docs/callbacks.md", "docs/migration_tools.md", "docs/faults.md",
            "docs/docker.md", "docs/figures.md",
            "docs/performance.md"} <= names


@pytest.mark.parametrize("path", DOCUMENTS, ids=relative)
def test_no_machine_path_or_tracker_number(path):
    found = [f"{relative(path)}:{number}: {line.strip()}"
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if FORBIDDEN.search(line)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("path", DOCUMENTS, ids=relative)
def test_relative_links_lead_to_files_and_headings(path):
    broken = []
    for number, target in links(path):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # http:, https:, mailto:
        file_part, _, anchor = target.partition("#")
        where = f"{relative(path)}:{number}: {target}"
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.is_relative_to(REPO):
            broken.append(f"{where} (leaves the repository)")
        elif not linked.exists():
            broken.append(f"{where} (no such file)")
        elif anchor and linked.suffix == ".md":
            found = headings(linked)
            if (anchor not in {github_slug(h) for h in found} or
                    anchor not in {mkdocs_slug(h) for h in found}):
                broken.append(f"{where} (no heading with that anchor on "
                              f"GitHub and in the site)")
    assert not broken, "\n".join(broken)


def test_the_link_check_sees_links_and_skips_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("See [a](a.md) and ![b](figures/b.png \"title\").\n"
                    "`[not](a link)`\n\n    [code](block.md)\n\n"
                    "```\n[fenced](x.md)\n```\n[c](c.md#part-two)\n")
    assert [target for _, target in links(page)] == [
        "a.md", "figures/b.png", "c.md#part-two"]
    assert github_slug("Part two: `--flag`") == "part-two---flag"
    assert mkdocs_slug("Part two: `--flag`") == "part-two-flag"


def module_exists(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


@pytest.mark.parametrize("path", DOCUMENTS, ids=relative)
def test_what_a_document_says_to_run_exists(path):
    text = path.read_text()
    missing = []
    for module in RUN_MODULE.findall(text):
        module = module.rstrip(".")
        if module in ("pytest", "pip", "venv", "mkdocs"):
            continue
        if module.split(".")[0] in ("tfmech", "benchmarks"):
            if not module_exists(module):
                missing.append(f"python -m {module}")
        else:
            missing.append(f"python -m {module} (not part of tfmech)")
    for script in RUN_SCRIPT.findall(text):
        if not (REPO / script).is_file():
            missing.append(script)
    for name in CI_SCRIPT.findall(text):
        if not (REPO / ".ci" / name).is_file():
            missing.append(f".ci/{name}")
    assert not missing, (f"{relative(path)} runs what does not exist: "
                         f"{sorted(set(missing))}")


# The site itself (needs the docs extra: pip install -e '.[docs]').

SITE_FILES = ("README.md", "CONTRIBUTING.md", "mkdocs.yml", "docs",
              "tutorials", "scripts/mkdocs_hooks.py")


def build_site(repo, site_dir):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: "
                        "pip install -e '.[docs]'")
    pytest.importorskip("mkdocs_jupyter", reason="the docs extra is not "
                        "installed: pip install -e '.[docs]'")
    pytest.importorskip("material", reason="the docs extra is not "
                        "installed: pip install -e '.[docs]'")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
         str(site_dir)], cwd=repo, capture_output=True, text=True,
        timeout=300, env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin",
                          "HOME": str(site_dir.parent)})


def copy_site_sources(target):
    for name in SITE_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def test_the_site_builds_strictly(tmp_path):
    result = build_site(REPO, tmp_path / "site")
    assert result.returncode == 0, result.stderr[-3000:]
    site = tmp_path / "site"
    assert (site / "index.html").is_file()  # README.md is the home page
    for page in ("docs/binaries", "docs/faults", "tutorials/mechanics101",
                 "tutorials/mechanics101-notebook", "CONTRIBUTING"):
        assert (site / page / "index.html").is_file(), page
    assert list((site / "assets" / "stylesheets").glob("*.css"))  # the theme
    home = (site / "index.html").read_text()
    assert 'href="docs/faults/"' in home
    assert 'href="tutorials/mechanics101-notebook/"' in home


def write_notebook(path, markdown):
    """A one-cell notebook (nbformat 4) whose cell is ``markdown``."""
    path.write_text(json.dumps({
        "cells": [{"cell_type": "markdown", "id": "links", "metadata": {},
                   "source": markdown}],
        "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                    "display_name": "Python 3"}},
        "nbformat": 4, "nbformat_minor": 5}))


def test_broken_links_fail_the_site_build_also_in_notebooks(tmp_path):
    """One build of a copy with a broken link in the README and one in a
    notebook: both are named and the build fails. MkDocs writes the pages
    before it aborts, so the notebook's good links can be checked too:
    rewritten to the targets' URLs, as MkDocs does in Markdown pages."""
    repo = tmp_path / "repo"
    copy_site_sources(repo)
    readme = repo / "README.md"
    text = readme.read_text()
    assert "(docs/faults.md)" in text
    readme.write_text(text.replace("(docs/faults.md)", "(docs/fault.md)", 1))
    write_notebook(repo / "tutorials" / "mechanics101.ipynb",
                   "# Links\n\n[the page](mechanics101.md), "
                   "[Faults](../docs/faults.md#exit-status), "
                   "[gone](../docs/gone.md)")
    result = build_site(repo, tmp_path / "site")
    assert result.returncode != 0
    assert ("Doc file 'README.md' contains a link 'docs/fault.md', but the "
            "target is not found") in result.stderr
    assert ("Notebook 'tutorials/mechanics101.ipynb' links "
            "'../docs/gone.md'") in result.stderr
    page = (tmp_path / "site" / "tutorials" / "mechanics101-notebook" /
            "index.html").read_text()
    assert 'href="../mechanics101/"' in page
    assert 'href="../../docs/faults/#exit-status"' in page
