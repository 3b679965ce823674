"""The two decodings of variable-length batches: per row (default) and the official padded batch + crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def test_padded_decoding_is_the_official_formula(tiny_momask):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 64, (3, 12, 3), generator=g)
    lens = torch.tensor([3, 12, 7])
    for b, n in enumerate(lens.tolist()):
        ids[b, n:] = -1
    official = tiny_momask.decode_padded(ids, lens)
    per_row = tiny_momask.decode_by_length(ids, lens)
    vq, mean, std = tiny_momask.vq, tiny_momask.mean, tiny_momask.std
    with torch.no_grad():
        for b, n in enumerate(lens.tolist()):
            # official: the row padded with -1 (zero latents) to the batch length, decoded, cropped to 4n frames
            padded = vq.decoder(vq.quantizer.dequantize(ids[b : b + 1]).permute(0, 2, 1)).permute(0, 2, 1)
            torch.testing.assert_close(official[b], (padded[0] * std + mean)[: 4 * n])
            alone = vq.decoder(vq.quantizer.dequantize(ids[b : b + 1, :n]).permute(0, 2, 1)).permute(0, 2, 1)
            torch.testing.assert_close(per_row[b], alone[0] * std + mean)
            assert official[b].shape == per_row[b].shape == (4 * n, 263)
    torch.testing.assert_close(official[1], per_row[1])                     # the longest row: no padding
    assert not torch.allclose(official[0], per_row[0], atol=1e-4)           # short rows see the zero latents


def test_generate_decode_option(tiny_momask):
    texts, lengths = ["a person walks", "someone jumps"], [16, 64]
    per_row = tiny_momask.generate(texts, lengths=lengths, seeds=[1, 2])
    official = tiny_momask.generate(texts, lengths=lengths, seeds=[1, 2], decode="official")
    assert [m.length for m in official] == [16, 64]
    np.testing.assert_allclose(official[1].features, per_row[1].features, atol=1e-5)
    assert not np.allclose(official[0].features, per_row[0].features, atol=1e-4)
    alone = tiny_momask.generate(texts[:1], lengths=lengths[:1], seeds=[1], decode="official")
    np.testing.assert_allclose(alone[0].features, per_row[0].features, atol=1e-5)  # no neighbour, no padding
    with pytest.raises(ValueError, match="decode"):
        tiny_momask.generate(texts, lengths=lengths, decode="padded")
