"""`meridian run`'s pause table: the live loop's rows rendered by the service's one table renderer."""

from __future__ import annotations

from executor.live import COLUMNS
from service.commands.run import pause_table


def test_pause_rows_render_right_aligned_with_two_decimals_and_a_dash_where_nothing_was_measured():
    rows = [{c: None for c in COLUMNS} | {"epoch_t_s": 0.0, "job": "basic", "kind": "start", "workers": 2,
                                          "modelled_s": 2.002, "measured_s": 3.5, "stop_s": 0.0, "ckpt_MB": 1.25},
            {c: None for c in COLUMNS} | {"epoch_t_s": 40.0, "job": "premium-long", "kind": "preempt", "workers": 0,
                                          "modelled_s": 2.0, "measured_s": 0.123}]
    assert pause_table(rows).splitlines() == [
        ("epoch_t_s           job     kind  workers  modelled_s  measured_s  stop_s  save_s  transfer_s  prelaunch_s"
        "  launch_s  rendezvous_s  load_s  first_step_s  ckpt_MB"),
        ("     0.00         basic    start        2        2.00        3.50    0.00       -           -            -"
        "         -             -       -             -     1.25"),
        ("    40.00  premium-long  preempt        0        2.00        0.12       -       -           -            -"
        "         -             -       -             -        -"),
    ]
