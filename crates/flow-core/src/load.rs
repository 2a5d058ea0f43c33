//! Reading workflow files: JSON or YAML by extension, with limits that keep hostile
//! files cheap, and errors that carry the line and column.

use std::path::Path;

use crate::error::{Error, Problem, Result, did_you_mean};
use crate::spec::WorkflowSpec;

/// The syntax of a workflow document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON (`.json`).
    Json,
    /// YAML (`.yaml`, `.yml`).
    Yaml,
}

impl Format {
    /// The format a file's extension names; `None` for any other extension.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }

    /// A guess from the text itself: JSON when it starts with `{`.
    pub fn sniff(text: &str) -> Format {
        if text.trim_start().starts_with('{') {
            Format::Json
        } else {
            Format::Yaml
        }
    }
}

/// Limits that keep a hostile or mistaken file cheap to reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file accepted, in bytes (default 16 MiB).
    pub max_file_bytes: usize,
    /// Most nodes in one workflow (default 250,000).
    pub max_nodes: usize,
    /// Most edges in one workflow (default 1,000,000).
    pub max_edges: usize,
    /// Deepest nesting of a node's `config` or of `input` (default 64).
    pub max_depth: usize,
    /// Most items one `for_each` may give in a run (default 100,000): a longer
    /// list fails its node.
    pub max_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 16 * 1024 * 1024,
            max_nodes: 250_000,
            max_edges: 1_000_000,
            max_depth: 64,
            max_items: 100_000,
        }
    }
}

/// Reads a file's bytes, refusing one over the limit before reading it whole.
pub fn read_file(path: &Path, limits: &Limits) -> Result<String> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let too_big = |size: String| {
        Error::Parse(Problem::new(
            "",
            format!(
                "file is {size} bytes, over the limit of {} bytes (the `max_file_bytes` limit)",
                limits.max_file_bytes
            ),
        ))
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > limits.max_file_bytes as u64 {
        return Err(too_big(meta.len().to_string()));
    }
    // The size said is 0 for /dev/zero, a pipe or a FIFO: never read past the limit.
    let mut bytes = Vec::new();
    let file = std::fs::File::open(path).map_err(io)?;
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, limits.max_file_bytes as u64 + 1),
        &mut bytes,
    )
    .map_err(io)?;
    if bytes.len() > limits.max_file_bytes {
        return Err(too_big(format!("at least {}", bytes.len())));
    }
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
        let column = offset - bytes[..offset].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1) + 1;
        Error::Parse(Problem::new("", format!("file is not valid UTF-8 (byte {offset})")).at(Some(line), Some(column)))
    })
}

/// Parses a document into the workflow spec. Errors carry the field path, the line
/// and the column, and a "did you mean" for a misspelt field or value.
pub fn parse_str(text: &str, format: Format, limits: &Limits) -> Result<WorkflowSpec> {
    if text.len() > limits.max_file_bytes {
        return Err(Error::Parse(Problem::new(
            "",
            format!(
                "document is {} bytes, over the limit of {} bytes",
                text.len(),
                limits.max_file_bytes
            ),
        )));
    }
    match format {
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            let spec: WorkflowSpec = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let place = place_of(e.path());
                let inner = e.into_inner();
                let (line, column) = (inner.line(), inner.column());
                let message = strip_location(&inner.to_string());
                parse_problem(
                    place,
                    &message,
                    (line > 0).then_some(line),
                    (column > 0).then_some(column),
                )
            })?;
            de.end().map_err(|e| {
                parse_problem(
                    String::new(),
                    &strip_location(&e.to_string()),
                    Some(e.line()),
                    Some(e.column()),
                )
            })?;
            Ok(spec)
        }
        Format::Yaml => {
            check_flow_depth(text)?;
            let de = serde_norway::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let place = place_of(e.path());
                let inner = e.into_inner();
                let loc = inner.location();
                let message = strip_location(&inner.to_string());
                let message = match message.split_once(": ") {
                    // serde_norway prefixes the path itself; we print our own.
                    Some((prefix, rest)) if !place.is_empty() && place.starts_with(prefix) => rest.to_owned(),
                    _ => message,
                };
                parse_problem(
                    place,
                    &message,
                    loc.as_ref().map(|l| l.line()),
                    loc.as_ref().map(|l| l.column()),
                )
            })
        }
    }
}

/// After a parse error for an unknown field: every unknown field of the
/// document, found in one pass, with its place and line. The document is read
/// as plain data, each unknown field is taken out and the rest parsed again,
/// until it parses (the spec is returned, for the checks that follow parsing)
/// or fails for another reason. `first` is the problem the text's own parse
/// found.
pub(crate) fn unknown_fields(
    text: &str,
    format: Format,
    first: Problem,
    locator: &Locator,
) -> (Vec<Problem>, Option<WorkflowSpec>) {
    /// Enough for any file written by hand; a generated file with more is
    /// told about its first hundred.
    const MOST: usize = 100;
    let value: Option<serde_json::Value> = match format {
        Format::Json => serde_json::from_str(text).ok(),
        Format::Yaml => serde_norway::from_str(text).ok(),
    };
    let (Some(mut value), Some(_)) = (value, unknown_field_name(&first.message)) else {
        return (vec![first], None);
    };
    let mut problems = vec![first];
    let mut seen = std::collections::HashSet::new();
    loop {
        let last = problems.last().map(|p| p.place.clone()).unwrap_or_default();
        // The field just reported goes; a field that cannot be found to take
        // out would be reported forever: stop there.
        if !seen.insert(last.clone()) || !remove_at(&mut value, &last) || problems.len() >= MOST {
            return (problems, None);
        }
        match serde_path_to_error::deserialize::<_, WorkflowSpec>(value.clone()) {
            Ok(spec) => return (problems, Some(spec)),
            Err(e) => {
                let place = place_of(e.path());
                let message = e.into_inner().to_string();
                let Some(field) = unknown_field_name(&message) else {
                    // Another kind of problem: the text's parse will tell it
                    // with its exact place once these are fixed.
                    return (problems, None);
                };
                let (line, column) = locator.field(&value, &place, field).unzip();
                problems.push(parse_problem_of(place, &message).at(line, column));
            }
        }
    }
}

/// The field of serde's "unknown field `x`, expected ..." message.
fn unknown_field_name(message: &str) -> Option<&str> {
    message.strip_prefix("unknown field `")?.split('`').next()
}

/// Takes out the field at `place` (`nodes[2].retyr`, `strategy.kidn`);
/// whether it was there.
fn remove_at(value: &mut serde_json::Value, place: &str) -> bool {
    let Some((parent, field)) = split_place(place) else {
        return false;
    };
    let mut at = value;
    for step in parent {
        let next = match step {
            Step::Key(key) => at.get_mut(key),
            Step::Index(i) => at.get_mut(i),
        };
        let Some(next) = next else { return false };
        at = next;
    }
    at.as_object_mut().is_some_and(|map| map.shift_remove(field).is_some())
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `nodes[2].retry.max` as its steps to the parent (`nodes`, 2, `retry`) and
/// the last field (`max`). Keys with `.` or `[` in them are not followed.
fn split_place(place: &str) -> Option<(Vec<Step<'_>>, &str)> {
    let mut steps = Vec::new();
    for part in place.split('.') {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            steps.push(Step::Key(key));
        }
        while !rest.is_empty() {
            let (index, after) = rest.split_once(']')?;
            steps.push(Step::Index(index.parse().ok()?));
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    match steps.pop()? {
        Step::Key(field) => Some((steps, field)),
        Step::Index(_) => None,
    }
}

fn parse_problem_of(place: String, message: &str) -> Problem {
    match parse_problem(place, message, None, None) {
        Error::Parse(p) => p,
        _ => Problem::new("", message),
    }
}

/// serde_norway refuses nesting deeper than this, but only after libyaml has scanned
/// the whole document, and libyaml's scanner costs O(depth) per token inside `[`/`{`:
/// 100,000 `[` take minutes. Counting brackets first keeps such a file cheap to refuse.
const MAX_YAML_DEPTH: usize = 128;

/// Refuses `[`/`{` nesting deeper than [`MAX_YAML_DEPTH`], skipping quoted strings
/// and comments. Brackets inside plain or block scalars (or after an apostrophe in
/// one) may be over-counted, which only matters with more than 128 of them unclosed.
fn check_flow_depth(text: &str) -> Result<()> {
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    let (mut quote, mut escaped, mut comment, mut prev) = (None, false, false, '\n');
    for c in text.chars() {
        column += 1;
        if c == '\n' {
            (line, column, comment) = (line + 1, 0, false);
        } else if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if q == '"' && c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
        } else if !comment {
            match c {
                '#' if prev.is_whitespace() => comment = true,
                '\'' | '"' => quote = Some(c),
                '[' | '{' if depth == MAX_YAML_DEPTH => {
                    let message = "recursion limit exceeded";
                    return Err(parse_problem(String::new(), message, Some(line), Some(column)));
                }
                '[' | '{' => depth += 1,
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        prev = c;
    }
    Ok(())
}

fn place_of(path: &serde_path_to_error::Path) -> String {
    let s = path.to_string();
    // `?` is serde_path_to_error's "somewhere unknown" (an error at the end of input).
    if s == "." || s == "?" { String::new() } else { s }
}

fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn parse_problem(place: String, message: &str, line: Option<usize>, column: Option<usize>) -> Error {
    let mut message = message.to_owned();
    if let Some(hint) = suggestion(&message) {
        message.push_str(&format!(" (did you mean `{hint}`?)"));
    }
    if message.contains("recursion limit exceeded") {
        message.push_str(" (the document is nested too deeply)");
    }
    Error::Parse(Problem::new(place, message).at(line, column))
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" and "unknown variant"
/// messages: the expected name closest to the unknown one.
fn suggestion(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (word, expected) = rest.split_once('`')?;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    did_you_mean(word, candidates.iter().copied()).map(str::to_owned)
}

/// Finds the line where a node, or an edge, is written: a best effort from the text,
/// since neither parser keeps positions for values it accepted.
///
/// The lines are indexed by the `id`, `from` and `to` values they hold on first use,
/// so looking up every node of a large file stays linear.
#[derive(Debug, Default)]
pub(crate) struct Locator {
    lines: Vec<String>,
    index: std::sync::OnceLock<Index>,
}

/// Lines (1-based, ascending) by the value of an `id:`, `from:` or `to:` key.
#[derive(Debug, Default)]
struct Index {
    id: std::collections::HashMap<String, Vec<usize>>,
    from: std::collections::HashMap<String, Vec<usize>>,
    to: std::collections::HashMap<String, Vec<usize>>,
    /// Where the `edges` section starts.
    edges: Option<usize>,
}

impl Locator {
    /// A locator over a document's text.
    pub fn new(text: &str) -> Locator {
        Locator {
            lines: text.lines().map(str::to_owned).collect(),
            index: std::sync::OnceLock::new(),
        }
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| {
            let mut index = Index {
                edges: self.find(|l| l.trim_start().starts_with("edges") || l.contains("\"edges\""), 0),
                ..Index::default()
            };
            for (i, line) in self.lines.iter().enumerate() {
                for (key, map) in [("id", &mut index.id), ("from", &mut index.from), ("to", &mut index.to)] {
                    for value in values_of(line, key) {
                        let lines = map.entry(value.to_owned()).or_default();
                        if lines.last() != Some(&(i + 1)) {
                            lines.push(i + 1);
                        }
                    }
                }
            }
            index
        })
    }

    /// The line of the node whose id is `id`.
    pub fn node(&self, id: &str) -> Option<usize> {
        self.node_nth(id, 0)
    }

    /// The line of the `nth` (0-based) node whose id is `id`: a duplicate id points
    /// at its own line, not at the first node with that id.
    pub fn node_nth(&self, id: &str, nth: usize) -> Option<usize> {
        let lines = self.index().id.get(id)?;
        lines.get(nth).or(lines.last()).copied()
    }

    /// The line of the `nth` (0-based) edge `from` -> `to` (a duplicate edge points
    /// at its own line); the first line naming `from` when no line names both.
    pub fn edge_nth(&self, from: &str, to: &str, nth: usize) -> Option<usize> {
        let index = self.index();
        let start = index.edges?;
        // Both lists are sorted; walk the shorter and search the longer, so a node
        // with 100,000 outgoing edges costs a logarithm per edge, not a scan.
        fn after(lines: &[usize], start: usize) -> &[usize] {
            &lines[lines.partition_point(|&l| l < start)..]
        }
        let from_lines = after(index.from.get(from)?, start);
        let both: Vec<usize> = match index.to.get(to).map(|l| after(l, start)) {
            Some(to_lines) => {
                let (short, long) = if to_lines.len() <= from_lines.len() {
                    (to_lines, from_lines)
                } else {
                    (from_lines, to_lines)
                };
                short
                    .iter()
                    .copied()
                    .filter(|l| long.binary_search(l).is_ok())
                    .collect()
            }
            None => Vec::new(),
        };
        both.get(nth)
            .or(both.last())
            .copied()
            .or_else(|| from_lines.first().copied())
    }

    /// The line where a top-level key is written.
    pub fn key(&self, key: &str) -> Option<usize> {
        self.find(
            |l| l.starts_with(&format!("{key}:")) || l.trim_start().starts_with(&format!("\"{key}\"")),
            0,
        )
    }

    /// The line and column where the field `field` at `place` is written: searched
    /// from the line of the node or edge the place is in (by its `id`, or its
    /// `from` and `to`, read from `document`), else from the top.
    pub(crate) fn field(&self, document: &serde_json::Value, place: &str, field: &str) -> Option<(usize, usize)> {
        let index = |section: &str| -> Option<usize> {
            let rest = place.strip_prefix(section)?.strip_prefix('[')?;
            rest.split(']').next()?.parse().ok()
        };
        let from = if let Some(i) = index("nodes") {
            let id = document.get("nodes")?.get(i)?.get("id")?.as_str()?;
            self.node(id)
        } else if let Some(i) = index("edges") {
            let edge = document.get("edges")?.get(i)?;
            let (from, to) = (edge.get("from")?.as_str()?, edge.get("to")?.as_str()?);
            self.edge_nth(from, to, 0)
        } else {
            place.split(['.', '[']).next().and_then(|top| self.key(top))
        }
        .unwrap_or(1);
        self.lines.iter().enumerate().skip(from - 1).find_map(|(i, line)| {
            line.match_indices(field).find_map(|(at, _)| {
                let bytes = line.as_bytes();
                let quoted = at > 0 && bytes[at - 1] == b'"';
                let start = if quoted { at - 1 } else { at };
                let before_ok = start == 0 || matches!(bytes[start - 1], b' ' | b'\t' | b'{' | b',' | b'-');
                let rest = &line[at + field.len()..];
                let rest = if quoted { rest.strip_prefix('"')? } else { rest };
                (before_ok && rest.trim_start().starts_with(':')).then_some((i + 1, start + 1))
            })
        })
    }

    fn find(&self, pred: impl Fn(&str) -> bool, from: usize) -> Option<usize> {
        self.lines
            .iter()
            .enumerate()
            .skip(from.saturating_sub(1))
            .find(|(_, l)| pred(l))
            .map(|(i, _)| i + 1)
    }
}

/// The values a line gives `key`, in the forms `key: v`, `key: "v"`, `key: 'v'`,
/// `"key": "v"` and `"key":"v"` (a key inside a longer word does not count).
fn values_of<'a>(line: &'a str, key: &str) -> Vec<&'a str> {
    let mut values = Vec::new();
    for (i, _) in line.match_indices(key) {
        let bytes = line.as_bytes();
        let quoted = i > 0 && bytes[i - 1] == b'"';
        let at = if quoted { i - 1 } else { i };
        if at > 0 && bytes[at - 1].is_ascii_alphanumeric() {
            continue;
        }
        let mut rest = &line[i + key.len()..];
        if quoted {
            let Some(r) = rest.strip_prefix('"') else { continue };
            rest = r;
        }
        let Some(r) = rest.strip_prefix(':') else { continue };
        rest = r;
        if let Some(r) = rest.strip_prefix(' ') {
            rest = r;
        } else if !quoted {
            continue;
        }
        let value = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => rest[1..].split(q).next().filter(|_| rest[1..].contains(q)),
            Some(_) if quoted => None,
            Some(_) => rest.split([',', '}', ']', ' ', '\t', '#']).next(),
            None => None,
        };
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            values.push(value);
        }
    }
    values
}
