"""N-gram baselines on the Brown split (../shared/data/README.md): valid/test perplexity and build/score times.

Protocol: vocabulary = train words seen more than 3 times + <unk> + </s>; every sentence ends with </s>, which is
predicted; perplexity = exp(mean NLL over all predicted tokens).  Deleted-interpolation weights are fitted by EM on
valid, so its valid perplexity is optimistic; compare models on test.

    python bench/ngram_brown.py                    # KN and deleted interpolation, orders 2..5
    python bench/ngram_brown.py --order 3 --json   # one JSON object per line
"""
import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from fastnn.data import Vocab, lm_stream, read_sentences  # noqa: E402
from fastnn.models.ngram import DeletedInterpolation, KneserNey  # noqa: E402

KENLM = {3: 147.7, 5: 146.7}   # KenLM lmplz (modified KN) test perplexity on these files


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "brown"),
                    help="folder with brown.{train,valid,test}.txt (default: ../shared/data/brown from the repo)")
    ap.add_argument("--order", type=int, nargs="+", default=[2, 3, 4, 5], help="n-gram orders (default: 2 3 4 5)")
    ap.add_argument("--models", nargs="+", default=["kn", "di", "di-seen"],
                    choices=["kn", "kn-stream", "di", "di-seen"],
                    help="kn: Kneser-Ney with <s>; kn-stream: KN over the continuous stream (bos=False); "
                         "di: deleted interpolation, classes='history'; di-seen: classes='longest_seen'")
    ap.add_argument("--json", action="store_true", help="print one JSON object per result instead of a table")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    paths = {s: os.path.join(args.data, f"brown.{s}.txt") for s in ("train", "valid", "test")}
    for p in paths.values():
        if not os.path.isfile(p):
            ap.error(f"no such file: {p} (set --data)")
    sents = {s: read_sentences(p) for s, p in paths.items()}
    vocab = Vocab.build(sents["train"], min_count=4)
    streams = {s: lm_stream(x, vocab) for s, x in sents.items()}
    t_read = time.perf_counter() - t0
    info = {"vocab": len(vocab), **{f"{s}_tokens": len(x) for s, x in streams.items()}, "read_s": round(t_read, 3)}
    if args.json:
        print(json.dumps(info))
    else:
        print(f"Brown: |V| = {info['vocab']}, predicted tokens train/valid/test = {info['train_tokens']}/"
              f"{info['valid_tokens']}/{info['test_tokens']}; read + encode {t_read:.2f} s")
        print(f"{'model':<24}{'valid ppl':>10}{'test ppl':>10}{'build s':>9}{'score s':>9}  note")

    makers = {
        "kn": lambda n: KneserNey(n),
        "kn-stream": lambda n: KneserNey(n, bos=False),
        "di": lambda n: DeletedInterpolation(n),
        "di-seen": lambda n: DeletedInterpolation(n, classes="longest_seen"),
    }
    V, eos = len(vocab), vocab.eos_id
    for name in args.models:
        for n in args.order:
            lm = makers[name](n)
            t0 = time.perf_counter()
            if name.startswith("di"):
                lm.fit(streams["train"], V, eos, valid=streams["valid"])
            else:
                lm.fit(streams["train"], V, eos)
            t_build = time.perf_counter() - t0
            t0 = time.perf_counter()
            ppl_valid = lm.perplexity(streams["valid"])
            ppl_test = lm.perplexity(streams["test"])
            t_score = (time.perf_counter() - t0) / 2          # per file
            row = {"model": name, "order": n, "valid_ppl": round(ppl_valid, 3), "test_ppl": round(ppl_test, 3),
                   "build_s": round(t_build, 3), "score_s_per_file": round(t_score, 3)}
            note = ""
            if name == "kn":
                row["discounts"] = lm.discounts[:, 1:].round(4).tolist()
                if n in KENLM:
                    note = f"KenLM {KENLM[n]} ({100 * (ppl_test / KENLM[n] - 1):+.2f}%)"
            elif name.startswith("di"):
                row["em_iterations"] = len(lm.em_loglik) - 1
                note = f"EM {row['em_iterations']} it. (weights fit on valid)"
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(f"{name + ' n=' + str(n):<24}{ppl_valid:>10.2f}{ppl_test:>10.2f}{t_build:>9.2f}{t_score:>9.2f}"
                      f"  {note}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
