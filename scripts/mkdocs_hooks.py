"""MkDocs hooks: the documentation site takes its pages from the repository.

The site is made of the files a reader opens on GitHub: README.md (the home
page), CONTRIBUTING.md, docs/ and tutorials/ (pages, notebooks, figures).
MkDocs wants all pages under one ``docs_dir`` that is not the directory of
mkdocs.yml, so instead of copying or symlinking, ``on_files`` replaces the
files MkDocs found in ``docs_dir`` with these, each under its path in the
repository. Every relative link therefore means the same file on GitHub and
in the site, and MkDocs checks it (``mkdocs build --strict``): a link to a
missing file or anchor fails the build. README.md becomes index.html, as
MkDocs does for a README without an index.md beside it.

A tutorial's page (``mechanics101.md``) and its notebook
(``mechanics101.ipynb``, rendered by mkdocs-jupyter) would both become
``tutorials/mechanics101/``; the notebook is published as
``tutorials/mechanics101-notebook/`` instead. Links name the source file
(``mechanics101.ipynb``), so the URL is MkDocs' business alone.
"""

import os
import pathlib
import posixpath

from mkdocs.plugins import CombinedEvent, event_priority
from mkdocs.structure.files import File, Files

REPO = pathlib.Path(__file__).resolve().parent.parent
# The documents at the repository root, and the folders the site is made of.
ROOT_PAGES = ("README.md", "CONTRIBUTING.md")
FOLDERS = ("docs", "tutorials")
# What a folder may contribute: pages, notebooks and what they show.
SUFFIXES = (".md", ".ipynb", ".png", ".jpg", ".jpeg", ".gif", ".svg")
NOTEBOOK_SUFFIX = "-notebook"


def site_sources():
    """The repository paths (posix, relative to the root) of the site."""
    paths = [name for name in ROOT_PAGES if (REPO / name).is_file()]
    for folder in FOLDERS:
        for path in sorted((REPO / folder).rglob("*")):
            relative = path.relative_to(REPO)
            if (path.is_file() and path.suffix.lower() in SUFFIXES
                    and not any(part.startswith(".") for part in relative.parts)):
                paths.append(relative.as_posix())
    return paths


@event_priority(100)  # before mkdocs-jupyter turns notebooks into pages
def _files_from_the_repository(files, config):
    del files  # what MkDocs found in docs_dir: replaced by the repository's
    return Files([File(path, str(REPO), config["site_dir"],
                       config["use_directory_urls"])
                  for path in site_sources()])


@event_priority(-100)  # after mkdocs-jupyter
def _notebook_pages_beside_their_pages(files, config):
    """Publishes each notebook page under ``<stem>-notebook``."""
    for file in files:
        if not (file.src_uri.endswith(".ipynb")
                and file.is_documentation_page()):
            continue
        parent, name = posixpath.split(file.src_uri)
        stem = posixpath.splitext(name)[0] + NOTEBOOK_SUFFIX
        if config["use_directory_urls"]:
            dest = posixpath.join(parent, stem, "index.html")
            url = posixpath.join(parent, stem) + "/"
        else:
            dest = url = posixpath.join(parent, stem + ".html")
        file.dest_uri = dest
        file.dest_path = dest
        file.url = url
        file.abs_dest_path = os.path.normpath(
            os.path.join(config["site_dir"], dest))
    return files


# A hooks module has one attribute per event; this one runs both functions,
# each at its own priority.
on_files = CombinedEvent(_files_from_the_repository,
                         _notebook_pages_beside_their_pages)
