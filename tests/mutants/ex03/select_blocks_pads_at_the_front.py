import torch


def select_blocks(scores, q_pos, *, block_size, init_blocks, window, topk):
    """BUG: the left-over slots become -1 before sorting, so the -1 padding comes first."""
    n_blocks = scores.shape[-1]
    block = torch.arange(n_blocks, device=scores.device)[None, :]
    own = torch.div(q_pos, block_size, rounding_mode="floor")[:, None]
    forced = (block < init_blocks) | ((block >= own - window // block_size) & (block <= own))
    ranked = scores.float().masked_fill(forced, float("inf")).masked_fill(block > own, float("-inf"))
    width = min(n_blocks, init_blocks + window // block_size + 1 + topk)
    values, index = ranked.topk(width, dim=-1)
    return index.masked_fill(values == float("-inf"), -1).sort(-1).values.to(torch.int32)
