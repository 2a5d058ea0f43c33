//! Any bytes, read as a workflow file in either format: parsing, validation and
//! the error rendering must return, never panic, hang or blow the stack.
#![no_main]

use flow_core::{Format, Limits, Workflow};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The CLI refuses non-UTF-8 before parsing (`read_file`); do the same.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let registry = flow_nodes::registry();
    let limits = Limits::default();
    for format in [Format::Json, Format::Yaml] {
        match Workflow::from_str(text, format, &registry, &limits) {
            Ok(workflow) => {
                // A valid workflow must also plan: levels and the run's start.
                let _ = workflow.levels();
                let mut run = flow_core::RunState::new(&workflow);
                let _ = run.initial();
            }
            Err(error) => {
                let _ = error.render("fuzz.yaml", text);
            }
        }
    }
});
