//! The run's bookkeeping as a plain state machine: which node is ready, skipped or
//! upstream_failed, which edges are taken. No I/O and no async, so it can be tested
//! exhaustively (and, later, journaled). The engine drives it: it starts the nodes
//! this machine calls ready, and reports back how each one settled.

use crate::report::NodeStatus;
use crate::spec::Trigger;
use crate::workflow::Workflow;

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Some incoming edge is not resolved yet.
    Waiting,
    /// May start (returned by [`RunState::initial`] or a [`Transition::Ready`]).
    Ready,
    /// Started by the engine.
    Running,
    /// Ended.
    Settled(NodeStatus),
}

#[derive(Debug, Clone, Copy)]
struct NodeState {
    phase: Phase,
    unresolved: u32,
    taken: u32,
    failed: u32,
    cancelled: u32,
}

/// What settling a node changed elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transition {
    /// The node may now start.
    Ready(usize),
    /// The node was decided without running.
    Settled {
        /// The node.
        node: usize,
        /// `skipped`, `upstream_failed`, `cancelled`, or `failed` (a `when` that could not be evaluated).
        status: NodeStatus,
        /// Why, for `failed`.
        error: Option<String>,
    },
}

/// The bookkeeping of one run of one workflow.
#[derive(Debug, Clone)]
pub struct RunState {
    nodes: Vec<NodeState>,
    stack: Vec<(usize, NodeStatus, bool)>,
    when_errors: Vec<(usize, String)>,
    unsettled: usize,
}

enum Resolution {
    Taken,
    NotTaken,
    Failed,
    Cancelled,
    Error(String),
}

impl RunState {
    /// A fresh run: every node waiting on its incoming edges.
    pub fn new(workflow: &Workflow) -> RunState {
        let nodes = (0..workflow.nodes().len())
            .map(|i| NodeState {
                phase: Phase::Waiting,
                unresolved: workflow.incoming(i).len() as u32,
                taken: 0,
                failed: 0,
                cancelled: 0,
            })
            .collect::<Vec<_>>();
        RunState {
            unsettled: nodes.len(),
            nodes,
            stack: Vec::new(),
            when_errors: Vec::new(),
        }
    }

    /// Marks the nodes without incoming edges ready, in file order, and returns them.
    pub fn initial(&mut self) -> Vec<usize> {
        let mut ready = Vec::new();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if n.phase == Phase::Waiting && n.unresolved == 0 {
                n.phase = Phase::Ready;
                ready.push(i);
            }
        }
        ready
    }

    /// Where node `node` is.
    pub fn phase(&self, node: usize) -> Phase {
        self.nodes[node].phase
    }

    /// Whether every node has settled.
    pub fn is_finished(&self) -> bool {
        self.unsettled == 0
    }

    /// How many nodes have not settled yet.
    pub fn unsettled(&self) -> usize {
        self.unsettled
    }

    /// Records that the engine started a ready node. Returns `false` (and changes
    /// nothing) when the node was not ready.
    pub fn start(&mut self, node: usize) -> bool {
        let n = &mut self.nodes[node];
        if n.phase != Phase::Ready {
            return false;
        }
        n.phase = Phase::Running;
        true
    }

    /// Settles a node that ran (or was ready and will not run: cancelled) and
    /// resolves its outgoing edges. `passes` is true when the downstream should see a
    /// success: the node succeeded, or failed under `continue_on_error`. `when`
    /// evaluates the condition of edge `e` (called only for passing nodes, after the
    /// caller has recorded the node's result where conditions can read it).
    /// Every node that became ready, or was decided without running, is appended to
    /// `out`, in a deterministic order.
    pub fn settle(
        &mut self,
        workflow: &Workflow,
        node: usize,
        status: NodeStatus,
        passes: bool,
        when: &mut dyn FnMut(usize) -> Result<bool, String>,
        out: &mut Vec<Transition>,
    ) {
        if matches!(self.nodes[node].phase, Phase::Settled(_)) {
            return;
        }
        let mut stack = std::mem::take(&mut self.stack);
        stack.push((node, status, passes));
        while let Some((n, status, passes)) = stack.pop() {
            self.nodes[n].phase = Phase::Settled(status);
            self.unsettled -= 1;
            for &e in workflow.outgoing(n) {
                let edge = &workflow.edges()[e as usize];
                let resolution = if passes {
                    match edge.when.as_ref().map(|_| when(e as usize)) {
                        None | Some(Ok(true)) => Resolution::Taken,
                        Some(Ok(false)) => Resolution::NotTaken,
                        Some(Err(message)) => Resolution::Error(message),
                    }
                } else {
                    match status {
                        NodeStatus::Skipped => Resolution::NotTaken,
                        NodeStatus::Cancelled => Resolution::Cancelled,
                        _ => Resolution::Failed,
                    }
                };
                let to = edge.to;
                if let Some((status, error)) = self.resolve(workflow, to, resolution, out) {
                    out.push(Transition::Settled {
                        node: to,
                        status,
                        error,
                    });
                    stack.push((to, status, false));
                }
            }
        }
        self.stack = stack;
    }

    /// Applies one resolved incoming edge to `to`; returns a decision without running.
    fn resolve(
        &mut self,
        workflow: &Workflow,
        to: usize,
        resolution: Resolution,
        out: &mut Vec<Transition>,
    ) -> Option<(NodeStatus, Option<String>)> {
        let trigger = workflow.nodes()[to].trigger();
        let t = &mut self.nodes[to];
        if t.phase != Phase::Waiting {
            // A `one_success` node that already started ignores later edges.
            return None;
        }
        t.unresolved -= 1;
        match resolution {
            Resolution::Taken => t.taken += 1,
            Resolution::NotTaken => {}
            Resolution::Failed => t.failed += 1,
            Resolution::Cancelled => t.cancelled += 1,
            Resolution::Error(message) => self.when_errors.push((to, message)),
        }
        let t = &mut self.nodes[to];
        if trigger == Trigger::OneSuccess && t.taken > 0 {
            t.phase = Phase::Ready;
            out.push(Transition::Ready(to));
            return None;
        }
        if t.unresolved > 0 {
            return None;
        }
        let when_error = || {
            self.when_errors
                .iter()
                .rev()
                .find(|(n, _)| *n == to)
                .map(|(_, m)| m.clone())
        };
        let t = self.nodes[to];
        let decision = match trigger {
            Trigger::AllDone => when_error().map(|m| (NodeStatus::Failed, Some(m))),
            Trigger::AllSuccess | Trigger::OneSuccess => {
                if t.failed > 0 {
                    Some((NodeStatus::UpstreamFailed, None))
                } else if let Some(m) = when_error() {
                    Some((NodeStatus::Failed, Some(m)))
                } else if t.cancelled > 0 {
                    Some((NodeStatus::Cancelled, None))
                } else if t.taken > 0 {
                    None
                } else {
                    Some((NodeStatus::Skipped, None))
                }
            }
        };
        if decision.is_none() {
            self.nodes[to].phase = Phase::Ready;
            out.push(Transition::Ready(to));
        }
        decision
    }

    /// Cancels every node that has not started (waiting or ready) and returns them in
    /// file order. Running nodes are the engine's to stop; it then settles them as
    /// `cancelled`.
    pub fn cancel_pending(&mut self) -> Vec<usize> {
        let mut cancelled = Vec::new();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if matches!(n.phase, Phase::Waiting | Phase::Ready) {
                n.phase = Phase::Settled(NodeStatus::Cancelled);
                self.unsettled -= 1;
                cancelled.push(i);
            }
        }
        cancelled
    }
}
