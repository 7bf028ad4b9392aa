"""report.html: written beside a replay's outputs before summary.json, standing alone (plots embedded,
nothing fetched), and a what-if comparison linking each scenario's report."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from service.cli import main
from service.reports.html import tier_rows, write_replay_report
from tests.support.pages import references


def _replay(fixtures: Path, out: Path, *extra: str) -> dict:
    assert main(["replay", "--trace", str(fixtures / "philly_small.csv"), "--fleet", "single:2x8", "--policy", "las",
                 "--out", str(out), "--no-progress", *extra]) == 0
    return json.loads((out / "summary.json").read_text())


def test_the_report_is_written_before_the_summary(fixtures: Path, tmp_path: Path) -> None:
    from replay.harness import ReplaySetup, Window
    from replay.inputs import load_fleet_arg, load_specs
    from replay.report import replay_and_report

    out = tmp_path / "run"
    seen = []

    def reporter(summary: dict, pictures: list[str], out_dir: str, label: str) -> str:
        seen.append(sorted(p.name for p in Path(out_dir).iterdir()))
        return write_replay_report(summary, pictures, out_dir, label)

    specs, _ = load_specs(str(fixtures / "philly_small.csv"), "philly", 0, "error")
    replay_and_report(specs, load_fleet_arg("single:2x8", 0), ReplaySetup(scheduler="fifo"), Window(None, None, 0.0),
                      str(out), reporter=reporter)
    assert seen == [["epochs.csv", "jobs.csv"]]
    assert sorted(p.name for p in out.iterdir()) == ["epochs.csv", "jobs.csv", "report.html", "summary.json"]


def test_the_report_holds_the_summary_tiers_and_plots(fixtures: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = _replay(fixtures, out)
    html = (out / "report.html").read_text()
    assert f"<th>jobs measured</th><td class=\"n\">{summary['jobs_submitted']}</td>" in html
    tiers = re.findall(r"<tr><td>(premium|standard|basic)</td><td class=\"n\">(\d+)</td>", html)
    assert tiers == [(t, str(summary["jct_by_tier"][t]["jobs"])) for t in ("premium", "standard", "basic")]
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert [base64.b64decode(e) for e in embedded] == [(out / n).read_bytes() for n in
                                                       ("utilization.png", "jct_cdf.png", "queue.png")]
    assert [r for r in references(html) if not r.startswith("data:")] == []


def test_each_tier_shows_its_ratio_target_and_the_share_reaching_it_without_judging_one_by_the_other() -> None:
    summary = {"jct_by_tier": {"premium": {"jobs": 4, "completed": 4}, "standard": {"jobs": 2, "completed": 1},
                               "basic": {"jobs": 1, "completed": 1}},
               "sla_targets": {"premium": 0.95, "standard": 0.5}, "sla_attainment": {"premium": 0.75, "standard": 0.5}}
    rows = {r["tier"]: (r["target"], r["attainment"]) for r in tier_rows(summary)}
    assert rows == {"premium": ("0.95", "75.0%"), "standard": ("0.50", "50.0%"), "basic": ("-", "-")}
    assert all("judged" not in r for r in tier_rows(summary))


def test_without_plots_the_report_still_stands(fixtures: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _replay(fixtures, out, "--no-plots")
    html = (out / "report.html").read_text()
    assert "<img" not in html and 'id="tiers"' in html


def test_a_whatif_links_each_scenarios_report(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("base: {trace: 'synthetic:0.25', fleet: 'single:1x8', policy: fifo, warmup_days: 0}\n"
                 "scenarios:\n  - name: base\n  - name: bigger one\n"
                 "    add_nodes: [{cluster: cluster-0, accelerator: GPU, devices: 8, count: 1}]\n")
    out = tmp_path / "o"
    assert main(["whatif", str(f), "--jobs", "1", "--out", str(out), "--no-plots"]) == 0
    html = (out / "report.html").read_text()
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', html)
    assert [name for _, name in links] == ["base", "bigger one"]
    for href, _ in links:
        assert (out / href).is_file() and (out / href).parent.joinpath("summary.json").is_file()
