"""The options of one replay as a user spells them (`meridian replay`'s flags, a scenario file's `base:`).

The one definition of their defaults: `ReplaySetup` and `Window` (the library), the CLI and the
what-if scenario files all take them from `ReplayOptions`. Light on purpose (pydantic only), so the
CLI can read the defaults without loading the simulator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from replay.sla import DEFAULT_SLA_TARGETS

if TYPE_CHECKING:
    from replay.harness import ReplaySetup, Window

# las2d-ideal is no planner but issue 11's reference (replay.ideal_las): an event-driven 2D-LAS with free,
# instant preemption and no contract, on the same window and jobs; it models no outages.
SchedulerName = Literal["cpsat", "fifo", "las", "las2d-ideal"]
IDEAL = "las2d-ideal"
ServiceName = Literal["levels", "gittins", "gittins-class"]
TraceFormat = Literal["philly", "canonical", "alibaba2023"]
Tier = Literal["premium", "standard", "basic"]
Share = Annotated[float, Field(gt=0, le=1)]

# One set of rules for `meridian replay` and a what-if file (its base: and every scenario): a replay runs
# at most MAX_EPOCHS epochs of at least MIN_EPOCH_S, so no window or epoch can make it run without end.
MIN_EPOCH_S = 1.0
MAX_EPOCH_S = 86_400.0
MAX_DAYS = 36_500.0
MAX_EPOCHS = 2_000_000
MAX_TIME_LIMIT_S = 86_400.0


class Strict(BaseModel):
    # strict: YAML's `true` is no count and `"3"` no number; extra keys are mistakes, not comments.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True, allow_inf_nan=False)


class ReplayOptions(Strict):
    """One replay as a user spells it; `setup()` and `window()` give the library's objects."""

    trace: str | None = Field(None, min_length=1, description="trace file, or synthetic[:DAYS]")
    format: TraceFormat = "philly"
    fleet: str | None = Field(None, min_length=1, description="FLEET.json or a fleet builder")
    scheduler: SchedulerName = Field("cpsat", alias="policy",
                                     description="fifo | las | cpsat | las2d-ideal (the ideal reference, no planner; "
                                                 "the CLI's --policy, the file's policy:)")
    start_day: float | None = Field(None, ge=0, le=MAX_DAYS, description="measure the jobs submitted from this "
                                    "day on")
    days: float | None = Field(None, gt=0, le=MAX_DAYS, description="... for this many days (None: to the trace's "
                               "end)")
    warmup_days: float = Field(3.0, ge=0, le=MAX_DAYS, description="replayed before start_day but not measured")
    epoch_s: float = Field(300.0, ge=MIN_EPOCH_S, le=MAX_EPOCH_S, description="seconds per epoch")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seeds the attribute rules and the synthetic inputs")
    time_limit_s: float = Field(0.5, gt=0, le=MAX_TIME_LIMIT_S, description="the planner's budget per epoch (cpsat)")
    replan_every: int = Field(3, ge=1, le=10**6, description="cpsat: replan quiet epochs this often")
    equal_priorities: bool = Field(False, description="cpsat without the controller: every priority 1.0")
    service: ServiceName = Field("levels", description="cpsat's controller, its attained-service factor: levels "
                                 "(multi-level, as Tiresias's 2D-LAS) or gittins (the Gittins index of the service "
                                 "distribution learned from the jobs seen so far; gittins-class: per devices-per-"
                                 "replica class)")
    max_days: float = Field(60.0, gt=0, le=MAX_DAYS, description="safety stop, days after the window's end")
    backfill: bool = Field(True, description="act between epochs: a backfill plan on arrivals and freed devices "
                                             "(False: on the epoch grid alone, as before; the CLI's --no-backfill)")
    backfill_window_s: float = Field(30.0, gt=0, le=MAX_EPOCH_S, description="events are batched this many seconds before a "
                                                             "backfill plan")
    backfill_fit_window_s: float = Field(5.0, ge=0, le=MAX_EPOCH_S, description="a batch whose waiting jobs all "
                                         "fit on free devices is planned this soon after its first event (at most "
                                         "backfill_window_s; 0: at the event)")
    sla_targets: dict[Tier, Share] = Field(default_factory=lambda: dict(DEFAULT_SLA_TARGETS),
                                          description="per tier, the SLA ratio each job should reach")
    replications: int = Field(1, ge=1, le=1000, description="runs differing in what is uncertain "
                              "(replay.replications); replication 0 is the single run")

    @model_validator(mode="after")
    def _bounded_epochs(self) -> ReplayOptions:
        """The epochs a replay may run, counted from what is known before the trace is read (the window's
        days, when given, the warm-up and the safety stop): a bound, so a tiny epoch cannot hang."""
        epochs = ((self.days or 0.0) + self.warmup_days + self.max_days) * 86_400.0 / self.epoch_s
        if epochs > MAX_EPOCHS:
            raise ValueError(f"epoch_s {self.epoch_s:g} over {(self.days or 0.0) + self.warmup_days + self.max_days:g} "
                             f"days (days + warmup_days + max_days) is {epochs:,.0f} epochs; at most {MAX_EPOCHS:,}")
        return self

    def setup(self, outages: Callable[[float], set[str]] | None = None,
              sla_targets: Mapping[str, float] | None = None) -> ReplaySetup:
        """The harness's setup for these options (outages resolved against the fleet by the caller)."""
        from replay.harness import ReplaySetup

        return ReplaySetup(scheduler=self.scheduler, epoch_s=float(self.epoch_s), seed=self.seed,
                           time_limit_s=float(self.time_limit_s), replan_every=self.replan_every,
                           equal_priorities=self.equal_priorities, service=self.service, max_days=float(self.max_days),
                           backfill_window_s=float(self.backfill_window_s) if self.backfill else None,
                           backfill_fit_window_s=float(self.backfill_fit_window_s),
                           outages=outages, sla_targets=dict(self.sla_targets if sla_targets is None else sla_targets))

    def window(self) -> Window:
        from replay.harness import Window

        return Window(self.start_day, self.days, float(self.warmup_days))


DEFAULTS = ReplayOptions()
