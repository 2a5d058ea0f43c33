//! Pictures of runs, shared by the `flow` command and `flow serve`: the
//! timeline (a Gantt chart in SVG) and durations in words.

#![warn(missing_docs)]

pub mod graph;
pub mod timeline;

/// A duration for people: `12.3 ms`, or `12.3 s` from ten seconds on.
pub fn fmt_ms(ms: f64) -> String {
    if ms >= 10_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{ms:.1} ms")
    }
}
