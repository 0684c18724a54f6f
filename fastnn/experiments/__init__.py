"""Experiments that show why RNNs are hard to train, on the adding problem (fastnn.data.adding) and on handwritten
digits read one pixel per step (fastnn.data.digits):

- adding: tanh, sigmoid, ReLU and IRNN networks trained with the same budget (test MSE against steps);
- gradients: ||d loss / d h_t|| against the distance from the loss, before and after training;
- clipping: one exploding setup without clipping, with element-wise and with norm clipping;
- digits: IRNN, ReLU, tanh and LSTM classifiers of 8x8 digits, plain and permuted pixel order, best of a small grid;
- plots: the PNGs (matplotlib optional).

Run them with `fastnn experiment adding|gradients|clipping|digits ...` or bench/rnn_*.py.
"""
import math


def jsonable(obj):
    """obj with non-finite floats replaced by None (strict JSON has no NaN or Infinity) and numpy scalars made
    Python numbers."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and not hasattr(obj, "__len__"):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def save_json(path, obj):
    """Write jsonable(obj) as JSON, atomically."""
    import json

    from fastnn import io
    data = json.dumps(jsonable(obj), allow_nan=False).encode()
    io.atomic_write(path, lambda f: f.write(data))
