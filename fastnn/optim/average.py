"""Iterate averaging (Polyak and Juditsky 1992; the averaged perceptron's trick): the mean of the parameters over
all optimizer steps, which generalises better than the last iterate of a noisy optimizer.

>>> import numpy as np
>>> from fastnn import nn, optim
>>> rng = np.random.default_rng(0)
>>> model = nn.Linear(3, 2, rng=rng)
>>> x, y = rng.normal(size=(8, 3)).astype(np.float32), rng.integers(0, 2, 8)
>>> opt = optim.SGD(model.parameters(), lr=0.1)
>>> avg = optim.ParamAverage(model.parameters())
>>> model.zero_grad(); nn.softmax_cross_entropy(model(x), y).backward()
>>> avg.before_step(); opt.step(); avg.after_step()       # the Trainer does this with Trainer(average=True)
>>> with avg.applied():                                    # the averaged parameters, for scoring
...     score = float(nn.softmax_cross_entropy(model(x), y).value)

The mean after t steps is over t + 1 values: the starting parameters and those after every step.  Dense
parameters add their value to a float64 sum every step.  A sparse parameter (embeddings, RowGrad gradients) only
changes in the rows its gradient names, so its rows are summed lazily, as the optimizers update them: a row
remembers the step it last changed at, and the steps it stayed constant since are added in one product when it
changes again or when the mean is read.  The cost per step is that of the touched rows, not of the table.
"""
import contextlib

import numpy as np

from fastnn.graph import RowGrad
from fastnn.optim.base import named_params


class ParamAverage:
    """The running mean of `params` ({name: Param} or a Module; trainable ones) over optimizer steps.

    Call before_step() after the gradients are final (after clipping) and before optimizer.step(), and after_step()
    after it.  mean() returns the averages; applied() swaps them into the parameters for a `with` block.
    """

    def __init__(self, params):
        self.params = named_params(params, "ParamAverage", writes=True)
        self.steps = 0
        self.sums = {n: p.value.astype(np.float64) for n, p in self.params.items()}
        # sparse parameters: the step each row's sum is complete up to (its value is constant since)
        self.last = {n: np.zeros(p.value.shape[0], np.int64) for n, p in self.params.items() if p.sparse}
        self._pending = {}

    def restart(self):
        """Start the mean afresh from the parameters' current values (as if they were the starting ones): the Trainer
        calls it when averaging is to begin after the first epochs (average_start)."""
        self.steps = 0
        self.sums = {n: p.value.astype(np.float64) for n, p in self.params.items()}
        for last in self.last.values():
            last[:] = 0
        self._pending = {}

    def before_step(self):
        """Bring the sums of the rows the coming step changes up to date (their value is still the old one)."""
        t = self.steps
        self._pending = {}
        for n, last in self.last.items():
            g = self.params[n].grad
            if isinstance(g, RowGrad):
                rows = g.rows
                # the row held its current value for steps last+1 .. t
                self.sums[n][rows] += (t - last[rows])[:, None] * self.params[n].value[rows]
                last[rows] = t
                self._pending[n] = rows
            elif g is not None:                       # a dense gradient on a sparse parameter: every row changes
                self._catch_up(n)

    def after_step(self):
        """Add the new values: dense parameters whole, sparse ones in the rows the step touched."""
        self.steps += 1
        t = self.steps
        for n, p in self.params.items():
            if n in self.last:
                rows = self._pending.get(n)
                if rows is not None:
                    self.sums[n][rows] += p.value[rows]
                    self.last[n][rows] = t
            else:
                self.sums[n] += p.value
        self._pending = {}

    def _catch_up(self, n):
        last = self.last[n]
        self.sums[n] += (self.steps - last)[:, None] * self.params[n].value
        last[:] = self.steps

    def mean(self):
        """{name: averaged value} (new arrays, in each parameter's dtype).  It first brings every sparse row's sum
        up to date, so that what is later written into the parameters (the mean itself, in applied() or at the end
        of training) does not count as their value during the steps already taken."""
        for n in self.last:
            self._catch_up(n)
        return {n: (self.sums[n] / (self.steps + 1)).astype(p.value.dtype) for n, p in self.params.items()}

    @contextlib.contextmanager
    def applied(self, mean=None):
        """Within the block the parameters hold their averages (`mean`, when the caller has just computed it);
        afterwards their own values again."""
        saved = {n: p.value.copy() for n, p in self.params.items()}
        try:
            for n, v in (self.mean() if mean is None else mean).items():
                self.params[n].value[...] = v
            yield self
        finally:
            for n, p in self.params.items():
                p.value[...] = saved[n]

    def __repr__(self):
        return f"ParamAverage({len(self.params)} params, {self.steps} steps)"

    # -- state (for checkpoints) ---------------------------------------------------------------------------------
    def state_dict(self):
        return {"steps": self.steps, "sums": {n: s.copy() for n, s in self.sums.items()},
                "last": {n: v.copy() for n, v in self.last.items()}}

    def load_state_dict(self, sd):
        where = "ParamAverage.load_state_dict"
        if set(sd["sums"]) != set(self.sums) or set(sd["last"]) != set(self.last):
            raise ValueError(f"{where}: the checkpoint's averaged parameters must be the model's; got "
                             f"{sorted(sd['sums'])} vs {sorted(self.sums)}.")
        for n, s in sd["sums"].items():
            if s.shape != self.sums[n].shape:
                raise ValueError(f"{where}: the sum of '{n}' must have shape {self.sums[n].shape}; got {s.shape}.")
        self.steps = int(sd["steps"])
        self.sums = {n: np.array(s, np.float64) for n, s in sd["sums"].items()}
        self.last = {n: np.array(v, np.int64) for n, v in sd["last"].items()}
