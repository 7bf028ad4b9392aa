"""One set of replay defaults: the library, `meridian replay` and a scenario file's base agree."""

import dataclasses

from replay.controller import SlaController
from replay.harness import ReplaySetup, Window
from replay.options import DEFAULTS, ReplayOptions
from replay.sla import DEFAULT_SLA_TARGETS
from service.cli import build_parser


def test_the_cli_flags_default_to_the_options():
    args = build_parser().parse_args(["replay", "--trace", "t.csv", "--fleet", "single:1x8", "--out", "o"])
    assert (args.scheduler, args.format, args.epoch_s, args.seed, args.time_limit, args.replan_every,
            args.equal_priorities, args.max_days, args.start_day, args.days, args.warmup_days) == (
        DEFAULTS.scheduler, DEFAULTS.format, DEFAULTS.epoch_s, DEFAULTS.seed, DEFAULTS.time_limit_s,
        DEFAULTS.replan_every, DEFAULTS.equal_priorities, DEFAULTS.max_days, DEFAULTS.start_day, DEFAULTS.days,
        DEFAULTS.warmup_days)


def test_the_library_defaults_are_the_options():
    lib = ReplaySetup()
    assert ReplayOptions().setup() == dataclasses.replace(lib, sla_targets=dict(lib.sla_targets))
    assert ReplayOptions().window() == Window()
    assert lib.sla_targets == SlaController().targets == dict(DEFAULT_SLA_TARGETS)


def test_policy_is_the_scheduler_by_its_user_facing_name():
    assert ReplayOptions.model_validate({"policy": "las"}).scheduler == "las"
    assert ReplayOptions(scheduler="fifo").setup().scheduler == "fifo"


def test_backfill_is_on_by_default_and_off_gives_the_epoch_grid_alone():
    assert ReplayOptions().setup().backfill_window_s == 30.0
    assert ReplayOptions(backfill_window_s=10.0).setup().backfill_window_s == 10.0
    assert ReplayOptions(backfill=False).setup().backfill_window_s is None


def test_a_batch_whose_waiting_jobs_all_fit_closes_after_the_short_fit_window():
    assert ReplayOptions().setup().backfill_fit_window_s == 5.0
    assert ReplayOptions(backfill_fit_window_s=0.0).setup().backfill_fit_window_s == 0.0
