"""Traces and fleets in, job streams and fleet descriptions out.

Every trace format converts to `TraceJob` rows (the canonical job CSV's columns); the documented
attribute rules in `datasets.attributes` turn a `TraceJob` into a `JobSpec` the replay can plan
(tier, replica range, devices per replica, speed, checkpoint size, work).
"""

from datasets.attributes import AttributeRules, JobSpec, to_job_specs
from datasets.errors import LoadResult, TraceFormatError
from datasets.rows import TraceJob
from datasets.trace import load_trace

__all__ = ["AttributeRules", "JobSpec", "LoadResult", "TraceFormatError", "TraceJob", "load_trace", "to_job_specs"]
