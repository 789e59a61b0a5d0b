//! Long help texts of the command line, kept apart from the argument types.

/// Shown after `crtest --help`: what the environment changes and what the
/// exit status means, so CI scripts need not read the source.
pub(super) const AFTER_HELP: &str = "\
Environment:
  CRTEST_CACHE      cache directory (default $XDG_CACHE_HOME/crtest or ~/.cache/crtest)
  CRTEST_ROOT       project root with kernels/, workloads/, converters/ (default: the nearest
                    ancestor of the working directory with workloads/workloads.yaml)
  CRTEST_KEEP_WORK  keep a run's scratch directory and print where it is
  NO_COLOR          no colour in help and usage errors (crtest's own output has none)

Exit status (run, merge):
  0  every cell passed or skipped
  1  some cell FAILed
  2  only ERRORs or CONTROL-FAILs, or bad input
  130  interrupted (Ctrl-C or SIGTERM): no results written
crtest cell: 0 PASS, 1 FAIL, 125 cannot be judged (for git bisect run), 2 usage error.
crtest compare: 0 no regression, 1 regression, 2 a document is not crtest results.";
