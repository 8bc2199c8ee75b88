"""How TF1 variable names become TF2 ones: the user's rules and the built-ins.

A rules file is a list of ordered regular-expression renames applied to
every TF1 model variable's name, each to the result of the one before (as
``sed`` applies its expressions), before any lookup. Two spellings:

* text, one rule a line, ``#`` starts a comment::

      ^layer_(\\d+)/   ->  dense_\\1/
      ^fc/weights$     ->  fc/kernel      transpose

  The pattern is a Python regular expression (``re.sub``), the replacement
  may use ``\\1`` or ``\\g<name>``; a trailing ``transpose`` word also
  transposes the (2-D) value, for a weight stored the other way round;
* JSON: a list of ``["PATTERN", "REPLACEMENT"]`` pairs or of
  ``{"pattern": ..., "replacement": ..., "transpose": false}`` objects.

The built-in rules cover the names TF1 programs wrote by convention. They
are tried only when a name (after the user's rules) matches no TF2
variable, each giving a candidate name:

* ``weights`` -> ``kernel`` and ``biases`` -> ``bias`` (the tutorials'
  ``get_variable`` scopes, ``tf.contrib.slim``'s layers);
* ``<scope>/BatchNorm/<v>`` (slim's batch norm) -> ``<scope>/batch_normalization/<v>``,
  ``<scope>_bn/<v>`` and ``<scope>/<v>`` for ``gamma``, ``beta``,
  ``moving_mean`` and ``moving_variance``; ``<scope>/bn/<v>`` likewise;
* ``tf.layers`` names (``dense/kernel``, ``conv2d_1/bias``,
  ``batch_normalization/moving_mean``) are Keras's own, and match by name.
"""

import dataclasses
import json
import re


class RulesError(ValueError):
    """A rules file that cannot be used; the message is one line naming it."""


@dataclasses.dataclass(frozen=True)
class Rule:
    pattern: str
    replacement: str
    transpose: bool = False
    where: str = ""           # "FILE:LINE", for messages

    def compiled(self):
        return re.compile(self.pattern)


_ARROW = re.compile(r"\s+->\s*|\s*->\s+|->")


def parse_rules(text, source="rules"):
    """The rules of a rules file's text (JSON or the line format above)."""
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        rules = _parse_json(stripped, source)
    else:
        rules = _parse_lines(text, source)
    for rule in rules:
        try:
            regex = rule.compiled()
        except re.error as error:
            raise RulesError(f"{rule.where}: bad regular expression "
                             f"{rule.pattern!r}: {error}") from None
        try:  # a replacement naming a group the pattern lacks
            _check_replacement(regex, rule)
        except re.error as error:
            raise RulesError(f"{rule.where}: bad replacement "
                             f"{rule.replacement!r}: {error}") from None
    return rules


def _check_replacement(regex, rule):
    """Expands the replacement against a fake match of every group."""
    groups = re.findall(r"\\(\d+)|\\g<(\w+)>", rule.replacement)
    for number, name in groups:
        if number and int(number) > regex.groups:
            raise re.error(f"invalid group reference {number}")
        if name and not name.isdigit() and name not in regex.groupindex:
            raise re.error(f"unknown group name {name!r}")
        if name and name.isdigit() and int(name) > regex.groups:
            raise re.error(f"invalid group reference {name}")


def _parse_lines(text, source):
    rules = []
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{source}:{number}"
        body = line.split("#", 1)[0].strip() if not line.lstrip().startswith(
            "#") else ""
        if not body:
            continue
        parts = _ARROW.split(body, maxsplit=1)
        if len(parts) != 2 or not parts[0].strip():
            raise RulesError(f"{where}: expected 'PATTERN -> REPLACEMENT', "
                             f"got {line.strip()!r}")
        pattern = parts[0].strip()
        words = parts[1].split()
        transpose = bool(words) and words[-1] == "transpose"
        if transpose:
            words = words[:-1]
        if len(words) > 1:
            raise RulesError(f"{where}: expected one replacement (and "
                             f"optionally the word 'transpose'), got "
                             f"{parts[1].strip()!r}")
        rules.append(Rule(pattern, words[0] if words else "", transpose, where))
    return rules


def _parse_json(text, source):
    try:
        items = json.loads(text)
    except json.JSONDecodeError as error:
        raise RulesError(f"{source}: not valid JSON: {error}") from None
    if not isinstance(items, list):
        raise RulesError(f"{source}: JSON rules must be a list of "
                         f"[PATTERN, REPLACEMENT] pairs or objects")
    rules = []
    for index, item in enumerate(items):
        where = f"{source}[{index}]"
        if (isinstance(item, list) and len(item) == 2
                and all(isinstance(part, str) for part in item)):
            rules.append(Rule(item[0], item[1], False, where))
        elif (isinstance(item, dict) and isinstance(item.get("pattern"), str)
              and isinstance(item.get("replacement"), str)
              and set(item) <= {"pattern", "replacement", "transpose"}):
            rules.append(Rule(item["pattern"], item["replacement"],
                              bool(item.get("transpose", False)), where))
        else:
            raise RulesError(f"{where}: expected [PATTERN, REPLACEMENT] or "
                             f"{{\"pattern\", \"replacement\", \"transpose\"}}, "
                             f"got {json.dumps(item)}")
    return rules


def read_rules(path):
    """The rules in file ``path``; RulesError naming it if unreadable."""
    try:
        with open(path, encoding="utf-8") as rules_file:
            text = rules_file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise RulesError(f"--map={path}: cannot read the rules file: "
                         f"{getattr(error, 'strerror', None) or error}") from None
    return parse_rules(text, source=path)


def apply_rules(rules, name):
    """(new name, transpose?, [the rules that changed it])."""
    transpose = False
    applied = []
    for rule in rules:
        regex = rule.compiled()
        if regex.search(name):
            name = regex.sub(rule.replacement, name)
            applied.append(rule)
            transpose = transpose or rule.transpose
    return name, transpose, applied


_BATCH_NORM = re.compile(r"^(?:(.*)/)?(BatchNorm|bn)/(gamma|beta|moving_mean|"
                         r"moving_variance)$")
_LEAF = re.compile(r"(^|/)(weights|biases)$")
_KERAS_LEAF = {"weights": "kernel", "biases": "bias"}


def builtin_candidates(name):
    """The names the TF1 conventions suggest for ``name``, best first."""
    candidates = []
    match = _LEAF.search(name)
    if match:
        candidates.append(name[:match.start()] + match.group(1)
                          + _KERAS_LEAF[match.group(2)])
    match = _BATCH_NORM.match(name)
    if match:
        scope, stat = match.group(1), match.group(3)
        if scope:
            candidates += [f"{scope}/batch_normalization/{stat}",
                           f"{scope}_bn/{stat}", f"{scope}/{stat}"]
        else:
            candidates.append(f"batch_normalization/{stat}")
    return [candidate for candidate in candidates if candidate != name]


def leaf_of(name):
    """The last path component, in Keras's words (``weights`` -> ``kernel``)."""
    leaf = name.rsplit("/", 1)[-1]
    return _KERAS_LEAF.get(leaf, leaf)
