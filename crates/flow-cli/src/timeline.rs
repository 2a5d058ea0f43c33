//! `flow timeline`: a saved report drawn as a Gantt chart (see `flow_view::timeline`).

use flow_engine::Report;
use flow_view::timeline::render;

use crate::cli::{EXIT_USAGE, TimelineArgs, write_output};

pub fn command(args: &TimelineArgs) -> u8 {
    let shown = args.report.display();
    let text = match std::fs::read_to_string(&args.report) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: {shown}: cannot read: {e}");
            return EXIT_USAGE;
        }
    };
    let report: Report = match serde_json::from_str(&text) {
        Ok(report) => report,
        Err(e) => {
            eprintln!(
                "error: {shown}:{}:{}: not a flow report (written by `flow run --report`): {}",
                e.line(),
                e.column(),
                strip_location(&e.to_string())
            );
            return EXIT_USAGE;
        }
    };
    write_output(args.output.as_deref(), &render(&report), "--output")
}

fn strip_location(message: &str) -> &str {
    message.rfind(" at line ").map_or(message, |i| &message[..i])
}
