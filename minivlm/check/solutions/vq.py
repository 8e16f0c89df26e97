"""Solution of lessons/exercises/vq.py, written out in torch."""
import torch


def quantize(z, codebook):
    with torch.no_grad():  # choosing a code has no gradient
        ids = ((z[:, :, None, :] - codebook) ** 2).sum(dim=-1).argmin(dim=-1)  # (B, N): nearest of (B, N, K)
    e = codebook[ids]  # (B, N, D)
    codebook_loss = ((z.detach() - e) ** 2).mean()  # sg(z): moves the codes only
    commitment_loss = ((z - e.detach()) ** 2).mean()  # sg(e): moves the encoder only
    z_q = z + (e - z).detach()  # (B, N, D): e's values, the identity's gradient (straight-through)
    return z_q, ids, codebook_loss, commitment_loss


def perplexity(ids, codes):
    p = torch.bincount(ids.flatten(), minlength=codes) / ids.numel()  # (K,) how often each code is used
    p = p[p > 0]  # 0 log 0 counts as 0
    return torch.exp(-(p * p.log()).sum())
