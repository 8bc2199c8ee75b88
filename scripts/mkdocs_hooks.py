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

MkDocs checks and rewrites the links of Markdown pages only; a notebook's
HTML (from mkdocs-jupyter) keeps its links as written. ``on_page_content``
does for a notebook what MkDocs does for a page: a relative link or image
(``mechanics101.md#the-curves``, ``figures/x.png``) is resolved from the
notebook's folder, rewritten to the target's URL in the site, and a target
that is not among the site's files is a warning, so ``--strict`` fails.
"""

import html
import logging
import os
import pathlib
import posixpath
import re
import urllib.parse

from mkdocs.plugins import CombinedEvent, event_priority
from mkdocs.structure.files import File, Files
from mkdocs.utils import get_relative_url

LOG = logging.getLogger("mkdocs.plugins.tfmech_site")

REPO = pathlib.Path(__file__).resolve().parent.parent
# The documents at the repository root, and the folders the site is made of.
ROOT_PAGES = ("README.md", "CONTRIBUTING.md")
FOLDERS = ("docs", "tutorials")
# What a folder may contribute: pages, notebooks and what they show.
SUFFIXES = (".md", ".ipynb", ".png", ".jpg", ".jpeg", ".gif", ".svg")
NOTEBOOK_SUFFIX = "-notebook"
# href="..." and src="..." attributes of a notebook's HTML.
LINK_ATTRIBUTE = re.compile(r'\b(href|src)="([^"]*)"')


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
    """The theme's files, and the repository's documents in place of what
    MkDocs found in docs_dir."""
    docs_dir = pathlib.Path(config["docs_dir"]).resolve()
    kept = [file for file in files
            if file.abs_src_path is None
            or not pathlib.Path(file.abs_src_path).resolve().is_relative_to(
                docs_dir)]
    return Files(kept + [File(path, str(REPO), config["site_dir"],
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


def on_page_content(html_text, page, config, files):
    """Resolves a notebook's relative links as MkDocs resolves a page's."""
    del config
    if not page.file.src_uri.endswith(".ipynb"):
        return html_text
    folder = posixpath.dirname(page.file.src_uri)

    def rewrite(match):
        attribute, target = match.group(1), html.unescape(match.group(2))
        parts = urllib.parse.urlsplit(target)
        if (parts.scheme or parts.netloc or not parts.path
                or parts.path.startswith("/")):
            return match.group(0)  # absolute, same-page anchor, data: URI
        path = posixpath.normpath(posixpath.join(
            folder, urllib.parse.unquote(parts.path)))
        linked = files.get_file_from_path(path)
        if linked is None:
            LOG.warning("Notebook '%s' links '%s', but the target '%s' is not "
                        "among the documentation files.", page.file.src_uri,
                        target, path)
            return match.group(0)
        url = get_relative_url(linked.url, page.url)
        if parts.fragment:
            url += "#" + parts.fragment
        return f'{attribute}="{html.escape(url)}"'

    return LINK_ATTRIBUTE.sub(rewrite, html_text)
