"""The text demo networks: a BiLSTM and a small Transformer encoder over token ids, both with masked pooling.

Both take int64 ids (n, L) with PAD = `pad_id` after the last token and return class logits (n, k). Padding is
masked out of the pooling, so a document's prediction does not depend on how much padding follows it.
"""

from __future__ import annotations

import torch
from torch import nn


class BiLSTMClassifier(nn.Module):
    """Embedding → 1-layer bidirectional LSTM → max over the document's positions → linear."""

    def __init__(self, vocab_size: int, n_classes: int, pad_id: int, embed_dim: int = 48, hidden: int = 48):
        super().__init__()
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        valid = (ids != self.pad_id).unsqueeze(-1)
        states, _ = self.lstm(self.embedding(ids))
        pooled = states.masked_fill(~valid, -1e4).amax(dim=1)
        return self.head(pooled)


class TransformerClassifier(nn.Module):
    """Embedding + learned positions → 2 `nn.TransformerEncoder` layers (PAD masked) → mean over tokens → linear."""

    def __init__(self, vocab_size: int, n_classes: int, pad_id: int, max_length: int, embed_dim: int = 64,
                 heads: int = 4, layers: int = 2):
        super().__init__()
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.positions = nn.Parameter(torch.zeros(1, max_length, embed_dim))
        layer = nn.TransformerEncoderLayer(embed_dim, heads, dim_feedforward=2 * embed_dim, dropout=0.1,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(embed_dim, n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pad = ids == self.pad_id
        x = self.embedding(ids) + self.positions[:, : ids.shape[1]]
        x = self.encoder(x, src_key_padding_mask=pad)
        valid = (~pad).unsqueeze(-1).to(x.dtype)
        pooled = (x * valid).sum(dim=1) / valid.sum(dim=1).clamp_min(1.0)
        return self.head(pooled)
