"""A one-layer convolutional LSTM (Shi et al. 2015), built from Conv2d.

Built from Conv2d rather than cuDNN's RNN so that gradient explanations work in
eval mode (cuDNN refuses RNN backward outside training).
"""

from __future__ import annotations

import torch
from torch import nn


class ConvLSTM(nn.Module):
    """All four gates from one convolution over [input, hidden]; zero initial state."""

    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel_size,
                               padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, h, w) -> hidden states (B, T, hidden, h, w)."""
        b, t, _, hh, ww = x.shape
        h = x.new_zeros(b, self.hidden, hh, ww)
        c = torch.zeros_like(h)
        states = []
        for step in range(t):
            i, f, o, g = self.gates(torch.cat([x[:, step], h], dim=1)).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            states.append(h)
        return torch.stack(states, dim=1)
