"""An independent port of the counting of conlleval.pl (CoNLL-2000 shared task, Erik Tjong Kim Sang, version
2004-01-26), written for the tests from the Perl script, line for line, to check fastnn's scores against it.

It reads the script's input: lines whose last two fields are the gold and the guessed tag, sentences separated by
blank lines (or lines starting with the boundary "-X-").  It does not share code with fastnn.metrics.
"""
import re

_TAG = re.compile(r"^([^-]*)-(.*)$")


def _end_of_chunk(prev_tag, tag, prev_type, type_):
    end = False
    if prev_tag == "B" and tag == "B":
        end = True
    if prev_tag == "B" and tag == "O":
        end = True
    if prev_tag == "I" and tag == "B":
        end = True
    if prev_tag == "I" and tag == "O":
        end = True
    if prev_tag == "E" and tag == "E":
        end = True
    if prev_tag == "E" and tag == "I":
        end = True
    if prev_tag == "E" and tag == "O":
        end = True
    if prev_tag == "I" and tag == "O":
        end = True
    if prev_tag != "O" and prev_tag != "." and prev_type != type_:
        end = True
    if prev_tag == "]" or prev_tag == "[":
        end = True
    return end


def _start_of_chunk(prev_tag, tag, prev_type, type_):
    start = False
    if prev_tag == "B" and tag == "B":
        start = True
    if prev_tag == "I" and tag == "B":
        start = True
    if prev_tag == "O" and tag == "B":
        start = True
    if prev_tag == "O" and tag == "I":
        start = True
    if prev_tag == "E" and tag == "E":
        start = True
    if prev_tag == "E" and tag == "I":
        start = True
    if prev_tag == "O" and tag == "E":
        start = True
    if prev_tag == "O" and tag == "I":
        start = True
    if tag != "O" and tag != "." and prev_type != type_:
        start = True
    if tag == "[" or tag == "]":
        start = True
    return start


def _split(tag):
    m = _TAG.match(tag)
    return (m.group(1), m.group(2)) if m else (tag, "")


def conlleval(lines, boundary="-X-"):
    """{"precision", "recall", "f1", "accuracy" (percent), "correct_chunk", "found_correct", "found_guessed",
    "tokens"} of conlleval's input lines."""
    correct_chunk = found_correct = found_guessed = correct_tags = tokens = 0
    n_features = None
    in_correct = False
    last_correct, last_correct_type, last_guessed, last_guessed_type = "O", "", "O", ""
    for line in lines:
        features = line.split()
        if n_features is None and features:
            n_features = len(features)
        elif features and len(features) != n_features:
            raise ValueError(f"conlleval: unexpected number of features: {len(features)} ({n_features})")
        if not features or features[0] == boundary:
            features = [boundary, "O", "O"]
        guessed, guessed_type = _split(features[-1])
        correct, correct_type = _split(features[-2])
        first_item = features[0]
        if first_item == boundary:
            guessed = "O"
        end_c = _end_of_chunk(last_correct, correct, last_correct_type, correct_type)
        end_g = _end_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type)
        if in_correct:
            if end_c and end_g and last_guessed_type == last_correct_type:
                in_correct = False
                correct_chunk += 1
            elif end_c != end_g or guessed_type != correct_type:
                in_correct = False
        start_c = _start_of_chunk(last_correct, correct, last_correct_type, correct_type)
        start_g = _start_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type)
        if start_c and start_g and guessed_type == correct_type:
            in_correct = True
        if start_c:
            found_correct += 1
        if start_g:
            found_guessed += 1
        if first_item != boundary:
            if correct == guessed and guessed_type == correct_type:
                correct_tags += 1
            tokens += 1
        last_guessed, last_correct = guessed, correct
        last_guessed_type, last_correct_type = guessed_type, correct_type
    if in_correct:                                 # end of input
        correct_chunk += 1
    precision = 100.0 * correct_chunk / found_guessed if found_guessed else 0.0
    recall = 100.0 * correct_chunk / found_correct if found_correct else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "accuracy": 100.0 * correct_tags / tokens if tokens else 0.0, "correct_chunk": correct_chunk,
            "found_correct": found_correct, "found_guessed": found_guessed, "tokens": tokens}
