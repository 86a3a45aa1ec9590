"""A sequence classifier on the transformer's blocks: `Transformer(causal=False,
lm_head=False).hidden` -> mean over the non-padding positions -> dropout -> linear head
(with `hidden > 0`, first a ReLU layer of that width and dropout again, as keras-io's
`Dense(ff_dim, relu)`).

Mean pooling rather than a class token, as in the keras-io Switch Transformer example
(GlobalAveragePooling1D); unlike it, padding (id 0) is left out of the mean, so a short text
is not diluted by its padding. Attention itself still sees the padding positions (keras-io
does not mask them either): they carry a learned embedding and no information.
"""

from __future__ import annotations

import torch
from torch import nn

from rlrun.nets.transformer import ForwardAux, Transformer


class SequenceClassifier(nn.Module):
    def __init__(self, encoder: Transformer, n_classes: int, dropout: float = 0.1,
                 pad_id: int = 0, hidden: int = 0):
        super().__init__()
        self.encoder, self.pad_id = encoder, pad_id
        d = encoder.d_model
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden > 0:
            layers += [nn.Linear(d, hidden), nn.ReLU(), nn.Dropout(dropout)]
            d = hidden
        self.head = nn.Sequential(*layers, nn.Linear(d, n_classes))

    def forward(self, idx: torch.Tensor) -> tuple[torch.Tensor, ForwardAux]:
        """Class logits (B, C) of token ids (B, T) and the encoder's `ForwardAux` (router
        losses, routing statistics; FLOPs including the head)."""
        h, aux = self.encoder.hidden(idx)
        keep = (idx != self.pad_id).unsqueeze(-1).to(h.dtype)
        pooled = (h * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        logits = self.head(pooled)
        matmul = sum(m.weight.numel() for m in self.head if isinstance(m, nn.Linear))
        return logits, aux._replace(flops=aux.flops + 2 * idx.shape[0] * matmul)

    def num_params(self) -> tuple[int, int]:
        """(total, active per token), as `Transformer.num_params`, plus the head."""
        total, active = self.encoder.num_params()
        extra = sum(p.numel() for p in self.head.parameters())
        return total + extra, active + extra
