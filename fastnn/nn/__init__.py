"""Node types of the flow graph (`from fastnn import nn`).

Functional ops take Nodes or arrays and return Nodes: add, sub, mul, scale, sum, mean, concat, split, reshape, take,
narrow, matmul, tanh, sigmoid, hardtanh, softsign, relu, maxout, max_over_time, dropout, linear, embedding, param,
softmax_cross_entropy, hinge, mse.  Layers own Params: Linear, Embedding, CharCNN, Maxout, Dropout, RNN, LSTM,
SoftmaxOutput, ClassSoftmaxOutput (Mikolov et al. 2011's class-factorized softmax).  The linear-chain CRF of the
sentence-level log-likelihood (nn.crf): Transitions, its loss sentence_nll and viterbi decoding.
"""
from fastnn.nn.functional import (add, as_node, concat, dropout, embedding, hardtanh, hinge, linear, matmul,
                                  max_over_time, maxout, mean, mse, mul, narrow, param, relu, reshape, scale, sigmoid,
                                  softmax_cross_entropy, softsign, split, sub, sum, take, tanh)
from fastnn.nn.crf import Transitions, sentence_nll, viterbi
from fastnn.nn.layers import LSTM, RNN, CharCNN, ClassSoftmaxOutput, Dropout, Embedding, Linear, Maxout, SoftmaxOutput

__all__ = ["add", "as_node", "concat", "dropout", "embedding", "hardtanh", "hinge", "linear", "matmul",
           "max_over_time", "maxout", "mean", "mse", "mul", "narrow", "param", "relu", "reshape", "scale", "sigmoid",
           "softmax_cross_entropy", "softsign", "split", "sub", "sum", "take", "tanh", "RNN", "LSTM", "CharCNN",
           "Dropout", "Embedding", "Linear", "Maxout", "SoftmaxOutput", "ClassSoftmaxOutput", "Transitions",
           "sentence_nll", "viterbi"]
