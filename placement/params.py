"""The engine's budget shares and stage sizes, in one frozen object.

Every figure that splits `policy.time_limit_s` between the stages, or decides which stage runs at
which size, lives here, so that tuning one is one edit and a benchmark can try another set without
touching the code. `*_share` figures are fractions of the time limit (or of what is left, where
said); `*_det_*` figures are the deterministic budgets (CP-SAT work units, iteration or step
counts), taken from the request alone so that the same request gives the same plan.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineParams:
    optimal_gap: float = 1e-6            # a plan within this relative gap of the bound is optimal
    # sizes: which form of a stage runs
    lp_full_max_options: int = 15_000    # above this, a restricted LP (+ column generation) prices a Lagrangian bound
    lp_options_per_job: int = 4          # most options per job in the restricted LP
    lp_target_columns: int = 10_000      # the restricted LP's first size (then column generation): options per job
    lp_first_min_jobs: int = 10_000      # from this size the LP rounding, not a greedy pass, gives the first real plan
    cpsat_full_max_options: int = 1_000  # above this, CP-SAT works on neighbourhoods only (placement.lns): the full
                                         # model proves nothing there in seconds, and its time went to the moves
                                         # (medium family, the 15 of seeds 0-39 with 1,000-3,000 options at 1 s and
                                         # load 5: mean gap to the MIP 0.76 % at 3,000, 0.63 % at 1,000, none worse;
                                         # seeds 40-69: 5 of 6 better; 4 seeds at 5 s: none worse)
    # the LP
    lp_share: float = 0.45               # wall clock: the LP's most
    lp_share_full: float = 0.7           # wall clock: the full LP's most (up to `lp_full_max_options`): without it the
                                         # plan is the greedy's, points worse; a cap (idle, it takes a tenth of a second)
    lp_det_factor: float = 20.0          # deterministic: HiGHS's time limit, x the limit (a safety net only, never reached)
    lp_det_iters_per_row: float = 20.0   # deterministic: simplex iterations per LP row and column (what stops the LP)
    colgen_det_rounds: int = 2           # deterministic: column generation rounds after the first restricted LP
    lp_tail_realizes: float = 1.0        # the LP leaves room for this many packing passes (its rounding), then the tail
    lp_first_share: float = 0.1          # planet size: the LP starts only with this much of the limit left for it,
    lp_first_min_s: float = 1.0          # or this many seconds if less (else the greedy's pool-level choice is packed)
    first_pack_compiles: float = 3.4     # planet size: one packing pass, x the compile's seconds (measured 1.2-3.2 x, and
                                         # 2.7-3.8 x beside a busy loop on 2026-12-04, where at 2.6 one pass of 30 ran past
                                         # its slot and the bound's and was cut short: planet seed 2 9.3 % below its bound;
                                         # at 1.8 it ran into the integer bound's slot on a slow machine)
    first_bound_compiles: float = 1.0    # planet size: the integer bound after it, likewise (measured 0.2-0.9 x; cut short
                                         # it closes less: `quota_knapsack_bound` is anytime). 3.4 / 1.0 against 2.6 / 0.4,
                                         # planet seeds 0-9 three times paired, two beside a busy loop: objective +0.75 %
                                         # (the pass cut short above), -0.003 %, -0.025 %; reported worst 3.06 / 2.36 /
                                         # 2.95 % against 9.34 / 3.92 / 2.08 %
    lp_first_max_rounds: int = 1000      # planet size: the LP stage's most rounds before its rounding is packed
    lp_beside: bool = True               # planet size, wall clock, two cores or more: the LP's rounds go on in a second
                                         # thread beside the packing and the search (placement/lp_beside.py)
    beside_bound_compiles: float = 1.0   # planet size, the LP's rounds gone on beside the search: the search stops this
                                         # many compiles early for the integer bound at their prices (its 0.4 x above
                                         # cut that bound short on planet seed 13)
    integer_bound_share: float = 0.1     # wall clock: the quota knapsacks' most, a share of the limit
    # the proof before the LP: a few subgradient steps aimed at the first plan's objective, which on a small
    # request where that plan is optimal often prove it in one or two steps (two-regions: one), and the LP,
    # about half the time of such a plan, is then not needed; where they do not, they cost a few tenths of a
    # millisecond at most (evaluations of a few dozen options)
    quick_proof_max_options: int = 2_000
    quick_proof_iters: int = 6
    # the subgradient bound (where no LP runs)
    subgradient_iters: int = 200
    subgradient_det_iters: int = 60
    subgradient_share: float = 0.05
    subgradient_min_s: float = 0.02
    subgradient_max_s: float = 0.5
    # CP-SAT on the full pool model
    cpsat_det_share: float = 0.25
    cpsat_share_of_left: float = 0.15    # of what is left: the moves after it close more (medium family seeds 5, 6, 10,
                                         # 15, 17, 3 runs at load 6: mean gap to the MIP 0.55 % at 0.4, 0.51 % at 0.15)
    rescue_det_share: float = 0.3        # CP-SAT on protected jobs alone, when the greedy broke constraint 5
    rescue_min_s: float = 0.1
    # the exact node-level model (placement/exact.py) as the proof of a tiny request the pool-level bounds
    # leave open (spread, nodes pooled): 6-30 jobs took 0.05-0.7 s, where the search ran the whole limit
    exact_max_node_vars: int = 1_500      # (change option, node) pairs: the model's size
    exact_share_of_left: float = 0.5      # wall clock: its most, a share of what is left
    exact_det_nodes: int = 2_000          # deterministic: branch-and-bound nodes (what stops it)
    # neighbourhood search
    lns_det_share: float = 0.45          # deterministic: steps of `lns_step_s` work units, this share of the limit in all
    lns_step_s: float = 0.25
    lns_max_free_jobs: int = 150
    lns_min_left_s: float = 0.02         # wall clock: no step starts with less left (beyond its overhead, below)
    lns_step_overhead_s: float = 0.04    # wall clock: a step's time beyond its CP-SAT budget until one is measured (the
    lns_step_overhead_per_job_s: float = 2e-5  # model's build, the repack), at least, and per job: measured 0.02-0.05 s
                                         # at medium size (600 jobs), 0.1-0.2 s at large (5,000), 0.2-0.4 s at planet
    lns_gang_sets: int = 4               # node-level neighbourhoods (lumpy gangs) tried after each improvement
    lns_gang_free_jobs: int = 60         # most jobs one node-level neighbourhood re-plans
    gang_moves_share: float = 0.3        # wall clock: gang insertion's most, a share of the search's time (0.5 before
                                         # 2026-12-04: the 32 apart requests and ten medium seeds at 1 s, four rounds,
                                         # paired +0.029 %, 98 better / 52 worse of 168, philly's worst 1.68 -> 1.16 %;
                                         # large seeds 0-9 at 5 s two rounds, mean gap 0.439 -> 0.425 %; 0.2 lost on gangs-1)
    gang_moves_share_planet: float = 0.5  # ... from `lp_first_min_jobs` jobs on, where the insertions are most of what
                                         # the search does (planet seeds 0-4 at 10 s: 0.3 worse on 6 of 7 pairs, by
                                         # 0.01-0.08 %)
    gang_min_dpr: int = 1                # insertion tries jobs of this many devices a replica and up (1: every job)
    keep_moves_share: float = 0.2        # wall clock: the part of each pass of insertions kept for putting running jobs back
    option_moves_share: float = 0.8      # wall clock: insertion on each job's best options, a share of what is left
    lns_early_steps: int = 4             # CP-SAT steps (the LP's disagreements first) between the gang and the option
                                         # moves: on medium family seed 37 the first four re-plan 28-65 jobs each for
                                         # +430 (1.4 %), which no insertion finds, while the option moves gain 22 in 1.6 s;
                                         # at 1 s they never ran (2.0 % -> 0.6 % below the MIP at load 4-7)
    lns_early_rate: float = 0.5          # the next runs only while the last gained at least this x the gang moves' gain
                                         # per second (large family seeds 0-9 at 5 s: all four steps cost 0.44 % on
                                         # average, 9 of 10 worse; with this rule 0.02 %, 4 better, 5 worse)
    lns_early_min_rate: float = 0.0      # and at least this much per second whatever the gang moves gained (0: none)
    lns_early_min_gap: float = 0.01      # only while the plan is at least this far below the bound (else they cost the
                                         # option moves' small gains: medium 40-59 at 1 s paired -0.014 % -> -0.005 %)
    lns_early_after_mip: bool = True     # the integer steps count as the first of them: the first runs only where they
                                         # gained at least the rate above
    lns_early_share: float = 0.5         # wall clock: their most, a share of what is left after the gang moves
    mip_steps_share: float = 0.6         # wall clock: integer steps over pools (placement/mip_step.py), their most, a
                                         # share of what is left after the gang moves (0.3 cut the third step short at
                                         # 1 s: medium seed 29 needs 0.144 s for its 200 jobs and had 0.121. Medium
                                         # 0-39 at 1 s, paired against two runs at 0.3: 0.45 +0.013 / +0.009 %, 0.6
                                         # +0.017 %, 15 seeds better, 3 worse; beside a busy loop +0.008 %; large and
                                         # planet never reach the share)
    mip_step_s: float = 0.15             # wall clock: one integer step's most
    mip_more_steps: int = 10             # on a large request (`mip_jobs_share`), at most 3 + this many steps, each on
                                         # the next disagreements by stake (it has thousands; lns._mip_steps_large)
    mip_step_sizes: tuple[int, ...] = (100, 200)   # after the LP's disagreements, those with the occupants losing least
                                         # by moving, of the pools they could use, up to this many jobs
    mip_rins_steps: int = 0              # integer steps first on the jobs the relaxation of the step over every job sets
                                         # otherwise than the plan (`mip_step.relaxation_disagreements`, RINS). Off: on
                                         # medium family seed 11 one finds +78..+91 (0.6 %) in 0.2-0.3 s where the step
                                         # over every job needs 2 s, but at 1 s that time is the early steps' and the
                                         # option moves' (seeds 1, 35, 37 lose 0.2-0.6 %): with 1 step, per_job 2, share
                                         # 0.45, gap gate 1 %, medium 0-19 mean gap to the MIP 0.436 -> 0.425 %, 20-39
                                         # 0.368 -> 0.392 %, load 2-3 (ahead of the early steps: 0.51 %, 0.51 %)
    mip_rins_per_job: int = 2            # ... with each job's this many most valuable options (1: +17 on seed 11)
    mip_rins_step_s: float = 0.3         # ... each at most this (wall clock)
    mip_rins_share: float = 0.45         # ... the integer steps' most then (in place of `mip_steps_share`)
    mip_rins_max_jobs: int = 2_000       # ... up to this many jobs (a model over every job)
    mip_rins_min_gap: float = 0.01       # ... and only while the plan is at least this far below the bound
    mip_max_jobs: int = 200              # the disagreements an integer step frees at most (most value at stake first)
    mip_jobs_share: float = 0.2          # ... or this share of the request's jobs where more (a large request, below the
                                         # LP-first size: lns.mip_jobs; paired +0.056 % on apart shapes in eight copies),
    mip_jobs_cap: int = 1_000            # ... up to this many,
    mip_step_s_per_job: float = 5e-4     # ... each step then given this per job freed where more than `mip_step_s`
    mip_repack_max_jobs: int = 2_000     # up to this many jobs, an integer step's answer is also packed from scratch (a
                                         # pass over every job: at planet size seconds)
    option_moves_per_job: int = 3        # the options per job it tries (most valuable first)
    option_moves_fill: bool = True       # wall clock: the option moves take all that is left where what their share
                                         # leaves could not start a CP-SAT step (its measured overhead)
    option_moves_passes: int = 4         # most passes of it (each with running jobs put back after)
    option_moves_next_best: bool = True  # its insertions price a job in the way by what it loses at its next best place
    option_moves_in_place: bool = True   # its insertions leave a job pushed off some of its nodes on the rest first
    option_moves_every_target: int = 8   # a gang of 4+ devices a replica tries every count when its range is this wide
    option_moves_grow: bool = True       # ... and a job's own option too, where it could hold more replicas
    moves_det_tries_per_s: float = 100.0 # deterministic: insertions each pass of moves may try, per second of limit
                                         # (x 1,000 / jobs above 1,000 jobs)
    # the tail reserved once the search stops (it keeps its plan packed): scoring its plan, the reasons and
    # the assignments, freeing the solve's objects when the engine returns, and the caller's JSON of the
    # response, so that the response is out by the limit. Measured as this many scorings of the first plan
    # plus a share per job: at planet size (20,000 jobs) those took 0.13-0.31 s (a scoring), 0.13-0.45 s
    # (reasons and assignments), 0.3-0.5 s (the free) and 0.14-0.18 s (the JSON); with two scorings the
    # plans there landed up to 0.4 s past the limit
    tail_s: float = 0.04                 # (0.02 left medium plans 1.00-1.03 s at load 3: a process waits its turn)
    tail_scorings: float = 3.0
    tail_per_job_s: float = 3.5e-5       # (3e-5 left large plans, whose search now runs to its end, out up to 5.04 s:
                                         # the free and the JSON there took 0.1-0.16 s, 2-3.2e-5 s a job)
    first_score_compiles: float = 0.4    # planet size: a scoring, x the compile's seconds (measured 0.18-0.5 x on family
                                         # seeds 0-14): the packing pass stops where that scoring and the tail above
                                         # are left (1.2 x the compile before: plans landed up to 0.5 s late); where
                                         # it is off, the integer bound's slot before the tail absorbs it
    rens_s: float = 0.1                  # wall clock, where the whole-node-cut LP is the LP stage: RENS on that model
                                         # (placement/rens.py), this long at most (0.03-0.05 s at medium size), its plan a
                                         # third start for the search. Paired at 1 s, five rounds of the 32 apart requests
                                         # and medium seeds 0-15 +0.014 % (90 better / 83 worse), two of seeds 16-39
                                         # -0.007 % (16 / 21); the worst cases move: medium seed 8 1.03 -> 0.60 %, sparse-8
                                         # 2.20 -> 1.84 %, alibaba-5 1.92 -> 1.74 %; alibaba-2 0.63 -> 1.06 %, seed 16
                                         # 0.43 -> 0.59 %. In place of the weaker rounding as a start: sparse-8 2.42 %
    min_stage_s: float = 0.05            # wall clock: a stage with less than this left is skipped
    # a backfill plan (`policy.mode: "backfill"`) on the wall clock runs the stages above on the jobs it may
    # place within this limit where the request's is longer (between epochs it must answer in tens of ms);
    # deterministic ones (the replays) keep to placement.backfill.SEARCH_MAX_OPTIONS instead
    backfill_limit_s: float = 0.15       # (apart family backfills, 1,000-4,300 options: LP, its integer bound and
                                         # rounding in 0.08-0.09 s; the greedy's plan 0.4-4.6 % short, its bound 24-44 %)
    backfill_s_per_job: float = 1.3e-4   # ... or this per job where more (large, 5,000 jobs: compile, greedy, LP, rounding
                                         # and the tail take 0.3-0.4 s; at 0.3 s the plan was the greedy's, 63 % loose;
                                         # at 0.5 s (1e-4) the LP did not start on 3 seeds of 5 once the tail, 0.24 s,
                                         # was kept: 5.6-34 % reported; at 0.65 s 0.5-1.4 %, out at 0.46-0.49 s.
                                         # A smaller tail instead let medium backfills overrun by a GC pause)
    backfill_min_stage_s: float = 0.02   # ... with this least stage (0.05 there skipped the LP on 5 of 8)
    backfill_tail_s: float = 0.02        # ... and this tail (0.04 left no time to round the LP on 2 of 8)
    cpsat_load_s: float = 0.6            # wall clock: a CP-SAT stage's import where the module is not loaded yet (OR-Tools'
                                         # with pandas, 0.39-0.52 s measured): a stage starts only with this left besides
                                         # what it needs (20-job requests at a 0.3 s limit returned at 0.29-0.44 s)
    # the pool-level integer model with whole-node cuts in a child process for the whole search (wall clock,
    # two cores or more; placement/cut_beside.py): the last dual bound it reported, where tighter
    cut_beside: bool = True
    cut_beside_min_options: int = 1_000  # below, the full pool CP-SAT model gives its bound (and proves small ones)
    cut_beside_max_options: int = 8_000  # above, HiGHS' presolve and root take most of a short limit (large
                                         # family seed 8, 48,876 options: no bound in 5 s)
    cut_beside_options_per_s: int = 12_000  # ... a limit of a second or more raises that to this many per second
                                         # of it (1 s, 13 requests of 8,000-12,000 options, three rounds: +0.18 %,
                                         # 27 better / 12 worse, worst gap 4.99 -> 3.44 %; `alibaba-8`'s shapes
                                         # 0.1-0.3 % worse, the search's time going to the cut LP and RENS)
    cut_beside_max_options_cap: int = 40_000  # ... up to this: at 5 s, 15 requests of 9,400-27,000 options (apart
                                         # alibaba seeds 6 and 8 and shapes derived from the apart requests) +0.40 %
                                         # on average, 11 better / 4 worse, worst gap 4.6 -> 2.0 % (the search alone
                                         # stalled on alibaba-6 with flat tier weights: 666 at 5 s and 20 s, where the
                                         # child's solution packs to 687); large seeds 0, 2, 5, 6, 9 (20,000-40,000 options) even,
                                         # -0.02 % on average
    cut_beside_feasibility_jump: bool = False  # HiGHS' feasibility jump in the child, between its presolve and root
                                         # LP: off, the root's bound comes 0.05-0.24 s sooner (medium 0-39 alone, 0.08 s
                                         # on average; in a 1 s plan seeds 26, 28, 30, 39 had theirs at 0.79-0.9 s, and
                                         # seed 30 reported 2.8 % for 0.3 % when it missed), and the plans are the same
                                         # (paired, two runs each: +0.0007 %, the child's solution taken as often)
    cut_beside_presolve: bool = False    # HiGHS' presolve in the child (its probing and clique table: 0.4 s of a medium
                                         # model's first 0.55 s): off, the root's bound comes at 0.2-0.3 s, not 0.5-0.8
                                         # (medium 0-39, bound within 0.5 % of the best at 0.5 s on 38 seeds, 28-33 with
                                         # it); in 1 s plans paired, two runs each: +0.0075 %, reported worst 0.70 /
                                         # 0.70 % against 0.62 / 2.98 % (seed 30's cut bound missed); beside a busy loop
                                         # +0.033 %, 19 better / 8 worse, reported worst 0.83 % against 2.90 %
    cut_beside_presolve_nnz_per_s: float = 30_000  # ... but on where the model's nonzeros are at most this many per
                                         # second of the child's: there the presolved root ends in a fraction of
                                         # its time (about 1.3e-5 s per nonzero here: sparse-8's 10,749 at 0.07 s,
                                         # alibaba-5's 47,684 at 0.58) and HiGHS' solutions come from the root's end,
                                         # where without presolve none came by 0.85 s (apart sparse-8 at 1 s: 1.82 ->
                                         # 1.19 %, philly-2 0.68 -> 0.03 %). 30,000, not 25,000: medium seed 0 as the
                                         # bench writes it (21,710 nonzeros) 1.12 -> 0.29 %, its bound 9,869 -> 9,787 by
                                         # 0.5 s (without presolve 9,855 at 1.0 s); the family beside a busy loop: no
                                         # other bound moved more than 0.03 %, plans even (-0.003 %)
    lp_whole_node_cuts: bool = True     # in the same size range, the LP stage solves that model's LP relaxation
    compact_spread: bool = True          # wall clock, below the LP-first size: jobs that start or move onto fewer nodes
    compact_tails: float = 0.25          # ... taking at most this share of the tail once the search stops
    cut_beside_inject: bool = True       # the child's plan so far, packed, the search's start for its option moves where better
    cut_beside_inject_margin: float = 0.002  # ... by at least this share of the plan (in the child's model value)
    cut_beside_solution: bool = True     # its best solution, packed from scratch, taken where better than the search's
                                         # (medium 0-39 at 1 s: 4 better, seed 6 by 0.55 %; HiGHS finds most of its
                                         # solutions when its root ends or at its time limit)
    cut_beside_solution_lead_s: float = 0.08   # ... so the child stops this long before the search (its last
                                               # solution came 0.02 s after its limit on seed 29)
    cut_beside_solution_margin: float = 0.005  # ... packed where its model value is at most this share below the plan
    cut_beside_wait_tails: float = 0.1   # once the search stops, its answer is waited for this share of the tail at most


DEFAULT = EngineParams()
