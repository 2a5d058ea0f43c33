//! The crate's one error type, and the problems it carries.

use std::fmt;
use std::path::PathBuf;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a workflow could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The document is not well-formed, or a field has the wrong type or name.
    #[error("{0}")]
    Parse(Problem),
    /// The document is well-formed but not a valid workflow: every problem found.
    #[error("{}", Problems(.0))]
    Invalid(Vec<Problem>),
}

impl Error {
    /// Every problem this error carries (one for a parse error, none for I/O).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Error::Io { .. } => &[],
            Error::Parse(p) => std::slice::from_ref(p),
            Error::Invalid(ps) => ps,
        }
    }

    /// The error for a person: every problem, each with its place and, where the
    /// line is known, that line of `source` with a caret under the column.
    pub fn render(&self, file: &str, source: &str) -> String {
        match self {
            Error::Io { .. } => self.to_string(),
            _ => {
                let lines: Vec<&str> = source.lines().collect();
                let mut out = String::new();
                for p in self.problems() {
                    out.push_str(&p.render(file, &lines));
                }
                out
            }
        }
    }
}

/// One thing wrong with a workflow, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where in the document: `nodes[3].config.ms`, `edges[0].when`, `strategy.per_second`;
    /// empty for the document as a whole.
    pub place: String,
    /// What is wrong.
    pub message: String,
    /// 1-based line in the file, where known.
    pub line: Option<usize>,
    /// 1-based column in the file, where known.
    pub column: Option<usize>,
}

impl Problem {
    /// A problem at `place`.
    pub fn new(place: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            place: place.into(),
            message: message.into(),
            line: None,
            column: None,
        }
    }

    /// The same problem, placed at a line and column.
    pub fn at(mut self, line: Option<usize>, column: Option<usize>) -> Problem {
        self.line = line;
        self.column = column;
        self
    }

    fn render(&self, file: &str, lines: &[&str]) -> String {
        let mut out = if self.place.is_empty() {
            format!("error: {}\n", self.message)
        } else {
            format!("error: {}: {}\n", self.place, self.message)
        };
        if let Some(line) = self.line {
            let col = self.column.unwrap_or(1);
            out.push_str(&format!("  --> {file}:{line}:{col}\n"));
            if let Some(text) = lines.get(line.wrapping_sub(1)) {
                let shown: String = text.chars().take(200).collect();
                let width = line.to_string().len();
                out.push_str(&format!("{:width$} |\n{line} | {shown}\n", ""));
                if self.column.is_some() {
                    let pad = col.saturating_sub(1).min(shown.chars().count());
                    out.push_str(&format!("{:width$} | {:pad$}^\n", "", ""));
                }
            }
        }
        out
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.place.is_empty() {
            write!(f, "{}: ", self.place)?;
        }
        f.write_str(&self.message)?;
        if let Some(line) = self.line {
            write!(f, " (line {line}")?;
            if let Some(col) = self.column {
                write!(f, ", column {col}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// The closest of `candidates` to `word`, if one is close enough to suggest
/// (Jaro-Winkler similarity above 0.8): the "did you mean" of every message.
///
/// ```
/// assert_eq!(flow_core::did_you_mean("deley", ["delay", "noop"]), Some("delay"));
/// assert_eq!(flow_core::did_you_mean("zzz", ["delay", "noop"]), None);
/// ```
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Joins a field to a document path: `nodes[0].config` + `url` gives
/// `nodes[0].config.url`; a key that is not a plain word is quoted in brackets
/// (`headers["X Y"]`); an empty path gives the key alone.
///
/// ```
/// assert_eq!(flow_core::join_path("config", "url"), "config.url");
/// assert_eq!(flow_core::join_path("", "url"), "url");
/// assert_eq!(flow_core::join_path("headers", "a b"), r#"headers["a b"]"#);
/// ```
pub fn join_path(path: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{key:?}]"),
    }
}

/// The message of a caught panic's payload (`panic!("...")` gives a `&str` or a
/// `String`; anything else reads as "(no message)").
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}
