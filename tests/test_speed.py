"""compress/speed.py on a tiny model: the measurements run and return sane numbers."""

import torch

from minihybrid.compress import QuantScheme, quantize_model
from minihybrid.compress.speed import decode_rates, forward_costs, linear_costs, linear_share, prefill_rates
from tests.test_modules import tiny_model


def test_rates_costs_and_shares():
    models = {"fp32": tiny_model(), "int4": quantize_model(tiny_model(), QuantScheme(4, 32))}
    prompt = torch.randint(0, 64, (1, 8))
    for rates in (decode_rates(models, prompt, 4, repeats=1), prefill_rates(models, prompt, repeats=1)):
        assert set(rates) == {"fp32", "int4"} and all(r > 0 for r in rates.values())
    costs = forward_costs(models["int4"], prompt, ks=range(1, 4), repeats=1)
    assert list(costs) == [1, 2, 3] and costs[1] == 1.0 and all(c > 0 for c in costs.values())
    linears = linear_costs(models["int4"], ks=range(1, 4), repeats=1)
    assert list(linears) == [1, 2, 3] and linears[1] == 1.0 and all(c > 0 for c in linears.values())
    share = linear_share(models["fp32"], prompt, 4)
    assert 0 < share["linear_s"] < share["step_s"] and 0 < share["other_share"] < 1


