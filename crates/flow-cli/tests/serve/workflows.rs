//! The workflow files the servers of these tests run.

/// A transform of the input, a for_each of three short delays (one limit
/// held by each item), a join: about 30 ms.
pub const QUICK: &str = r#"name: quick
input: { who: world, naps: [5, 10, 15] }
limits:
  one_at_a_time: { max_concurrency: 1 }
nodes:
  - { id: hello, kind: transform, config: { output: "hello {{ input.who }}" } }
  - id: naps
    kind: delay
    for_each: "{{ input.naps }}"
    limit: one_at_a_time
    config: { ms: "{{ item }}" }
  - id: done
    kind: transform
    config:
      output:
        greeting: "{{ nodes.hello.output }}"
        slept: "{{ nodes.naps.output | map(attribute='slept_ms') | sum }}"
edges:
  - { from: hello, to: naps }
  - { from: naps, to: done }
"#;

/// A node, a 10 s delay, a node after it.
pub const SLOW: &str = r#"name: slow
strategy: { kind: sequential }
nodes:
  - { id: first, kind: noop }
  - { id: wait, kind: delay, config: { ms: 10000 } }
  - { id: after, kind: noop }
edges:
  - { from: first, to: wait }
  - { from: wait, to: after }
"#;

/// A node that fails twice (two attempts), after one that succeeds.
pub const FAILING: &str = r#"name: failing
nodes:
  - { id: fine, kind: noop }
  - id: boom
    kind: fail
    config: { message: "boom" }
    retry: { max_attempts: 2, backoff_ms: 400 }
edges:
  - { from: fine, to: boom }
"#;

/// Two delays one after the other: a run that lasts about `2 × MS` ms.
pub fn steps(name: &str, ms: u64) -> String {
    format!(
        r#"name: {name}
nodes:
  - {{ id: one, kind: delay, config: {{ ms: {ms} }} }}
  - {{ id: two, kind: delay, config: {{ ms: {ms} }} }}
edges:
  - {{ from: one, to: two }}
"#
    )
}

/// A POST to the counting server, a POST behind its gate, a transform after.
pub const GATED: &str = r#"name: gated
nodes:
  - { id: first, kind: http, config: { method: POST, url: "BASE/echo/first" } }
  - { id: shaky, kind: http, config: { method: POST, url: "BASE/gate/shaky" } }
  - { id: after, kind: transform, config: { output: "{{ nodes.shaky.output.body.name }}" } }
edges:
  - { from: first, to: shaky }
  - { from: shaky, to: after }
"#;

/// POSTs to the counting server (one node, then three items), then a delay of
/// `MS` ms, then a last POST.
pub fn crash(ms: u64) -> String {
    format!(
        r#"name: crash
input: {{ items: [ant, bee, cat] }}
nodes:
  - {{ id: start, kind: http, config: {{ method: POST, url: "BASE/echo/start" }} }}
  - id: each
    kind: http
    for_each: "{{{{ input.items }}}}"
    config: {{ method: POST, url: "BASE/echo/each-{{{{ item }}}}" }}
  - {{ id: slow, kind: delay, config: {{ ms: {ms} }} }}
  - {{ id: finish, kind: http, config: {{ method: POST, url: "BASE/echo/finish" }} }}
edges:
  - {{ from: start, to: each }}
  - {{ from: each, to: slow }}
  - {{ from: slow, to: finish }}
"#
    )
}

/// A workflow that uses its input in templates and a for_each.
pub const ECHO: &str = r#"name: echo
nodes:
  - { id: show, kind: transform, config: { output: { all: "{{ input }}", x: "{{ input.x }}" } } }
  - id: each
    kind: noop
    for_each: "{{ input.items }}"
edges:
  - { from: show, to: each }
"#;

/// A file that does not validate: an unknown node kind and an edge to nowhere.
pub const BROKEN: &str = r#"name: broken
nodes:
  - { id: a, kind: teleport }
edges:
  - { from: a, to: nowhere }
"#;
