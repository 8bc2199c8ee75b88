#!/usr/bin/env python3
"""Takes a PNG screenshot of a TensorBoard dashboard, as a person sees it.

    python scripts/tensorboard_screenshot.py --logdir=/tmp/mnist_logs \\
        --dashboard=scalars --tag_filter=accuracy --out=scalars.png

Starts a real TensorBoard on 127.0.0.1 (a free port) over ``--logdir``,
waits until it lists every run, opens the dashboard in headless Chromium
(through Selenium and chromedriver), waits until every card on the page has
drawn (scalar curves, images loaded, histogram outlines), saves the window
as a PNG and stops TensorBoard. It prints the runs the page lists and the
cards it shows, so a caller knows what the picture holds.

Dashboards: the classic ``scalars``, ``images`` and ``histograms`` (their
charts are SVG and images; the Time Series dashboard draws with WebGL, which
headless Chromium leaves blank), and ``hparams``, the HParams tab's table of
runs (one card per row). ``--tag_filter`` and ``--runs`` are the
dashboard's own tag and run filter boxes (regular expressions).

Needs Chromium and its driver (Debian: ``apt-get install chromium
chromium-driver``; ``$CHROMIUM`` and ``$CHROMEDRIVER`` name others) and
Selenium (``pip install selenium``, in ``tfmech[test]``). Errors are one line
naming the directory, flag or program at fault.
"""

import argparse
import contextlib
import os
import re
import shutil
import sys
import time
import urllib.parse
from typing import NamedTuple

DASHBOARDS = ("scalars", "images", "histograms", "hparams")
# Chromium's executable names, Debian's first.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER_NAMES = ("chromedriver",)

# What the window shows, read from TensorBoard's Polymer elements (they live
# in shadow roots, which CSS selectors do not cross, hence the walk); cards
# scrolled out of the window are not counted. A card is drawn when its chart has its lines (scalars: one per run it plots), its
# image has loaded, or its histogram has an outline.
PAGE_STATE_JS = r"""
const kind = arguments[0];
function all(root, out) {
  for (const el of root.querySelectorAll('*')) {
    out.push(el);
    if (el.shadowRoot) all(el.shadowRoot, out);
  }
  return out;
}
// Shown: laid out and at least partly inside the window, i.e. in the picture.
const shown = el => {
  const r = el.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && r.bottom > 0 && r.right > 0 &&
         r.top < window.innerHeight && r.left < window.innerWidth;
};
const elements = all(document, []);
const named = name => elements.filter(e => e.localName === name && shown(e));
const inside = card => all(card.shadowRoot || card, []);
const drawnPaths = (card, cls) => inside(card).filter(e =>
    e.localName === 'path' && e.classList.contains(cls) &&
    (e.getAttribute('d') || '').length > 1).length;
let cards = [];
if (kind === 'scalars') {
  cards = named('tf-scalar-card').map(c => {
    const runs = (c.dataToLoad || []).map(d => d.run);
    const lines = drawnPaths(c, 'line');
    return {tag: c.tag, runs: runs, drawn: runs.length > 0 && lines >= runs.length};
  });
} else if (kind === 'images') {
  cards = named('tf-image-loader').map(c => ({tag: c.tag, runs: [c.run],
      drawn: inside(c).some(e => e.localName === 'img' && e.complete &&
                                 e.naturalWidth > 0)}));
} else if (kind === 'hparams') {
  // One card per row of the table view: the session group (its trial ID
  // and runs), drawn once its trial ID shows in a cell.
  const grid = named('vaadin-grid')[0];
  const cells = new Set(elements.filter(e =>
      e.localName === 'vaadin-grid-cell-content' && shown(e))
      .map(e => (e.textContent || '').trim()));
  cards = Array.from((grid && grid.items) || []).map(group => ({
      tag: group.name, runs: (group.sessions || []).map(s => s.name),
      drawn: cells.has(group.name)}));
} else {
  cards = named('tf-histogram-loader').map(c => ({tag: c.tag, runs: [c.run],
      drawn: drawnPaths(c, 'outline') > 0}));
}
// TensorBoard's own word that the runs hold nothing for this dashboard.
const noData = elements.some(e => shown(e) && e.children.length === 0 &&
    /^No \w+ data was found/.test((e.textContent || '').trim()));
const selector = named('tf-multi-checkbox')[0];
// The HParams tab has no run selector: its rows' runs are the runs.
const rowRuns = cards.flatMap(card => card.runs);
return {
  noData: noData,
  runs: selector ? Array.from(selector.namesMatchingRegex || []) : rowRuns,
  selected: selector ? Array.from(selector.outSelected || []) : rowRuns,
  cards: cards,
};
"""


class ScreenshotError(Exception):
    """A bad argument, a missing program, or a page that did not draw."""


class Card(NamedTuple):
    tag: str
    runs: tuple
    drawn: bool


class PageState(NamedTuple):
    """What a dashboard shows: the runs its run selector lists, those
    selected, and its cards (one per tag for scalars, per run, tag and
    sample for images and histograms)."""

    runs: tuple
    selected: tuple
    cards: tuple
    no_data: bool = False   # TensorBoard says "No <kind> data was found"

    def all_drawn(self):
        return bool(self.cards) and all(card.drawn for card in self.cards)

    def card_names(self):
        """Each card as ``tag (run, run)``, in page order, without repeats."""
        return list(dict.fromkeys(f"{c.tag} ({', '.join(c.runs)})"
                                  for c in self.cards))


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="tensorboard_screenshot.py", description=__doc__.split("\n\n")[0],
        epilog="Example: " + __doc__.split("\n\n")[1].strip() + "\n\n"
               + __doc__.split("\n\n")[-1].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logdir", required=True,
                        help="the log directory, as tensorboard --logdir takes it")
    parser.add_argument("--out", required=True, help="the PNG file to write")
    parser.add_argument("--dashboard", choices=DASHBOARDS, default="scalars",
                        help="which classic dashboard (default: scalars)")
    parser.add_argument("--tag_filter", default="",
                        help="regular expression in the dashboard's tag filter")
    parser.add_argument("--runs", default="",
                        help="regular expression in the run selector's filter: "
                             "only matching runs are drawn")
    parser.add_argument("--smoothing", type=float, default=0.0,
                        help="scalars' smoothing weight in [0, 1) (default 0: "
                             "the values as written; TensorBoard's own "
                             "default is 0.6)")
    parser.add_argument("--width", type=int, default=1400,
                        help="window width in pixels")
    parser.add_argument("--height", type=int, default=1000,
                        help="window height in pixels")
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds to wait for TensorBoard, then for the "
                             "cards to draw")
    return parser.parse_args(argv)


def check_arguments(args):
    """Every value checked before anything starts, each error naming its
    flag."""
    if not args.out.lower().endswith(".png"):
        raise ScreenshotError(f"--out={args.out} must end in .png")
    directory = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(directory):
        raise ScreenshotError(f"--out={args.out}: directory {directory} does "
                              f"not exist")
    if not 0 <= args.smoothing < 1:
        raise ScreenshotError(f"--smoothing={args.smoothing} must be in [0, 1)")
    for flag in ("width", "height"):
        if not 200 <= getattr(args, flag) <= 8000:
            raise ScreenshotError(f"--{flag}={getattr(args, flag)} must be "
                                  f"200..8000 pixels")
    if args.timeout <= 0:
        raise ScreenshotError(f"--timeout={args.timeout} must be positive")
    if args.dashboard == "hparams":
        for flag in ("tag_filter", "runs"):
            if getattr(args, flag):
                raise ScreenshotError(
                    f"--{flag} filters the scalars, images and histograms "
                    f"dashboards; the hparams dashboard shows every run")
    for flag in ("tag_filter", "runs"):
        try:
            re.compile(getattr(args, flag))
        except re.error as error:
            raise ScreenshotError(f"--{flag}={getattr(args, flag)!r} is not a "
                                  f"regular expression: {error}") from error


def find_runs(logdir, runs_pattern=""):
    """TensorBoard's runs under ``logdir`` (as ``tfmech.tools.event_files`` finds
    them); an error names the directory when there is none, or the
    ``--runs`` filter when it matches none."""
    from tfmech.tools import event_files
    if not os.path.isdir(logdir):
        raise ScreenshotError(f"--logdir {logdir} does not exist or is not a "
                              f"directory")
    runs = list(event_files.find_runs(logdir))
    if not runs:
        raise ScreenshotError(f"--logdir {logdir} holds no event files (no "
                              f"file named *tfevents* in it or below)")
    if runs_pattern and not any(re.search(runs_pattern, r) for r in runs):
        raise ScreenshotError(f"--runs={runs_pattern!r} matches none of the "
                              f"runs under {logdir}: {', '.join(runs)}")
    return runs


def browser_programs():
    """(chromium, chromedriver) paths; a clear error when either, or
    Selenium, is missing. ``$CHROMIUM`` / ``$CHROMEDRIVER`` take
    precedence over PATH."""
    try:
        import selenium  # noqa: F401
    except ImportError as error:
        raise ScreenshotError(f"needs Selenium ({error}): pip install selenium "
                              f"(or pip install -e '.[test]')") from error
    found = []
    for variable, names, package in (("CHROMIUM", CHROMIUM_NAMES, "chromium"),
                                     ("CHROMEDRIVER", CHROMEDRIVER_NAMES,
                                      "chromium-driver")):
        path = os.environ.get(variable)
        if path and not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise ScreenshotError(f"${variable}={path} is not an executable "
                                  f"file")
        path = path or next(filter(None, map(shutil.which, names)), None)
        if not path:
            raise ScreenshotError(
                f"needs {names[0]}: none of {', '.join(names)} is on PATH and "
                f"${variable} is unset; on Debian: apt-get install {package}")
        found.append(path)
    return tuple(found)


@contextlib.contextmanager
def browser(width, height, programs=None):
    """Headless Chromium driven by Selenium, quit on exit. ``--no-sandbox``
    because CI runs as root, where Chromium's sandbox refuses to start;
    background networking off, as it only talks to the local TensorBoard."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = programs or browser_programs()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run",
                     "--force-device-scale-factor=1", "--hide-scrollbars",
                     f"--window-size={width},{height}"):
        options.add_argument(argument)
    try:
        driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    except WebDriverException as error:
        first = (error.msg or str(error)).strip().splitlines()[0]
        raise ScreenshotError(f"{chromedriver} could not start {chromium}: "
                              f"{first}") from error
    try:
        driver.set_window_size(width, height)
        yield driver
    finally:
        driver.quit()


def dashboard_url(base, dashboard, tag_filter="", runs="", smoothing=0.0):
    """The dashboard's address, its filters in the URL fragment where
    TensorBoard keeps them (``tagFilter``, the run selector's
    ``regexInput``, ``_smoothingWeight``)."""
    fragment = [dashboard]
    if tag_filter:
        fragment.append("tagFilter=" + urllib.parse.quote(tag_filter, safe=""))
    if runs:
        fragment.append("regexInput=" + urllib.parse.quote(runs, safe=""))
    if dashboard == "scalars":
        fragment.append(f"_smoothingWeight={smoothing:g}")
    return f"{base}/#{'&'.join(fragment)}"


def page_state(driver, dashboard):
    """The runs and cards the page shows now (see PAGE_STATE_JS)."""
    raw = driver.execute_script(PAGE_STATE_JS, dashboard)
    cards = tuple(Card(c["tag"], tuple(c["runs"]), bool(c["drawn"]))
                  for c in raw["cards"])
    return PageState(tuple(raw["runs"]), tuple(raw["selected"]), cards,
                     bool(raw["noData"]))


def wait_until_drawn(driver, dashboard, timeout_secs, settle_secs=1.5):
    """Polls until the page has cards, all drawn, and nothing has changed
    for ``settle_secs`` (cards appear in batches as their data arrives).
    Raises ScreenshotError naming what is missing at the deadline."""
    deadline = time.monotonic() + timeout_secs
    last, since = None, time.monotonic()
    while True:
        state = page_state(driver, dashboard)
        if state.no_data and not state.cards:
            raise ScreenshotError(
                f"TensorBoard found no {dashboard[:-1]} data on "
                f"{driver.current_url} (its page says so)")
        if state != last:
            last, since = state, time.monotonic()
        elif state.all_drawn() and time.monotonic() - since >= settle_secs:
            return state
        if time.monotonic() > deadline:
            if not state.cards:
                raise ScreenshotError(
                    f"no {dashboard} card appeared on {driver.current_url} in "
                    f"{timeout_secs:g} s (runs listed: "
                    f"{', '.join(state.runs) or 'none'})")
            undrawn = [c.tag for c in state.cards if not c.drawn]
            raise ScreenshotError(
                f"{len(undrawn)} of {len(state.cards)} {dashboard} cards on "
                f"{driver.current_url} did not draw in {timeout_secs:g} s: "
                f"{', '.join(dict.fromkeys(undrawn))}")
        time.sleep(0.25)


def capture(driver, url, dashboard, out, timeout_secs):
    """Loads ``url``, waits for its cards, writes the PNG; returns the
    PageState the picture shows."""
    driver.get(url)
    state = wait_until_drawn(driver, dashboard, timeout_secs)
    if not driver.save_screenshot(out):
        raise ScreenshotError(f"--out={out}: Chromium could not write it")
    return state


def screenshot(args):
    """Everything, in order: checks, TensorBoard, browser, picture."""
    from tfmech.tools import tensorboard_server
    check_arguments(args)
    runs = find_runs(args.logdir, args.runs)
    programs = browser_programs()
    try:
        with tensorboard_server.serving(args.logdir, min_runs=len(runs),
                                        timeout_secs=args.timeout) as base:
            with browser(args.width, args.height, programs) as driver:
                url = dashboard_url(base, args.dashboard, args.tag_filter,
                                    args.runs, args.smoothing)
                return capture(driver, url, args.dashboard, args.out,
                               args.timeout)
    except tensorboard_server.TensorBoardError as error:
        raise ScreenshotError(str(error).splitlines()[0]) from error


def main(argv=None):
    args = parse_args(argv)
    try:
        state = screenshot(args)
    except ScreenshotError as error:
        print(f"tensorboard_screenshot.py: error: {error}", file=sys.stderr)
        return 2
    print(f"Runs listed: {', '.join(state.runs)}")
    print(f"Runs drawn: {', '.join(state.selected)}")
    print(f"{args.dashboard} cards in the picture:")
    for name in state.card_names():
        print(f"  {name}")
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
