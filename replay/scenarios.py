"""What-if scenario files as pydantic models: the base, the scenarios, the capacity search.

A scenario file's `base:` is a `replay.options.ReplayOptions` (the options `meridian replay` takes, with
the same defaults); a `Scenario` is the base with one scenario's overrides and its changes;
`CapacitySearch` is the `find_min_capacity:` section.

Scenario file (YAML; `examples/whatif.yaml` is a worked one):

```yaml
base:                         # everything a replay needs; each scenario may override any key
  trace: synthetic:2          # a trace path (with format:) or synthetic[:DAYS]
  format: philly              # philly | canonical | alibaba2023
  fleet: synthetic:2          # FLEET.json, single:NODESxDEVICES, philly:MACHINES.csv, synthetic[:REGIONS]
  policy: cpsat               # the scheduler: cpsat | fifo | las | las2d-ideal (`scheduler:` is accepted too)
  start_day: null             # window, as `meridian replay`
  days: null
  warmup_days: 3
  epoch_s: 300
  seed: 0
  time_limit_s: 0.5
  replan_every: 3
  equal_priorities: false
  max_days: 60
  sla_targets: {premium: 0.95, standard: 0.70}   # per tier, the SLA ratio each job should reach
  replications: 3             # runs per scenario differing in what is uncertain (replay.replications)
scenarios:
  - name: today
  - name: more-h100
    add_nodes: [{cluster: r1c0, accelerator: H100, devices: 8, count: 8}]
  - name: shrink
    remove_nodes: [{cluster: r0c0, accelerator: A100, count: 4}]
  - name: region-0-down
    outages: ["region:region-0@0.5"]          # TARGET@START_DAY[+HOURS], as --fail
  - name: busier
    demand_scale: 1.5
find_min_capacity:            # used by --find-min-capacity
  scenario: today             # the scenario to add capacity to (default: the first)
  cluster: r1c0               # where the nodes go (an existing cluster, or a new one with region:)
  accelerator: H100
  devices: 8                  # devices per added node
  max_nodes: 64
  step: 1                     # replay the counts 0, step, 2 step, ... (and max_nodes)
  attainment_targets: {premium: 0.99, standard: 0.70}   # share of a tier's jobs meeting its sla_targets
```

`sla_targets` and `attainment_targets` are two notions: the first is the per-job SLA ratio a tier's jobs
should reach (the scenario's rule: the controller's and the metric's), the second the share of a tier's
jobs that must reach it (the search's goal). Every search candidate keeps its scenario's `sla_targets`.
`targets:` is the old name of `attainment_targets` and still loads.

Changes (`datasets.edits` defines them): `add_nodes`, `remove_nodes`, `demand_scale` (in (0, 100]);
`outages` as `replay.outages` parses them. A mistake is one `ScenarioError` line naming the YAML path
and the value, e.g. `scenarios[1].add_nodes[0].count: must be >= 1, got 0`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, AliasChoices, BaseModel, Field, ValidationError

from datasets.edits import AddNodes, RemoveNodes
from models.limits import MAX_NODES
from replay.options import IDEAL, ReplayOptions, Share, Strict, Tier
from replay.outages import parse_outage


class ScenarioError(ValueError):
    """A scenario file mistake: names the field path and the value."""


def as_written(value: Any) -> str:
    """A value read from a scenario file as YAML spells it (`true`, `null`, `2024-01-01`, `[a, 1]`), not as
    Python does (`True`, `None`, `datetime.date(2024, 1, 1)`): the user wrote YAML. Text keeps its quotes,
    so `'12'` and `12` read apart; a long value is cut at 120 characters."""
    if isinstance(value, str):
        return repr(value)
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True, sort_keys=False)
    except yaml.YAMLError:
        text = repr(value)
    text = text.strip().removesuffix("...").strip()
    return text if len(text) <= 120 else text[:117] + "..."


def _outage_spec(text: str) -> str:
    parse_outage(text)          # ValueError names the part that is wrong
    return text


# A scenario's name names its folder under --out (`folder_name`): no separator, never `.` or `..`, and
# no two names of a file may map to one folder (regardless of case).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._+-]*$"


def folder_name(name: str) -> str:
    """The folder of a scenario under --out: its name with anything but letters, digits, '-', '_', '.' as '_'."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


# The files `meridian whatif` writes beside the scenarios' folders: no scenario's folder may take one's name.
COMPARISON_FILES = ("report.html", "comparison.json", "comparison.csv", "intervals.png", "comparison.png")


def _not_a_comparison_file(name: str) -> str:
    if folder_name(name).lower() in COMPARISON_FILES:
        raise ValueError(f"a scenario's folder may not take the name of a file the comparison writes beside it "
                         f"({', '.join(COMPARISON_FILES)}), got {name!r}")
    return name


class Scenario(ReplayOptions):
    """The base with one scenario's overrides, and its changes to the fleet, the demand and the nodes up."""

    name: Annotated[str, AfterValidator(_not_a_comparison_file)] = Field(
        min_length=1, max_length=64, pattern=NAME_PATTERN,
        description="names the scenario's folder under --out: letters, digits, ' ', '.', '_', '+', '-'")
    add_nodes: list[AddNodes] = Field(default_factory=list)
    remove_nodes: list[RemoveNodes] = Field(default_factory=list)
    outages: list[Annotated[str, AfterValidator(_outage_spec)]] = Field(default_factory=list)
    demand_scale: float = Field(1.0, gt=0, le=100)
    replications: int = Field(3, ge=1, le=1000, description="runs differing in what is uncertain "
                              "(replay.replications); 1 reproduces the single deterministic run")


class CapacitySearch(Strict):
    """`find_min_capacity:`: the least count of `devices`-device nodes to add to `cluster` whose attainment
    (share of each tier's jobs reaching the scenario's `sla_targets`) meets `attainment_targets`."""

    scenario: str | None = Field(None, description="the scenario to add capacity to (default: the first)")
    cluster: str = Field(min_length=1)
    accelerator: str = Field(min_length=1)
    devices: int = Field(ge=1)
    region: str | None = None
    max_nodes: int = Field(64, ge=1, le=MAX_NODES)     # (no fleet may hold more nodes)
    step: int = Field(1, ge=1, description="replay the counts 0, step, 2 step, ... and max_nodes")
    attainment_targets: dict[Tier, Share] = Field(
        min_length=1, validation_alias=AliasChoices("attainment_targets", "targets"),
        description="per tier, the share of its jobs that must reach the scenario's sla_targets")

    def nodes(self, count: int) -> AddNodes:
        """The node group this search adds `count` of."""
        return AddNodes(cluster=self.cluster, accelerator=self.accelerator, devices=self.devices, count=count,
                        region=self.region)


FILE_KEYS = ("base", "scenarios", "find_min_capacity")


def parse_scenarios(data: Any) -> tuple[list[Scenario], CapacitySearch | None]:
    """Validate a decoded scenario file; ScenarioError names the first wrong field."""
    if not isinstance(data, dict):
        raise ScenarioError("(file): a scenario file is a mapping with base: and scenarios:")
    unknown = set(data) - set(FILE_KEYS)
    if unknown:
        raise ScenarioError(f"{min(unknown)}: unknown key (expected {', '.join(FILE_KEYS)})")
    base = data.get("base") or {}
    if not isinstance(base, dict):
        raise ScenarioError(f"base: expected a mapping, got {as_written(base)}")
    _validate(ReplayOptions, base, "base")
    raw = data.get("scenarios")
    if not isinstance(raw, list) or not raw:
        raise ScenarioError("scenarios: expected a non-empty list")
    out: list[Scenario] = []
    for i, s in enumerate(raw):
        p = f"scenarios[{i}]"
        if not isinstance(s, dict) or "name" not in s:
            raise ScenarioError(f"{p}.name: every scenario needs a name")
        if not isinstance(s["name"], str) or not s["name"]:
            # YAML reads `name: 123` as a number and `name: [a]` as a list: say what was read
            raise ScenarioError(f"{p}.name: expected a non-empty string, got {as_written(s['name'])}")
        same = [sc.name for sc in out if folder_name(sc.name).casefold() == folder_name(s["name"]).casefold()]
        if s["name"] in same:
            raise ScenarioError(f"{p}.name: duplicate {s['name']!r}")
        if same:
            raise ScenarioError(f"{p}.name: {s['name']!r} would share the folder {folder_name(s['name'])!r} with "
                                f"scenario {same[0]!r} (names must differ after mapping, regardless of case)")
        merged = {k: v for k, v in base.items() if not (k in ("policy", "scheduler") and
                                                        ("policy" in s or "scheduler" in s))} | s
        sc = _validate(Scenario, merged, p)
        for key in ("trace", "fleet"):
            if getattr(sc, key) is None:
                raise ScenarioError(f"{p}.{key}: required (in base: or the scenario)")
        if sc.scheduler == IDEAL and sc.outages:
            raise ScenarioError(f"{p}.outages: the {IDEAL} reference models no outages (policy: {IDEAL}); "
                                f"got {sc.outages[0]!r}")
        out.append(sc)
    search = None
    fm = data.get("find_min_capacity")
    if fm is not None:
        if not isinstance(fm, dict):
            raise ScenarioError(f"find_min_capacity: expected a mapping, got {as_written(fm)}")
        if "targets" in fm and "attainment_targets" in fm:
            raise ScenarioError("find_min_capacity.targets: the old name of attainment_targets; give one, not both")
        search = _validate(CapacitySearch, fm, "find_min_capacity")
        if search.scenario is None:
            search = search.model_copy(update={"scenario": out[0].name})
        elif not any(sc.name == search.scenario for sc in out):
            raise ScenarioError(f"find_min_capacity.scenario: no scenario named {search.scenario!r}")
    return out, search


def _validate(model: type[BaseModel], data: dict, path: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(describe_error(path, exc.errors()[0])) from None


_PLAIN = {"missing": "required", "extra_forbidden": "unknown key", "int_type": "expected an integer",
          "float_type": "expected a number", "string_type": "expected text", "bool_type": "expected true or false",
          "dict_type": "expected a mapping", "list_type": "expected a list", "model_type": "expected a mapping",
          "string_too_short": "must not be empty", "too_short": "must not be empty",
          "string_pattern_mismatch": "a scenario name is letters, digits, spaces, '.', '_', '+' and '-', starting "
                                     "with a letter or digit (it names a folder under --out)",
          "string_too_long": "too long", "finite_number": "must be a finite number"}
_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than_equal": ("<=", "le"),
           "less_than": ("<", "lt")}


def describe_error(path: str, err: Mapping[str, Any], show: Callable[[Any], str] = as_written) -> str:
    """One pydantic error as `PATH.FIELD[i]: what is expected, got VALUE`, the value spelled by `show` (as
    YAML writes it, for a scenario file; a command line passes `repr`)."""
    loc = list(err["loc"])
    is_key = bool(loc) and loc[-1] == "[key]"
    if is_key:
        loc.pop()
    where = path + "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in loc)
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in _BOUNDS:
        op, k = _BOUNDS[kind]
        bound = ctx[k]
        # an integer bound in full (a seed's 4294967295, not 4.29497e+09); a float one as %g
        what = f"must be {op} {bound}" if isinstance(bound, int) else f"must be {op} {bound:g}"
    elif kind == "literal_error":
        what = f"expected {str(ctx['expected']).replace(chr(39), '')}"
    elif kind == "value_error":
        return f"{where}: {ctx['error']}"
    else:
        what = _PLAIN.get(kind, err["msg"])
    if kind in ("missing", "extra_forbidden"):
        return f"{where}: {what}"
    return f"{where}: {what}, got {show(err['input'])}"
