"""Data readers and generators: vocabularies, plain text, CoNLL columns, tag schemes, Brown, synthetic tasks."""
from fastnn.data.text import count_oov, lm_stream, read_sentences, read_sentences_many
from fastnn.data.vocab import Vocab

__all__ = ["Vocab", "read_sentences", "read_sentences_many", "lm_stream", "count_oov"]
