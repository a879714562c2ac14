import torch


def select_blocks(scores, q_pos, *, block_size, init_blocks, window, topk):
    """BUG: among equal scores the later block wins."""
    n_blocks = scores.shape[-1]
    block = torch.arange(n_blocks, device=scores.device)[None, :]
    own = torch.div(q_pos, block_size, rounding_mode="floor")[:, None]
    forced = (block < init_blocks) | ((block >= own - window // block_size) & (block <= own))
    ranked = scores.float().masked_fill(forced, float("inf")).masked_fill(block > own, float("-inf"))
    width = min(n_blocks, init_blocks + window // block_size + 1 + topk)
    order = ranked.flip(-1).sort(dim=-1, descending=True, stable=True)
    values, index = order.values[..., :width], n_blocks - 1 - order.indices[..., :width]
    index = index.masked_fill(values == float("-inf"), n_blocks).sort(-1).values
    return index.masked_fill(index == n_blocks, -1).to(torch.int32)
