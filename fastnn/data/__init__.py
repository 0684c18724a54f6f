"""Data readers and generators: vocabularies, plain text, CoNLL columns, tag schemes, Brown, synthetic tasks.

Submodules: vocab (Vocab), text (plain text, LM streams), conll (CoNLL files, Collobert features, windows),
tags (IOB1/IOB2/IOBES), brown (the Brown LM split), adding (adding problem), synthetic (teacher task),
vectors (word2vec text format).
"""
from fastnn.data.adding import ADDING_BASELINE_MSE, adding
from fastnn.data.brown import brown, brown_splits, write_splits
from fastnn.data.conll import read_conll, windows, write_conll
from fastnn.data.synthetic import teacher
from fastnn.data.tags import chunks, convert
from fastnn.data.text import count_oov, default_data_dir, lm_stream, read_sentences, read_sentences_many
from fastnn.data.vectors import read_vectors, write_vectors
from fastnn.data.vocab import Vocab

__all__ = ["Vocab", "read_sentences", "read_sentences_many", "lm_stream", "count_oov", "default_data_dir",
           "read_conll", "write_conll", "windows", "chunks", "convert", "brown", "brown_splits", "write_splits",
           "adding", "ADDING_BASELINE_MSE", "teacher", "read_vectors", "write_vectors"]
