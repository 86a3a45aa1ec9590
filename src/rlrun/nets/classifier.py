"""A sequence classifier on the transformer's blocks: `Transformer(causal=False,
lm_head=False).hidden` -> mean over the non-padding positions -> dropout -> linear head
(with `hidden > 0`, first a ReLU layer of that width and dropout again, as keras-io's
`Dense(ff_dim, relu)`).

Mean pooling rather than a class token, as in the keras-io Switch Transformer example
(GlobalAveragePooling1D); unlike it, padding (id 0) is left out of the mean, so a short text
is not diluted by its padding. With `mask_padding` (the default) padding is also left out of
attention (as keys) and of the FFNs, so a MoE routes, balances and counts only real tokens;
`mask_padding=False` does what keras-io does (attention and experts see the padding).
"""

from __future__ import annotations

import torch
from torch import nn

from rlrun.nets.transformer import ForwardAux, Transformer


class SequenceClassifier(nn.Module):
    def __init__(self, encoder: Transformer, n_classes: int, dropout: float = 0.1,
                 pad_id: int = 0, hidden: int = 0, mask_padding: bool = True):
        super().__init__()
        self.encoder, self.pad_id, self.mask_padding = encoder, pad_id, mask_padding
        d = encoder.d_model
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden > 0:
            layers += [nn.Linear(d, hidden), nn.ReLU(), nn.Dropout(dropout)]
            d = hidden
        self.head = nn.Sequential(*layers, nn.Linear(d, n_classes))

    def forward(self, idx: torch.Tensor, real: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, ForwardAux]:
        """Class logits (B, C) of token ids (B, T) and the encoder's `ForwardAux` (router
        losses, routing statistics; FLOPs including the head). `real` (B, T) bool marks the
        positions that hold text (default: `idx != pad_id`); attributions pass the text's own
        mask with the padding baseline's ids, so that the baseline is read like the text."""
        if real is None:
            real = idx != self.pad_id
        h, aux = self.encoder.hidden(idx, keep=real if self.mask_padding else None)
        w = real.unsqueeze(-1).to(h.dtype)
        pooled = (h * w).sum(1) / w.sum(1).clamp(min=1.0)
        logits = self.head(pooled)
        matmul = sum(m.weight.numel() for m in self.head if isinstance(m, nn.Linear))
        return logits, aux._replace(flops=aux.flops + 2 * idx.shape[0] * matmul)

    def num_params(self) -> tuple[int, int]:
        """(total, active per token), as `Transformer.num_params`, plus the head."""
        total, active = self.encoder.num_params()
        extra = sum(p.numel() for p in self.head.parameters())
        return total + extra, active + extra
