//! Live progress of `flow run` on stderr, driven by the engine's events: a progress
//! bar on a terminal, one plain line per event otherwise, nothing with `--quiet`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flow_engine::{Event, EventKind, EventReceiver, NodeStatus};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// A bar that redraws in place (stderr is a terminal).
    Bar,
    /// One line per event (stderr is a file or a pipe).
    Lines,
    /// Nothing.
    Quiet,
}

impl Display {
    pub fn choose(quiet: bool) -> Display {
        if quiet {
            Display::Quiet
        } else if std::io::stderr().is_terminal() {
            Display::Bar
        } else {
            Display::Lines
        }
    }
}

/// The bar being drawn, if any: log lines are printed above it rather than through it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn active() -> Option<ProgressBar> {
    ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn set_active(bar: Option<ProgressBar>) {
    *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = bar;
}

/// Prints a line on stderr, above the progress bar when one is drawn.
pub fn note(text: &str) {
    let write = || eprintln!("{text}");
    match active() {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// Takes the progress bar off the screen (before exiting at once).
pub fn clear() {
    if let Some(bar) = active() {
        bar.finish_and_clear();
    }
}

/// The tracing writer: stderr, with the progress bar hidden while a line is written.
#[derive(Debug, Clone, Copy)]
pub struct LogWriter;

/// One log record, written in one piece when dropped.
pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let write = || {
            let _ = std::io::stderr().lock().write_all(&self.0);
        };
        match active() {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;
    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::with_capacity(128))
    }
}

/// What the progress display knows of the run so far.
#[derive(Debug, Default)]
struct Tally {
    total: usize,
    settled: usize,
    failed: usize,
    upstream_failed: usize,
    /// Nodes waiting before their next attempt.
    retrying: HashSet<Arc<str>>,
    /// Running nodes, oldest start first: start order -> id.
    running: BTreeMap<u64, Arc<str>>,
    started_at: HashMap<Arc<str>, u64>,
    starts: u64,
    /// Items of `for_each` nodes in flight, by node.
    items_running: BTreeMap<Arc<str>, usize>,
    failed_items: usize,
    /// `for_each` nodes: how many items each listed, and how many failed.
    lists: HashMap<Arc<str>, (usize, usize)>,
}

impl Tally {
    fn apply(&mut self, event: &Event) {
        match &event.kind {
            EventKind::RunStarted { nodes, .. } => self.total = *nodes,
            EventKind::NodeStarted { node, .. } => {
                self.retrying.remove(node);
                self.starts += 1;
                self.running.insert(self.starts, node.clone());
                self.started_at.insert(node.clone(), self.starts);
            }
            EventKind::AttemptFailed {
                node, item: Some(_), ..
            } => self.item_stopped(node),
            EventKind::AttemptFailed { node, .. } => {
                self.stop(node);
                self.retrying.insert(node.clone());
            }
            // Each item is a unit of work: the bar counts them with the nodes.
            EventKind::ItemsListed { node, items } => {
                self.total += items;
                self.lists.insert(node.clone(), (*items, 0));
            }
            EventKind::ItemStarted { node, .. } => *self.items_running.entry(node.clone()).or_default() += 1,
            EventKind::ItemSettled {
                node, status, attempts, ..
            } => {
                if *attempts > 0 {
                    self.item_stopped(node);
                }
                self.settled += 1;
                if *status == NodeStatus::Failed {
                    self.failed_items += 1;
                    if let Some((_, failed)) = self.lists.get_mut(node) {
                        *failed += 1;
                    }
                }
            }
            EventKind::NodeSettled { node, status, .. } => {
                self.stop(node);
                self.retrying.remove(node);
                self.settled += 1;
                match status {
                    NodeStatus::Failed => self.failed += 1,
                    NodeStatus::UpstreamFailed => self.upstream_failed += 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// One event as a plain line; a `for_each` node settles with its items
    /// counted, not its items' attempts added up.
    fn line(&self, event: &Event) -> String {
        if let EventKind::NodeSettled {
            node, status, error, ..
        } = &event.kind
            && let Some((items, failed)) = self.lists.get(node)
        {
            let mut text = format!("{:<16} {node}: {items} items, {failed} failed", status.as_str());
            if let Some(error) = error {
                text.push_str(&format!(": {}", one_line(error)));
            }
            return format!("{:>10}  {text}", crate::summary::fmt_ms(event.at_ms));
        }
        line(event)
    }

    fn item_stopped(&mut self, node: &Arc<str>) {
        if let Some(n) = self.items_running.get_mut(node) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.items_running.remove(node);
            }
        }
    }

    fn stop(&mut self, node: &str) -> Option<Arc<str>> {
        let order = self.started_at.remove(node)?;
        self.running.remove(&order)
    }

    /// The bar's message: failures so far, then the running nodes (`""` when none).
    fn message(&self) -> String {
        let mut parts = Vec::new();
        if self.failed > 0 {
            parts.push(format!("{} failed", self.failed));
        }
        if self.failed_items > 0 {
            parts.push(format!("{} items failed", self.failed_items));
        }
        if self.upstream_failed > 0 {
            parts.push(format!("{} upstream_failed", self.upstream_failed));
        }
        if !self.retrying.is_empty() {
            parts.push(format!("{} waiting to retry", self.retrying.len()));
        }
        if !self.running.is_empty() {
            const SHOWN: usize = 4;
            let names: Vec<&str> = self.running.values().take(SHOWN).map(|n| &**n).collect();
            let more = self.running.len().saturating_sub(SHOWN);
            let mut running = format!("running {}: {}", self.running.len(), names.join(", "));
            if more > 0 {
                running.push_str(&format!(" +{more} more"));
            }
            parts.push(running);
        }
        for (node, n) in self.items_running.iter().take(4) {
            parts.push(format!("{node}: {n} items running"));
        }
        parts.iter().map(|p| format!(" · {p}")).collect()
    }
}

/// Consumes a run's events until the run finishes: draws progress, and writes the
/// event log. Returns the log's write error, if any.
pub async fn follow(
    mut events: EventReceiver,
    display: Display,
    nodes: usize,
    mut log: Option<(PathBuf, std::io::BufWriter<std::fs::File>)>,
) -> Result<(), String> {
    let bar = (display == Display::Bar).then(|| {
        let bar = ProgressBar::with_draw_target(Some(nodes as u64), ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} [{bar:28}] {pos}/{len} settled{wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        set_active(Some(bar.clone()));
        bar
    });
    let mut tally = Tally::default();
    let mut log_error = None;
    let mut stderr = std::io::stderr();
    while let Some(event) = events.recv().await {
        tally.apply(&event);
        if let Some((path, file)) = &mut log
            && log_error.is_none()
        {
            let written = serde_json::to_writer(&mut *file, &event)
                .map_err(std::io::Error::from)
                .and_then(|()| file.write_all(b"\n"));
            if let Err(e) = written {
                log_error = Some(format!("cannot write {}: {e}", path.display()));
            }
        }
        match display {
            Display::Bar => {
                if let Some(bar) = &bar {
                    bar.set_length(tally.total as u64);
                    bar.set_position(tally.settled as u64);
                    bar.set_message(tally.message());
                }
            }
            Display::Lines => {
                let _ = writeln!(stderr, "{}", tally.line(&event));
            }
            Display::Quiet => {}
        }
        // What a waiting run waits for, and how to send it its signal, is said
        // whatever the display.
        if let EventKind::NodeWaiting { node, waiting, .. } = &event.kind {
            note(&format!("flow: {node} is {}", waiting_hint(&event.run_id, waiting)));
        }
        if matches!(event.kind, EventKind::RunFinished { .. }) {
            break;
        }
    }
    if let Some(bar) = bar {
        set_active(None);
        bar.finish_and_clear();
    }
    if let Some((path, mut file)) = log
        && log_error.is_none()
        && let Err(e) = file.flush()
    {
        log_error = Some(format!("cannot write {}: {e}", path.display()));
    }
    log_error.map_or(Ok(()), Err)
}

/// One event as a plain line: the time since the run started, what, which node.
pub fn line(event: &Event) -> String {
    let what = match &event.kind {
        EventKind::RunStarted {
            workflow,
            strategy,
            nodes,
        } => format!("run started      workflow `{workflow}`, {nodes} nodes, strategy {strategy}"),
        EventKind::NodeReady { node } => format!("ready            {node}"),
        EventKind::NodeStarted { node, attempt: 1 } => format!("started          {node}"),
        EventKind::NodeStarted { node, attempt } => format!("started          {node} (attempt {attempt})"),
        EventKind::AttemptFailed {
            node,
            item,
            attempt,
            error,
            retry_in_ms,
            ..
        } => format!(
            "retrying         {}: attempt {attempt} failed: {}; next attempt in {}",
            item_name(node, *item),
            one_line(error),
            crate::summary::fmt_ms(*retry_in_ms)
        ),
        EventKind::LimitWaited {
            node,
            item,
            limit,
            waited_ms,
            ..
        } => format!(
            "limit            {} got `{limit}` after {}",
            item_name(node, *item),
            crate::summary::fmt_ms(*waited_ms)
        ),
        EventKind::ItemsListed { node, items } => format!("for_each         {node}: {items} items"),
        EventKind::ItemStarted {
            node,
            index,
            attempt: 1,
        } => format!("started          {node}[{index}]"),
        EventKind::ItemStarted { node, index, attempt } => {
            format!("started          {node}[{index}] (attempt {attempt})")
        }
        EventKind::ItemSettled {
            node,
            index,
            status,
            attempts,
            error,
        } => {
            let mut text = format!("{:<16} {node}[{index}]", status.as_str());
            if *attempts > 1 {
                text.push_str(&format!(" after {attempts} attempts"));
            }
            if let Some(error) = error {
                text.push_str(&format!(": {}", one_line(error)));
            }
            text
        }
        EventKind::NodeSettled {
            node,
            status,
            attempts,
            error,
        } => {
            let mut text = format!("{:<16} {node}", status.as_str());
            if *attempts > 1 {
                text.push_str(&format!(" after {attempts} attempts"));
            }
            if let Some(error) = error {
                text.push_str(&format!(": {}", one_line(error)));
            }
            text
        }
        EventKind::NodeWaiting { node, waiting, .. } => format!("waiting          {node}: {}", waiting_for(waiting)),
        EventKind::SignalReceived { node, name, .. } => format!("signal           {node}: `{name}` received"),
        EventKind::Notice { node, message, .. } => format!("notice           {node}: {message}"),
        EventKind::RunFinished { status, duration_ms } => {
            format!(
                "run {:<12} in {}",
                status.as_str(),
                crate::summary::fmt_ms(*duration_ms)
            )
        }
        other => format!("{other:?}"),
    };
    format!("{:>10}  {what}", crate::summary::fmt_ms(event.at_ms))
}

/// `node`, or `node[3]` for an item of a `for_each` node.
fn item_name(node: &str, item: Option<usize>) -> String {
    match item {
        Some(index) => format!("{node}[{index}]"),
        None => node.to_owned(),
    }
}

fn one_line(text: &str) -> String {
    let text: String = text.chars().take(200).collect();
    text.replace(['\n', '\r'], " ")
}

/// What a waiting node waits for, in a few words.
fn waiting_for(waiting: &flow_engine::core::Waiting) -> String {
    match (&waiting.signal, waiting.until_ms, waiting.timeout_at_ms) {
        (Some(name), _, Some(at)) => format!("signal `{name}` (gives up at {})", flow_engine::journal::rfc3339(at)),
        (Some(name), _, None) => format!("signal `{name}`"),
        (None, Some(until), _) => format!("until {}", flow_engine::journal::rfc3339(until)),
        (None, None, _) => "waiting".to_owned(),
    }
}

/// As [`waiting_for`], with the command that sends the signal.
fn waiting_hint(run_id: &str, waiting: &flow_engine::core::Waiting) -> String {
    match &waiting.signal {
        Some(name) => format!(
            "waiting for {}: flow signal {run_id} {name} --data '{{...}}'",
            waiting_for(waiting)
        ),
        None => format!("waiting {}", waiting_for(waiting)),
    }
}
