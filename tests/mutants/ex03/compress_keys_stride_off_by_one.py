def compress_keys(k, kernel_size, stride):
    """BUG: window c starts one key late, at stride c + 1 instead of stride c."""
    b, h, t, d = k.shape
    if t - 1 < kernel_size:
        return k.new_zeros(b, h, 0, d)
    return k[:, :, 1:].unfold(2, kernel_size, stride).mean(-1)
