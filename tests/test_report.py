"""The report survives partial runs: each reproduction saves its own section, REPORT.md is assembled."""

import json
import sys
import types

import pytest

from minihybrid import reproduce
from minihybrid.reproduce import Claim, Section, claims_table
from minihybrid.reproduce.report import assemble, run_all


def fake_reproduction(name: str, value: float):
    """A registered module whose run() draws one figure and reports one claim."""

    def run(fig_dir, seed=0):
        png = fig_dir / f"{name}_thing.png"
        png.write_bytes(b"png")
        claim = Claim(f"{name} is fast", f"{value:.1f}x", "partly", "small scale")
        return Section(f"Module {name}", f"{name} measured {value}.", [(png, f"{name} figure")],
                       data=[{"speedup": value}], claims=[claim])

    return types.SimpleNamespace(run=run)


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(reproduce, "REPRODUCTIONS", ["alpha", "beta"])
    for name, value in (("alpha", 1.5), ("beta", 2.5)):
        monkeypatch.setitem(sys.modules, f"minihybrid.reproduce.{name}", fake_reproduction(name, value))


def test_only_keeps_the_other_sections(registry, tmp_path):
    report = run_all(tmp_path, only=["alpha"]).read_text()
    assert "## Module alpha" in report and "Not yet run: beta" in report
    alpha_section = (tmp_path / "sections" / "alpha.md").read_text()

    report = run_all(tmp_path, only=["beta"]).read_text()
    assert "Not yet run" not in report
    assert report.index("## Module alpha") < report.index("## Module beta")  # registry order
    assert alpha_section.strip() in report  # alpha's section untouched by beta's run
    assert (tmp_path / "sections" / "alpha.md").read_text() == alpha_section


def test_a_section_records_its_run(registry, tmp_path):
    run_all(tmp_path, only=["beta"], seed=3)
    record = json.loads((tmp_path / "sections" / "beta.json").read_text())
    assert record["seed"] == 3 and record["mode"] in ("fast", "full") and record["seconds"] >= 0
    assert record["data"] == [{"speedup": 2.5}] and record["claims"][0]["verdict"] == "partly"
    assert record["figures"] == [["beta_thing.png", "beta figure"]] and "torch" in record["environment"]
    section = (tmp_path / "sections" / "beta.md").read_text()
    assert "![beta figure](figures/beta_thing.png)" in section and "make reproduce ONLY=beta" in section
    assert "| beta is fast | 2.5x | **partly** | small scale |" in section


def test_assembling_with_nothing_run_names_every_section(registry, tmp_path):
    assert "Not yet run: alpha, beta" in assemble(tmp_path).read_text()


def test_claims_table_and_verdicts():
    table = claims_table([Claim("A beats B", "A 1.2x B", "holds", "as in the paper")])
    assert table.splitlines()[0] == "| the paper's claim | measured here | verdict at this scale | why |"
    with pytest.raises(ValueError, match="verdict must be one of holds, partly, does not hold"):
        Claim("x", "y", "maybe", "z")


def test_unknown_reproduction_fails_before_any_work(registry, tmp_path):
    with pytest.raises(ValueError, match="unknown reproduction 'gamma'; registered: alpha, beta"):
        run_all(tmp_path, only=["alpha", "gamma"])
    assert not (tmp_path / "sections").exists()
