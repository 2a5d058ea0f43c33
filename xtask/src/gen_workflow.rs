//! `cargo xtask gen-workflow`: a large `noop` workflow as YAML.

use std::fmt::Write as _;

pub fn run(args: &[String]) -> Result<(), String> {
    let mut shape = "fan-out".to_owned();
    let mut nodes = 100_000usize;
    let mut out: Option<String> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--shape" => shape = value()?,
            "--nodes" => nodes = value()?.parse().map_err(|e| format!("--nodes: {e}"))?,
            "-o" | "--output" => out = Some(value()?),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if nodes == 0 {
        return Err("--nodes must be at least 1".to_owned());
    }
    let mut yaml = format!("name: {shape}-{nodes}\nnodes:\n");
    for i in 0..nodes {
        let _ = writeln!(yaml, "  - {{ id: n{i}, kind: noop }}");
    }
    yaml.push_str("edges:\n");
    for i in 1..nodes {
        let from = match shape.as_str() {
            "fan-out" => 0,
            "chain" => i - 1,
            "layered" if i >= 100 => {
                let prev = (i / 100 - 1) * 100;
                let _ = writeln!(yaml, "  - {{ from: n{}, to: n{i} }}", prev + (i % 100 + 1) % 100);
                prev + i % 100
            }
            "layered" => continue,
            other => return Err(format!("unknown shape `{other}`: fan-out, chain or layered")),
        };
        let _ = writeln!(yaml, "  - {{ from: n{from}, to: n{i} }}");
    }
    match out {
        Some(path) => std::fs::write(&path, yaml).map_err(|e| format!("cannot write {path}: {e}")),
        None => {
            print!("{yaml}");
            Ok(())
        }
    }
}
