"""`meridian whatif SCENARIOS.yaml`: replay scenarios (R replications each) in parallel processes and
compare them with 95 % intervals; `--find-min-capacity` searches the least added capacity whose SLA
attainment meets the search's targets."""

from __future__ import annotations

import argparse
import os

MAX_JOBS = 64                  # parallel replay processes
MAX_FILE_BYTES = 16 * 1024 * 1024


def _whatif_layout():
    """What `meridian whatif` writes in `--out` (`replay.staging`): the comparison's files, and a folder per
    scenario (a run's files, replication-r/ folders), never removed as stale: its name is the user's."""
    from replay.report import OUTPUT_FILES
    from replay.staging import Layout

    replication = Layout(files=frozenset(OUTPUT_FILES))
    scenario = Layout(files=frozenset(OUTPUT_FILES), patterns=((r"replication-[0-9]+", replication),))
    return Layout(files=frozenset({"report.html", "comparison.json", "comparison.csv", "intervals.png",
                                   "comparison.png"}), other=scenario)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("whatif", help="compare capacity/policy scenarios by replay (YAML file)")
    p.add_argument("scenarios", help="scenario file (YAML; see README 'Replay and what-if')")
    p.add_argument("--out", default=None, help="folder for per-scenario outputs, report.html and comparison.json/.csv")
    p.add_argument("--jobs", type=int, default=None, help="parallel processes (default: CPU count)")
    p.add_argument("--replications", type=int, default=None, metavar="R",
                   help="replications per scenario and candidate, overriding the file's (1: today's single run)")
    p.add_argument("--find-min-capacity", action="store_true",
                   help="search the least nodes to add (find_min_capacity: in the file) that meet the targets")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run the replays as Ray tasks: 'local' starts Ray on this machine for the command, "
                        "HOST:PORT or 'auto' joins a running cluster (needs the ray extra)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import copy

    from datasets.files import InputError
    from replay.scenarios import ScenarioError, parse_scenarios
    from replay.staging import staged
    from replay.whatif import check_inputs, check_search
    from service.errors import UsageError

    if args.out == "":
        raise UsageError("--out: must not be empty (a folder for the scenarios' outputs and the comparison)")
    workers = args.jobs if args.jobs is not None else (os.cpu_count() or 1)
    if not 1 <= workers <= MAX_JOBS:
        raise UsageError(f"--jobs must be between 1 and {MAX_JOBS}, got {workers}")
    if args.replications is not None and not 1 <= args.replications <= 1000:
        raise UsageError(f"--replications must be in 1..1000, got {args.replications}")
    data = read_yaml(args.scenarios, UsageError)
    try:
        scenarios, search = parse_scenarios(data)
        if args.replications is not None:
            scenarios = [s.model_copy(update={"replications": args.replications}) for s in scenarios]
        check_inputs(scenarios)
        if args.find_min_capacity and search is not None:
            check_search(next(s for s in scenarios if s.name == search.scenario), search)
    except ScenarioError as exc:
        raise UsageError(f"{args.scenarios}: {exc}") from None
    if args.out is None:
        return _run(args, scenarios, search, workers)
    # (a search writes its comparison files at --out and its candidates' folders by their own names)
    check_targets(args.out, [] if args.find_min_capacity else scenarios)
    try:                                # the outputs staged inside --out, moved there once all are written
        with staged(args.out, _whatif_layout()) as stage:
            return _run(copy.copy(args), scenarios, search, workers, stage)
    except InputError as exc:           # before any scenario runs: the comparison must have somewhere to go
        raise UsageError(f"--out {args.out}: {exc}") from None


def check_targets(out: str, scenarios) -> None:
    """Every scenario's folder (and its replications') checked before any scenario runs, making nothing:
    a folder is not a file there, and none of its file names is a folder."""
    from datasets.files import InputError
    from replay.report import OUTPUT_FILES
    from replay.scenarios import COMPARISON_FILES
    from replay.staging import check_target
    from replay.whatif import _safe as scenario_folder
    from service.errors import UsageError

    targets = [(out, COMPARISON_FILES)]
    for sc in scenarios:
        d = os.path.join(out, scenario_folder(sc.name))
        targets += [(d, OUTPUT_FILES)] + [(os.path.join(d, f"replication-{r}"), OUTPUT_FILES)
                                          for r in range(1, sc.replications)]
    for folder, files in targets:
        try:
            check_target(folder, files)
        except InputError as exc:
            raise UsageError(f"--out {folder}: {exc}") from None


def _run(args: argparse.Namespace, scenarios, search, workers: int, out: str | None = None) -> int:
    """The sweep (or the search) on the chosen runner, its files written under `out` (the staging folder)."""
    from replay.runner import local_runner

    args.out = out
    if args.ray is not None:
        return _on_ray(args, lambda runner: _sweep(args, scenarios, search, runner))
    return _sweep(args, scenarios, search, local_runner(workers))


def _on_ray(args: argparse.Namespace, body) -> int:
    """`body(runner)` with the replays as Ray tasks (a Ray runtime started here is stopped after)."""
    import sys

    from replay.ray_runner import RayUnavailable, init_ray, spec_runner
    from service.commands.sweep import progress_printer
    from service.errors import UsageError

    try:
        started = init_ray(args.ray, num_cpus=args.jobs or os.cpu_count() or 1)
    except RayUnavailable as exc:
        raise UsageError(str(exc)) from None
    try:
        return body(spec_runner(args.ray, on_done=progress_printer(None)))
    finally:
        if started:
            import ray

            ray.shutdown()
        sys.stderr.flush()


def _sweep(args: argparse.Namespace, scenarios, search, runner) -> int:
    """Run the scenarios (or the capacity search) through `runner` and write the comparison."""
    from datasets.errors import TraceFormatError
    from datasets.files import InputError
    from replay.checks import ReplayInputError
    from replay.reach import describe
    from replay.runner import RunError
    from replay.whatif import _safe as scenario_folder
    from replay.whatif import run_scenarios, write_comparison
    from service.errors import UsageError
    from service.reports.html import write_comparison_report, write_replay_report
    from service.reports.plots import plot_intervals, write_plots

    try:
        if args.find_min_capacity:
            if search is None:
                raise UsageError(f"{args.scenarios}: --find-min-capacity needs a find_min_capacity: section")
            return _search(args, next(s for s in scenarios if s.name == search.scenario), search, runner)
        rows = run_scenarios(scenarios, args.out, plotter=None if args.no_plots else write_plots, runner=runner,
                             reporter=write_replay_report)
    except RunError as exc:
        raise UsageError(str(exc)) from None
    except (InputError, ReplayInputError, TraceFormatError) as exc:     # raised before that replay's first epoch
        raise UsageError(f"{args.scenarios}: {exc}") from None
    print(comparison_table(rows))
    for s in rows:
        for entry in s.get("outage_reach", []):
            print(f"{s['scenario']}: {describe(entry)}")
    if args.out:
        if not args.no_plots:
            from service.reports.plots import plot_comparison_of_folders

            plot_intervals(rows, os.path.join(args.out, "intervals.png"))
            plot_comparison_of_folders(args.out, f"what-if {os.path.basename(args.scenarios)}: "
                                                 + " vs ".join(s["scenario"] for s in rows))
        # report.html first: comparison.json, written last, says the comparison finished.
        write_comparison_report(comparison_rows(rows), {s.name: f"{scenario_folder(s.name)}/report.html"
                                                        for s in scenarios}, args.out, None)
        write_comparison(args.out, rows, None)
    return 0


def _search(args: argparse.Namespace, sc, search, runner) -> int:
    import sys

    from replay.whatif import find_min_capacity, meets, write_comparison
    from service.reports.html import write_comparison_report
    from service.reports.plots import plot_intervals

    targets = dict(search.attainment_targets)

    def progress(n: int, row: dict) -> None:
        print(f"+{n} nodes: " + ", ".join(attainment_cell(row, t) for t in targets)
              + (" meets" if meets(row, targets) else " misses") + f" ({row['wall_s_total']:.0f} s of replays)",
              file=sys.stderr, flush=True)

    res = find_min_capacity(sc, search, runner=runner, on_row=progress)
    rows = [res.rows[n] for n in sorted(res.rows)]
    print(comparison_table(rows, targets))
    what = f"{search.accelerator} nodes of {search.devices} in {search.cluster}"
    rule = (f"(scenario {sc.name}, per-job SLA ratio targets {dict(sc.sla_targets)}, "
            f"{sc.replications} replication(s), judged by the one-sided 95 % lower bound)"
            if sc.replications > 1 else f"(scenario {sc.name}, per-job SLA ratio targets {dict(sc.sla_targets)}, "
                                        "1 replication: no interval)")
    lines = []
    for b in res.monotonicity_breaks:
        lines.append(f"monotonicity: +{b['from_nodes']} -> +{b['to_nodes']} nodes lowered {b['tier']} attainment "
              f"{b['attainment_from']:.1%} -> {b['attainment_to']:.1%}"
              + (" (significant)" if b["significant"] else " (within the noise)")
              + ("; met, then missed" if b["met_then_missed"] else ""))
    if res.least_nodes is None:
        lines.append(f"not met: up to {search.max_nodes} added {what}, none meets the attainment targets {targets} {rule}")
    else:
        row = res.rows[res.least_nodes]
        lines.append(f"least added capacity meeting the attainment targets {targets}: {res.least_nodes} {what} "
              f"(+{res.least_nodes * search.devices} devices) {rule}")
        lines.append(f"{res.least_nodes} nodes: " + ", ".join(attainment_cell(row, t) for t in targets))
    print("\n".join(lines))
    if args.out:
        if not args.no_plots:
            plot_intervals(rows, os.path.join(args.out, "intervals.png"))
        # report.html first: comparison.json, written last, says the comparison finished.
        write_comparison_report(comparison_rows(rows, targets), {}, args.out, "\n".join(lines))
        answer = None if res.least_nodes is None else {
            t: {"mean": res.rows[res.least_nodes]["sla_attainment"].get(t),
                "ci95": res.rows[res.least_nodes]["sla_attainment_ci95"].get(t),
                "lower95": res.rows[res.least_nodes]["sla_attainment_lower95"].get(t)} for t in targets}
        write_comparison(args.out, rows, {
            "least_nodes": res.least_nodes, "devices_per_node": search.devices, "cluster": search.cluster,
            "accelerator": search.accelerator, "scenario": sc.name, "attainment_targets": targets,
            "targets": targets, "sla_targets": dict(sc.sla_targets), "replications": sc.replications,
            "rule": "lower end of the one-sided 95 % t-interval of the mean attainment >= target",
            "answer": answer, "monotonicity_breaks": res.monotonicity_breaks})
    return 0 if res.least_nodes is not None else 1


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def attainment_cell(row: dict, tier: str) -> str:
    """`standard 99.9 % [99.7, 100.0]` (the interval only with replications)."""
    v = row["sla_attainment"].get(tier)
    ci = (row.get("sla_attainment_ci95") or {}).get(tier)
    return f"{tier} {_pct(v)} %" + (f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "")


def _num(v) -> str:
    """A count: whole as today, one decimal where replications averaged it to a fraction."""
    if v is None:
        return "-"
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"


def _with_ci(v, ci) -> str:
    from service.reports.table import cell
    return cell(v) + (f" [{ci[0]:.0f}, {ci[1]:.0f}]" if ci else "")


def comparison_table(rows: list[dict], targets: dict | None = None) -> str:
    from service.reports.table import render

    return render(comparison_rows(rows, targets))


def comparison_rows(rows: list[dict], targets: dict | None = None) -> list[list[str]]:
    """The comparison as rows of cells, header first (the terminal table and report.html show the same):
    means, with `[lo, hi]` 95 % intervals where there are replications."""
    from replay.whatif import meets
    from service.reports.table import cell

    cols = ["scenario", "devices", "jobs", "done", "mean JCT s", "p99 JCT s", "mean queue s", "util",
            "SLA premium", "SLA standard", "preempt", "wall s"]
    if targets:
        cols.append("meets")
    out = [cols]
    for s in rows:
        att = s.get("sla_attainment", {})
        aci = s.get("sla_attainment_ci95") or {}
        r = [s.get("scenario", s["policy"]), _num(s["devices"]) if s.get("devices") is not None else "",
             _num(s["jobs_submitted"]), _num(s["jobs_completed"]),
             _with_ci(s["avg_jct_s"], s.get("avg_jct_s_ci95")), cell(s["p99_jct_s"]),
             cell(s["avg_queue_s"]), _pct_ci(s["utilization"], s.get("utilization_ci95")),
             _pct_ci(att.get("premium"), aci.get("premium")), _pct_ci(att.get("standard"), aci.get("standard")),
             _num(s["preemptions"]),
             cell(s["wall_s"], "{:.1f}")]
        if targets:
            r.append("yes" if meets(s, targets) else "no")
        out.append(r)
    return out


# YAML aliases share one value among many places: a file of a few hundred bytes can expand to billions of
# values (nested aliases), or to no end (an alias inside its own anchor), in every pass that walks it.
MAX_EXPANDED_VALUES = 1_000_000


def _expanded_size(data: object, cap: int) -> int | None:
    """`cap` if `data`, walked as every later pass walks it (each alias expanded), holds more than `cap`
    values; None otherwise. A file without aliases holds fewer values than it has characters."""
    count = 0
    stack = [data]
    while stack:
        v = stack.pop()
        count += 1
        if count > cap:
            return cap
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


_UNIQUE_KEY_LOADER: type | None = None


def _unique_key_loader() -> type:
    """PyYAML's safe loader, refusing a key given twice in one mapping (as YAML itself does). `safe_load`
    keeps the last silently: a file with two `scenarios:` blocks ran the second alone, and the first
    block's scenarios were lost without a word. Keys a merge (`<<: *anchor`) brings in may still be set
    again beside it: only the mapping's own keys are compared."""
    global _UNIQUE_KEY_LOADER
    if _UNIQUE_KEY_LOADER is None:
        import yaml

        class UniqueKeyLoader(yaml.SafeLoader):
            def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
                seen: dict[object, int] = {}
                for key_node, _ in node.value:
                    if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node)
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r} (also on line {seen[key]})", key_node.start_mark)
                    seen[key] = key_node.start_mark.line + 1
                return super().construct_mapping(node, deep)

        _UNIQUE_KEY_LOADER = UniqueKeyLoader
    return _UNIQUE_KEY_LOADER


def read_yaml(path: str, usage_error: type[Exception]) -> object:
    """A scenario file: at most 16 MiB of UTF-8 (a byte-order mark ignored) holding YAML without lone
    surrogates or a key given twice in one mapping; any fault is one usage_error line naming the file (and
    line)."""
    import yaml

    from datasets.files import InputError, read_capped
    from models.validate import surrogate_errors

    try:
        raw = read_capped(path, "scenario file", MAX_FILE_BYTES)
    except InputError as exc:
        raise usage_error(str(exc)) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise usage_error(f"{path} line {line}: not UTF-8: byte 0x{raw[exc.start]:02x}") from None
    try:
        data = yaml.load(text, Loader=_unique_key_loader())     # a SafeLoader: no Python tags
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise usage_error(f"{path}{where}: not valid YAML: {what}") from None
    except RecursionError:
        raise usage_error(f"{path}: not valid YAML: nested too deeply") from None
    expanded = _expanded_size(data, max(MAX_EXPANDED_VALUES, 4 * len(text)))
    if expanded is not None:
        raise usage_error(f"{path}: its aliases (*name) expand to more than {expanded:,} values"
                          " (an alias inside its own anchor never ends)")
    errors = surrogate_errors(data)
    if errors:
        raise usage_error(f"{path}: {errors[0]}")
    return data


def _pct_ci(v: float | None, ci: list | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1%}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")
