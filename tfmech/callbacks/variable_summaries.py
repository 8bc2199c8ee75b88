"""Mean, stddev, max, min and histogram of each model variable over time.

MNIST with summaries attaches the tutorial's ``variable_summaries`` to every
weight and bias; this callback writes the same five summaries per variable
from a v2 loop or from ``Model.fit``. CIFAR-10 draws only a histogram per
variable, tagged by the variable's name (``conv1/weights``):
``statistics=False``.
"""

import collections.abc

from tfmech import summaries
from tfmech.callbacks.base import PeriodicSummary


def _by_path(variables):
    """{path: variable} from a mapping, or from variables keyed by ``.path``."""
    if isinstance(variables, collections.abc.Mapping):
        return dict(variables)
    named = {}
    for variable in variables:
        path = variable.path
        if path in named:
            raise ValueError(f"VariableSummaries: two variables have path {path!r}")
        named[path] = variable
    return named


class VariableSummaries(PeriodicSummary):
    """Writes ``<path>/summaries/{mean,stddev,max,min,histogram}`` per variable,
    or with ``statistics=False`` one histogram tagged ``<path>``.

    Args:
      writer, every_n_steps, on: see ``PeriodicSummary``.
      variables: {path: variable}, e.g. tfmech's canonical
        {"layer1/weights": w, ...}, or a list of variables (keyed by their
        ``.path``). None summarizes the model's trainable variables, keyed by
        ``variable.path`` (``sequential/dense/kernel``): unlike
        ``variable.name`` ("kernel") it is unique within a model and does not
        change between runs. They are looked up at each recording, so a model
        built lazily, after the callback was made, is covered.
      statistics: True for MNIST with summaries' five summaries per
        variable, False for CIFAR-10's single histogram.
    """

    def __init__(self, writer, every_n_steps=1, variables=None, on="train",
                 statistics=True):
        super().__init__(writer, every_n_steps=every_n_steps, on=on)
        self._variables = None if variables is None else _by_path(variables)
        self.statistics = bool(statistics)

    def named_variables(self):
        """The {path: variable} this callback summarizes now."""
        if self._variables is not None:
            return self._variables
        model = self.require_model("variables=None (summarize the model's variables)")
        return _by_path(model.trainable_variables)

    def summary_tensors(self, logs):
        self.named_variables()  # a clear error now if there are none
        return None  # read in the write's function: model_tensors

    def model_tensors(self):
        return dict(self.named_variables())

    def model_tensors_key(self):
        # The variables are captured by the traced function: another set
        # (a layer frozen between two fits) is traced anew.
        return tuple((path, id(variable))
                     for path, variable in self.named_variables().items())

    def write_tensors(self, step, tensors):
        if self.statistics:
            summaries.variable_summaries_of(tensors, step)
        else:
            summaries.histograms(tensors, step)
