from solutions.ex02_deconstruct import taylor_features


def taylor_linear_attention(q, k, v):
    """BUG: sums S and z over the whole sequence first, so every token also reads the tokens after it."""
    phi_q, phi_k = taylor_features(q), taylor_features(k)  # (B, H, T, F)
    S = phi_k.transpose(-1, -2) @ v  # (B, H, F, Dv): all tokens
    z = phi_k.sum(-2)  # (B, H, F)
    return (phi_q @ S) / (phi_q @ z[..., None])
